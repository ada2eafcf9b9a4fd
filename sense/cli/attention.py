"""``sense attention``: where the model finds the meaning (paper, section VII)."""

from __future__ import annotations

import json
import os
import sys

from sense import formats
from sense.cli import common
from sense.cli.common import (
    EXIT_ERROR,
    CLIError,
    add_force_option,
    add_run_options,
    check_model_kind,
    check_output,
    exit_status,
    log,
    model_source,
    positive_int,
    report_failures,
)

ATTENTION_SUMMARY = "summary.json"


def is_attention_folder(folder: str) -> bool:
    """A folder written by ``sense attention`` (its ``summary.json`` names the format)."""
    try:
        with open(os.path.join(folder, ATTENTION_SUMMARY), encoding="utf-8") as f:
            return json.load(f).get("format") == formats.ATTENTION_OUTPUT
    except (OSError, ValueError, AttributeError):
        return False


def run(args) -> int:
    """``sense attention``: where the model finds the meaning (paper, section VII)."""
    check_output(args, args.output, is_attention_folder, folder=True)
    check_model_kind(args, [formats.SENSE_MODEL])
    if args.force and os.path.isfile(args.output):
        os.remove(args.output)  # --force: the folder takes the file's place
    from sense.analysis.run import analyze, build_aligner, load_utterances, load_vad, read_word_list
    from sense.analysis.settings import AnalysisSettings, PoolingComparison

    try:
        utterances, failures = load_utterances(args.inputs)
        function_words = read_word_list(args.function_words) if args.function_words else None
    except (OSError, ValueError) as err:
        raise CLIError(str(err)) from err
    if args.limit:
        utterances = dict(list(utterances.items())[: args.limit])
    if not utterances:
        print("sense: error: no utterance to analyse", file=sys.stderr)
        report_failures(failures)
        return EXIT_ERROR
    pairs = {os.path.basename(os.path.normpath(p)): p for p in args.pair or []}
    for folder in pairs.values():
        if not os.path.isfile(os.path.join(folder, "query.json")):
            raise CLIError(f"{folder}: not a prepared retrieval pair (no query.json)")
    source = model_source(args.model)
    model = common.load_model(args, source, [formats.SENSE_MODEL])
    try:
        aligner = build_aligner(
            args.alignments, args.tier, args.align_model, not args.no_whisperx, str(model.device)
        )
    except (OSError, ValueError, ImportError) as err:
        raise CLIError(str(err)) from err
    sources = ", then ".join(aligner.sources) or "none"
    log(args, f"word boundaries: the manifest's, then {sources}")
    log(args, f"analysing {len(utterances)} utterance(s)")
    try:
        summary = analyze(
            model,
            utterances,
            args.output,
            aligner=aligner,
            vad=load_vad(not args.no_vad),
            examples=args.example or (),
            comparison=PoolingComparison(pairs, source) if pairs else None,
            settings=AnalysisSettings(
                edge_frames=args.edge_frames,
                grid_size=args.grid,
                top=args.top,
                function_words=(lambda _lang: function_words) if function_words else None,
                batch_size=args.batch_size,
            ),
            progress=not args.quiet,
        )
    except ValueError as err:
        raise CLIError(str(err)) from err
    if not args.quiet:
        print(summary["report"])
    log(args, f"wrote the figures and tables to {args.output}")
    failures += [(s["id"], s["reason"]) for s in summary["skipped"]]
    report_failures(failures)
    return exit_status(args, True, failures)


def add_parser(sub) -> None:
    """Register ``sense attention``."""
    attention = sub.add_parser(
        "attention",
        help="where the model finds the meaning: the attention analysis of the paper's section VII",
        description="Mean attention logit against relative position (Figure 2), attention over "
        "one utterance with voice activity and word boundaries (Figures 3-4), the first-frames "
        "mass, attention-logit sums of words (Table IX), and, with --pair, retrieval with the "
        "learned attention against uniform mean pooling. Without word boundaries the analysis "
        "is the curve and the first-frames mass.",
    )
    attention.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a JSON manifest ({id: {path, lang, text, words, parallel}}), audio files, folders",
    )
    attention.add_argument("-m", "--model", required=True, help="model folder or hub id")
    attention.add_argument("-o", "--output", required=True, help="folder for figures and tables")
    words = attention.add_argument_group("word boundaries (first that has them)")
    words.add_argument("--alignments", help="a CTM file, a TextGrid, or a folder of them")
    words.add_argument("--tier", help="TextGrid tier of the words (default: 'words' or the first)")
    words.add_argument(
        "--align-model", help="wav2vec2 CTC model (hub id or folder) to align the transcripts"
    )
    words.add_argument(
        "--no-whisperx", action="store_true", help="do not align with WhisperX when installed"
    )
    attention.add_argument("--no-vad", action="store_true", help="no voice activity curve")
    attention.add_argument(
        "--example", action="append", metavar="ID", help="utterance of Figure 3, then Figure 4"
    )
    attention.add_argument(
        "--pair",
        action="append",
        metavar="FOLDER",
        help="prepared retrieval pair: R@1 with learned attention against mean pooling",
    )
    attention.add_argument(
        "--edge-frames", type=positive_int, default=5, help="frames at each edge (default 5)"
    )
    attention.add_argument(
        "--grid", type=positive_int, default=101, help="relative positions (default 101)"
    )
    attention.add_argument("--top", type=positive_int, default=10, help="rows of Table IX")
    attention.add_argument(
        "--function-words", help="file of function words, one a line (default: stop-words lists)"
    )
    attention.add_argument("--limit", type=positive_int, help="analyse the first N utterances")
    attention.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    add_force_option(attention)
    add_run_options(attention)
    attention.set_defaults(func=run)
