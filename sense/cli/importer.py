"""``sense import``: a SpeechBrain SENSE or SAMU checkpoint as a model folder."""

from __future__ import annotations

import argparse
import sys

from sense import formats
from sense.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    add_force_option,
    check_output,
    log,
    quiet_libraries,
)


def is_sense_model_folder(folder: str) -> bool:
    """A folder whose ``meta.json`` names a SENSE model (what ``sense import`` writes)."""
    try:
        return formats.read_format(folder) == formats.SENSE_MODEL
    except formats.ModelFormatError:
        return False


def run(args) -> int:
    """Import the checkpoint (:func:`sense.speechbrain_import.import_speechbrain`)."""
    check_output(args, args.output, is_sense_model_folder, folder=True)
    from sense.speechbrain_import import CheckpointImportError, import_speechbrain

    quiet_libraries()
    log(args, f"importing {' '.join(args.checkpoint)}")
    try:
        folder = import_speechbrain(
            args.checkpoint,
            args.output,
            hparams=args.hparams,
            base=args.base,
            teacher=args.teacher,
            activation=args.activation,
            force=args.force,
        )
    except (CheckpointImportError, FileExistsError) as err:
        print(f"{args.parser.prog}: error: {err}", file=sys.stderr)  # as every exit-2 error
        return EXIT_USAGE
    log(args, f"wrote the model folder {folder}; use it with `sense embed -m {args.output}`")
    return EXIT_OK


def add_parser(sub) -> None:
    """Register ``sense import``."""
    parser = sub.add_parser(
        "import",
        help="turn a SpeechBrain SENSE or SAMU checkpoint into a model folder",
        description="Read a checkpoint of SpeechBrain's SENSE recipe (W2VBert + AttentionPooling) "
        "or SAMU recipe (Wav2Vec2 + AttentionPooling [+ projection, tanh]) and write a model "
        "folder for the other commands. Errors exit with status 2.",
    )
    parser.add_argument(
        "checkpoint",
        nargs="+",
        metavar="CHECKPOINT",
        help="a CKPT+... folder (or a save folder holding one), or its .ckpt files",
    )
    parser.add_argument("-o", "--output", required=True, help="model folder to write")
    parser.add_argument(
        "--hparams",
        help="the recipe's hparams: the run's hyperparams.yaml or train_sense.yaml "
        "(default: the hyperparams.yaml in or up to two folders above the checkpoint)",
    )
    parser.add_argument(
        "--base",
        help="hub id or local folder of the model the recipe fine-tuned (default: the "
        "encoder's source in the hparams; only its config and feature extractor are read)",
    )
    parser.add_argument(
        "--teacher", help="text encoder to record (default: the hparams' BGE-M3 or LaBSE)"
    )
    parser.add_argument(
        "--activation",
        choices=("recipe", "none", "tanh", "relu", "gelu"),
        default="recipe",
        help="activation after the pooling head, for one applied in the recipe's train.py "
        "(default: what the hparams list)",
    )
    add_force_option(parser)
    parser.add_argument("--overwrite", dest="force", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", "-q", action="store_true", help="no messages")
    parser.set_defaults(func=run)
