"""``sense embed``: embeddings to a ``.npy`` file, their ids to a ``.jsonl`` beside it."""

from __future__ import annotations

import os
import sys

from sense.cli import common
from sense.cli.common import (
    add_force_option,
    add_inputs,
    add_run_options,
    check_model_kind,
    check_output,
    embed_inputs,
    exit_status,
    gather_inputs,
    log,
    model_source,
    report_failures,
    save_jsonl,
)
from sense.io import first_json_line_has, save_npy_atomic

NPY_MAGIC = b"\x93NUMPY"


def _ids_path(output: str) -> str:
    root, ext = os.path.splitext(output)
    return (root if ext == ".npy" else output) + ".jsonl"


def _is_ids_file(path: str) -> bool:
    """An ids file ``sense embed`` wrote (JSON lines with ``id`` and ``kind``)."""
    return first_json_line_has(path, ("id", "kind"))


def _is_embeddings_file(path: str) -> bool:
    """A ``.npy`` file beside an ids file: what ``sense embed`` wrote."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError:
        return False
    return magic == NPY_MAGIC and _is_ids_file(_ids_path(path))


def run(args) -> int:
    """``sense embed``: embeddings to a ``.npy`` file, ids to a ``.jsonl`` beside it."""
    output = args.output if args.output.endswith(".npy") else args.output + ".npy"
    check_output(args, output, _is_embeddings_file)
    check_output(args, _ids_path(output), _is_ids_file)
    check_model_kind(args)
    inputs = gather_inputs(args)
    model = common.load_model(args, model_source(args.model))
    embeddings, entries, failures = embed_inputs(args, model, inputs, windows=args.windows)
    if embeddings is not None:
        ids = _ids_path(output)
        save_jsonl(ids, entries)
        save_npy_atomic(output, embeddings)
        log(args, f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {output}")
        log(args, f"wrote their ids to {ids}")
    else:
        print("sense: error: nothing to embed", file=sys.stderr)
    report_failures(failures)
    return exit_status(args, embeddings is not None, failures)


def add_parser(sub) -> None:
    """Register ``sense embed``."""
    parser = sub.add_parser(
        "embed",
        help="embed audio files, folders or text files into a .npy file",
        description="Write one embedding per audio file (or per window with --windows) and per "
        "sentence to OUTPUT.npy, and their ids, in the same order, to OUTPUT.jsonl.",
    )
    add_inputs(parser, "output .npy file (ids go to the .jsonl beside it)")
    parser.add_argument(
        "--windows", action="store_true", help="one embedding per window of long recordings"
    )
    add_force_option(parser)
    add_run_options(parser)
    parser.set_defaults(func=run)
