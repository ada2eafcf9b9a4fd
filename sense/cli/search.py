"""``sense search``: the top-k entries of an index for text and audio queries."""

from __future__ import annotations

import json

from sense.cli import common
from sense.cli.common import (
    EXIT_ERROR,
    CLIError,
    UsageError,
    add_run_options,
    check_model_kind,
    exit_status,
    model_source,
    positive_int,
    report_failures,
)
from sense.index import ENTRY_KINDS


def check_index_model(args, info: dict, source: str, index_path: str | None = None) -> None:
    """Refuse a model other than the one that built the index (unless ``--force``).

    ``index_path`` names the index in the message (default: ``args.index``).
    """
    from sense.inference import resolve_model_dir
    from sense.io import content_fingerprint

    expected = info.get("model_fingerprint")
    if expected is None or args.force:
        return
    try:
        model_dir = resolve_model_dir(source, savedir=args.savedir)
    except OSError as err:
        raise CLIError(f"cannot load the model {source!r}: {err}") from err
    if content_fingerprint(model_dir) != expected:
        index_path = index_path or args.index
        changed = source == info["model"]
        raise UsageError(
            (
                f"the model {source} has changed since the index {index_path} was built"
                if changed
                else f"the index {index_path} was built with the model {info['model']}, "
                f"not {source}"
            )
            + ": its embeddings are not comparable with this model's; rebuild the index, "
            "search with its model, or pass --force"
        )


def format_time(seconds: float) -> str:
    """``m:ss.ss``.

    Example
    -------
    >>> format_time(83.5)
    '1:23.50'
    """
    minutes, secs = divmod(float(seconds), 60.0)
    return f"{int(minutes)}:{secs:05.2f}"


def format_hit(hit: dict) -> str:
    """One line of a hit: rank, score, id, time span of a window, text of a sentence.

    Example
    -------
    >>> format_hit({"rank": 1, "score": 0.5, "id": "a.wav#2", "start": 10.0, "end": 30.0})
    '   1   0.5000  a.wav#2  [0:10.00-0:30.00]'
    """
    line = f"{hit['rank']:>4}  {hit['score']:7.4f}  {hit['id']}"
    if "start" in hit:
        line += f"  [{format_time(hit['start'])}-{format_time(hit['end'])}]"
    if hit.get("kind") == "text":
        line += f"  {hit['text']}"
    return line


def _load(args):
    from sense.index import IndexFormatError, load_index

    try:
        index = load_index(args.index)
    except IndexFormatError as err:
        raise CLIError(str(err)) from err
    try:
        return index, index.select(args.only)
    except IndexFormatError as err:
        raise CLIError(f"{args.index}: holds no {args.only} entries (--only {args.only})") from err


def run(args) -> int:
    """Search the index with each query; print the hits (or JSON)."""
    if not args.queries and not args.audio:
        raise UsageError("give a text query, or an audio file with --audio")
    if args.model:
        check_model_kind(args)
    import torch

    from sense.dataio import AudioError, audio_info
    from sense.inference import audio_error_reason

    whole, index = _load(args)
    audio, failures = [], []
    for path in args.audio or []:
        try:
            audio_info(path)
            audio.append(path)
        except AudioError as err:
            failures.append((path, audio_error_reason(err)))
    if not args.queries and not audio:
        report_failures(failures)
        return EXIT_ERROR
    source = model_source(args.model or whole.info["model"])
    check_index_model(args, whole.info, source)
    model = common.load_model(args, source)
    queries, labels = [], []
    if args.queries:
        try:
            text_embs = model.encode_text(args.queries, batch_size=args.batch_size)
        except (OSError, ValueError, ImportError) as err:
            raise CLIError(f"cannot encode text with this model's teacher: {err}") from err
        queries.extend(text_embs)
        labels.extend({"text": q} for q in args.queries)
    for path in audio:
        try:
            queries.append(model.encode_file(path, batch_size=args.batch_size))
            labels.append({"audio": path})
        except AudioError as err:
            failures.append((path, audio_error_reason(err)))
    if not queries:
        report_failures(failures)
        return EXIT_ERROR
    query_matrix = torch.stack([q.float().cpu() for q in queries])
    if query_matrix.shape[1] != index.info["dim"]:
        raise CLIError(
            f"the model gives {query_matrix.shape[1]}-dim embeddings, the index holds "
            f"{index.info['dim']}-dim ones: search with the model that built it"
        )
    hits = index.search(query_matrix, k=args.top_k, backend=args.backend, exact=args.exact)
    results = [{"query": label, "hits": h} for label, h in zip(labels, hits)]
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for result in results:
            label = result["query"]
            title = f"text: {label['text']}" if "text" in label else f"audio: {label['audio']}"
            print(f"query {title}")
            for hit in result["hits"]:
                print(format_hit(hit))
            print()
    report_failures(failures)
    return exit_status(args, True, failures)


def add_parser(sub) -> None:
    """Register ``sense search``."""
    parser = sub.add_parser(
        "search",
        help="search an index with text (any language) or audio queries",
        description="Print the top-k entries of an index for each query, with their scores "
        "(cosine similarity) and the time spans of windows.",
    )
    parser.add_argument("index", help="index folder written by `sense index`")
    parser.add_argument(
        "queries", nargs="*", default=[], metavar="QUERY", help="text queries (any order)"
    )
    parser.add_argument(
        "--audio", action="append", metavar="FILE", help="an audio query (repeatable)"
    )
    parser.add_argument("-k", "--top-k", type=positive_int, default=5, help="hits per query")
    parser.add_argument("-m", "--model", help="model folder or hub id (default: the index's)")
    parser.add_argument(
        "--only", choices=ENTRY_KINDS, help="search the text or the audio entries only"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="search with -m MODEL even if it is not the model that built the index",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "faiss", "torch"),
        default="auto",
        help="exact search with faiss or torch (auto: faiss when installed)",
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="search every entry even when the index has an approximate structure "
        "(`sense index --index-type`)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_run_options(parser)
    parser.set_defaults(func=run)
