"""``sense summarize``: summaries of recordings (and of text files) with a summarizer.

::

    sense summarize -m MODEL call1.wav calls/ article.txt -o summaries.jsonl

Each audio file is cut into utterances at its pauses, embedded by the
model's SENSE encoder and summarised; a text file (``.txt``, or any file with
``--text``) is one document, one sentence per line. Summaries are printed
(``PATH<TAB>SUMMARY``) or, with ``-o``, written as JSON lines
``{"input": PATH, "summary": ...}``. Bad inputs are skipped and listed, as
for ``sense embed``.
"""

from __future__ import annotations

import json
import sys

from sense import formats
from sense.cli import common
from sense.io import first_json_line_has, write_text_atomic

#: The keys of the JSON lines ``sense summarize -o`` writes.
OUTPUT_KEYS = ("input", "summary")


def load_summarizer(args):
    accepted = [formats.SUMMARIZER]
    source = common.model_source(args.model)
    return common.load_model(args, source, accepted, formats.SUMMARIZER, "summarizer")


def summarize_inputs(args, model, audio, documents):
    """``([(input, summary)], failures)`` for audio files and text documents."""
    from sense.dataio import AudioError
    from sense.inference import audio_error_reason

    results, failures = [], []
    for path, sentences in documents.items():
        results.append((path, model.summarize_texts(sentences, num_beams=args.num_beams)))
    for path in audio:
        try:
            results.append((path, model.summarize_file(path, num_beams=args.num_beams)))
        except AudioError as err:
            failures.append((path, audio_error_reason(err)))
        except ValueError as err:
            failures.append((path, str(err)))
    return results, failures


def run(args) -> int:
    """``sense summarize``."""
    if args.output:
        common.check_output(args, args.output, lambda p: first_json_line_has(p, OUTPUT_KEYS))
    common.check_model_kind(args, [formats.SUMMARIZER])
    audio, sentences, failures = common.gather_inputs(args)
    documents = {}
    for path, _, sentence in sentences:
        documents.setdefault(path, []).append(sentence)
    model = load_summarizer(args)
    if audio and model.hparams.speech_model is None:
        raise common.CLIError(f"{args.model}: a text-only summarizer cannot summarise audio")
    results, more = summarize_inputs(args, model, audio, documents)
    failures += more
    lines = [json.dumps(dict(zip(OUTPUT_KEYS, r)), ensure_ascii=False) for r in results]
    if args.output and results:
        write_text_atomic(args.output, "".join(line + "\n" for line in lines))
        common.log(args, f"wrote {len(results)} summaries to {args.output}")
    else:
        for path, summary in results:
            print(f"{path}\t{summary}")
    if not results:
        print("sense: error: nothing to summarize", file=sys.stderr)
    common.report_failures(failures)
    return common.exit_status(args, bool(results), failures)


def add_parser(sub) -> None:
    """Add ``summarize`` to the ``sense`` subcommands."""
    parser = sub.add_parser(
        "summarize",
        help="summarise recordings (and text documents) with a summarizer",
        description="Cut each recording into utterances at its pauses, embed them and write "
        "its summary; a text file is one document, one sentence per line.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, folders of audio (recursive), text files (.txt, one sentence a line)",
    )
    parser.add_argument("-m", "--model", required=True, help="summarizer folder or hub id")
    parser.add_argument("-o", "--output", help="JSON lines file (default: print the summaries)")
    parser.add_argument(
        "--text", action="store_true", help="read every input file as text, whatever its name"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    parser.add_argument(
        "--num-beams", type=common.positive_int, help="beam size (default: the model's)"
    )
    common.add_force_option(parser)
    common.add_run_options(parser)
    parser.set_defaults(func=run)
