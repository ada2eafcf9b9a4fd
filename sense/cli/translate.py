"""``sense translate``: speech translation of audio files with a trained model.

Prints one line per file, ``<file>\\t<translation>``, or with ``--json`` one
JSON object ``{"path": ..., "translation": ...}`` per line. Files that cannot
be read are listed on stderr (``--strict``: exit status 3).
"""

from __future__ import annotations

import json
import sys

from sense import formats
from sense.cli import common
from sense.io import first_json_line_has, write_text_atomic

#: The keys of the JSON lines ``sense translate`` writes (``--json``, ``-o``).
OUTPUT_KEYS = ("path", "translation")


def run(args) -> int:
    """Translate the audio inputs; one output line per translated file."""
    if args.output:
        common.check_output(args, args.output, lambda p: first_json_line_has(p, OUTPUT_KEYS))
    common.check_model_kind(args, formats.TRANSLATION_FORMATS)
    audio, text, failures = common.collect_inputs(args.inputs)
    failures += [(path, "not an audio file") for path in text]
    if not audio:
        common.report_failures(failures)
        raise common.CLIError("nothing to translate")
    overrides = {}
    if args.max_duration:
        overrides["max_duration"] = args.max_duration
    if args.window:
        overrides["window_duration"] = args.window
    model = common.load_model(
        args,
        common.model_source(args.model),
        formats.TRANSLATION_FORMATS,
        formats.TRANSLATOR,
        overrides=overrides,
    )
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
        raise common.CLIError(str(err)) from err
    failures += audio_failures
    lines = [json.dumps(dict(zip(OUTPUT_KEYS, r)), ensure_ascii=False) for r in results.items()]
    if args.output and results:
        write_text_atomic(args.output, "".join(line + "\n" for line in lines))
        common.log(args, f"wrote {len(lines)} translation(s) to {args.output}")
    elif args.json:
        print("\n".join(lines))
    else:
        for path, translation in results.items():
            print(f"{path}\t{translation}")
    if not results:
        print("sense: error: nothing to translate", file=sys.stderr)
    common.report_failures(failures)
    return common.exit_status(args, bool(results), failures)


def add_parser(sub) -> None:
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
        "--beam-size", type=common.positive_int, help="beams (1: greedy; default: the model's, 5)"
    )
    parser.add_argument(
        "--target-lang",
        help="language code to translate into (default: the model's; mBART-50 codes like "
        "en_XX, NLLB and ZeroST codes like deu_Latn)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("-o", "--output", help="write the translations to this file as JSON lines")
    common.add_force_option(parser)
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    group = parser.add_argument_group("long recordings (default: the model's settings)")
    group.add_argument(
        "--max-duration", type=common.positive_float, help="cut recordings longer than this (s)"
    )
    group.add_argument("--window", type=common.positive_float, help="longest window (s)")
    common.add_run_options(parser)
    parser.set_defaults(func=run)
