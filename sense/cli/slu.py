"""``sense slu``: the annotated transcript and labelled spans of each file, as JSON lines."""

from __future__ import annotations

import json

from sense import formats
from sense.cli import common
from sense.cli.common import (
    CLIError,
    add_force_option,
    add_run_options,
    check_model_kind,
    check_output,
    collect_inputs,
    exit_status,
    log,
    model_source,
    report_failures,
)
from sense.io import first_json_line_has, write_text_atomic

OUTPUT_KEYS = ("path", "transcript", "spans")


def run(args) -> int:
    """``sense slu``: annotated transcript and labelled spans of each file, as JSON lines."""
    if args.output:
        check_output(args, args.output, lambda p: first_json_line_has(p, OUTPUT_KEYS))
    check_model_kind(args, [formats.SLU_MODEL])
    audio, text, failures = collect_inputs(args.inputs)
    failures += [(path, "not an audio file") for path in text]
    if not audio:
        report_failures(failures)
        raise CLIError("nothing to decode")
    model = common.load_model(
        args, model_source(args.model), [formats.SLU_MODEL], formats.SLU_MODEL
    )
    log(args, f"decoding {len(audio)} audio file(s)")
    results, audio_failures = model.predict_files(audio, batch_size=args.batch_size)
    failures += audio_failures
    lines = [json.dumps({"path": p, **r.to_dict()}, ensure_ascii=False) for p, r in results.items()]
    if args.output:
        write_text_atomic(args.output, "".join(line + "\n" for line in lines))
        log(args, f"wrote {len(lines)} result(s) to {args.output}")
    else:
        for line in lines:
            print(line)
    report_failures(failures)
    return exit_status(args, bool(results), failures)


def add_parser(sub) -> None:
    """Register ``sense slu``."""
    slu = sub.add_parser(
        "slu",
        help="transcribe audio with entity or slot labels (an SLU model)",
        description="Print, for each audio file, one JSON line with the annotated transcript, "
        "the plain transcript and the labelled spans with their times (seconds), decoded by an "
        "SLU model (sense.slu: encoder + CTC probe).",
    )
    slu.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="audio files or folders of audio (recursive)"
    )
    slu.add_argument("-m", "--model", required=True, help="SLU model folder or hub id")
    slu.add_argument("-o", "--output", help="write the JSON lines to this file (default: stdout)")
    slu.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    add_force_option(slu)
    add_run_options(slu)
    slu.set_defaults(func=run)
