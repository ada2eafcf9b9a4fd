"""``sense index``: a searchable index folder over recordings and sentences (:mod:`sense.index`)."""

from __future__ import annotations

import sys

from sense.cli import common
from sense.cli.common import (
    EXIT_ERROR,
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
)
from sense.index import is_index_folder


def run(args) -> int:
    """Embed the inputs and write the index folder."""
    check_output(args, args.output, is_index_folder, folder=True)
    check_model_kind(args)
    inputs = gather_inputs(args)
    source = model_source(args.model)
    model = common.load_model(args, source)
    windows = not args.no_windows
    embeddings, entries, failures = embed_inputs(args, model, inputs, windows=windows)
    if embeddings is None:
        print("sense: error: nothing to index", file=sys.stderr)
        report_failures(failures)
        return EXIT_ERROR
    from sense.index import SpeechIndex
    from sense.io import content_fingerprint

    hp = model.hparams
    info = {
        "model": source,
        "model_fingerprint": content_fingerprint(hp.model_dir),
        "metric": "inner_product",
        "normalized": bool(hp.normalize),
        "windows": windows,
        "max_duration": args.max_duration or hp.max_duration,
        "window": args.window or hp.window_duration,
        "overlap": hp.window_overlap if args.overlap is None else args.overlap,
        "split": args.split or hp.window_split,
        "skipped": [{"path": p, "reason": r} for p, r in failures],
    }
    SpeechIndex(info, embeddings, entries).save(args.output)
    n_audio = len({e["path"] for e in entries if e["kind"] == "audio"})
    n_text = sum(e["kind"] == "text" for e in entries)
    log(
        args,
        f"indexed {len(entries)} entries ({n_audio} recording(s), {n_text} sentence(s)) "
        f"in {args.output}",
    )
    report_failures(failures)
    return exit_status(args, True, failures)


def add_parser(sub) -> None:
    """Register ``sense index``."""
    parser = sub.add_parser(
        "index",
        help="build a searchable index over recordings and/or sentences",
        description="Embed recordings (long ones cut into windows with their time spans) and "
        "sentences into an index folder for `sense search`.",
    )
    add_inputs(parser, "index folder to write")
    parser.add_argument(
        "--no-windows", action="store_true", help="one entry per recording, pooled over windows"
    )
    add_force_option(parser)
    add_run_options(parser)
    parser.set_defaults(func=run)
