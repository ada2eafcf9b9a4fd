"""``sense translate``: speech translation of audio files with a trained model.

Prints one line per file, ``<file>\\t<translation>``, or with ``--json`` one
JSON object ``{"path": ..., "translation": ...}`` per line. Files that cannot
be read are listed on stderr (``--strict``: exit status 3).
"""

from __future__ import annotations

import json
import sys

from sense import cli


def cmd_translate(args) -> int:
    """Translate the audio inputs; one output line per translated file."""
    from sense.translation.inference import load_translator

    audio, text, failures = cli.collect_inputs(args.inputs)
    failures += [(path, "not an audio file") for path in text]
    if not audio:
        cli._report_failures(failures)
        raise cli.CLIError("nothing to translate")
    source = cli._model_source(args.model)
    cli._quiet_libraries()
    cli._log(args, f"loading model {source}")
    overrides = {}
    if args.max_duration:
        overrides["max_duration"] = args.max_duration
    if args.window:
        overrides["window_duration"] = args.window
    try:
        model = load_translator(
            source,
            savedir=args.savedir,
            device=args.device,
            precision=args.precision,
            trust_remote_code=args.trust_remote_code,
            overrides=overrides,
        )
    except (OSError, ValueError) as err:
        raise cli.CLIError(f"cannot load the model {source!r}: {err}") from err
    try:
        if args.target_lang:  # refused before any audio is read
            model.mods.decoder.language_id(args.target_lang)
        results, audio_failures = model.translate_files(
            audio,
            beam_size=args.beam_size,
            target_lang=args.target_lang,
            batch_size=args.batch_size,
        )
    except ValueError as err:  # e.g. an unknown --target-lang
        raise cli.CLIError(str(err)) from err
    failures += audio_failures
    for path, translation in results.items():
        if args.json:
            print(json.dumps({"path": path, "translation": translation}, ensure_ascii=False))
        else:
            print(f"{path}\t{translation}")
    if not results:
        print("sense: error: nothing to translate", file=sys.stderr)
    cli._report_failures(failures)
    return cli._exit_status(args, bool(results), failures)


def add_translate_parser(sub) -> None:
    """Register ``translate`` with the ``sense`` subcommands."""
    parser = sub.add_parser(
        "translate",
        help="translate speech: one line of text per audio file",
        description="Translate audio files (or folders of them) with a speech translation "
        "model (sense.translation.Translator) or a ZeroST model (sense.zerost): one line per "
        "file, '<file>\\t<translation>', or JSON with --json. Long recordings are cut at pauses "
        "and translated window by window.",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="audio files or folders of audio (recursive)"
    )
    parser.add_argument("-m", "--model", required=True, help="model folder or hub id")
    parser.add_argument(
        "--beam-size", type=cli._positive_int, help="beams (1: greedy; default: the model's, 5)"
    )
    parser.add_argument(
        "--target-lang",
        help="language code to translate into (default: the model's; mBART-50 codes like "
        "en_XX, NLLB and ZeroST codes like deu_Latn)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    group = parser.add_argument_group("long recordings (default: the model's settings)")
    group.add_argument(
        "--max-duration", type=cli._positive_float, help="cut recordings longer than this (s)"
    )
    group.add_argument("--window", type=cli._positive_float, help="longest window (s)")
    cli._add_run_options(parser)
    parser.set_defaults(func=cmd_translate)
