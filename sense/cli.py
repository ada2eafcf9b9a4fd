"""The ``sense`` command: embed, index and search speech and text with a SENSE model.

::

    sense embed  -m MODEL clips/ -o clips.npy            # one vector per file
    sense embed  -m MODEL --text sentences.txt -o s.npy  # one vector per line
    sense index  -m MODEL talks/ sentences.txt -o my.index
    sense search my.index "le chat dort" --audio query.wav --top-k 5
    sense import results/SENSE/save/CKPT+checkpoint_epoch9 -o my-model  # a SpeechBrain run
    sense attention -m MODEL manifest.json -o attention/ --align-model CTC_MODEL
    sense summarize -m SUMMARIZER call.wav article.txt     # sense.summarization.cli
    sense slu -m SLU_MODEL clips/ > spans.jsonl          # labelled transcripts (sense.slu)

``MODEL`` is a folder written by :func:`sense.export.export_model` or a hub
id; its ``hyperparams.yaml`` may only build the classes our exports use
unless ``--trust-remote-code`` (:mod:`sense.trust`). Inputs are audio files, folders (searched recursively for audio) and text
files (``.txt``, or any file with ``--text``), one sentence per line. Long
recordings are cut into windows with their time spans (``sense index`` by
default, ``sense embed --windows``); the windows of a recording cut in several
have the ids ``PATH#1``, ``PATH#2``, ...

Inputs and options are checked before the model is loaded. ``-o`` of
``sense index`` replaces an earlier index only: a path holding anything else
is refused unless ``--force``. An index records the model that built it (and a
fingerprint of its files): ``sense search -m`` with another model is refused
unless ``--force``.

A file that cannot be used (missing, unreadable, empty, too short, a folder
without audio, an audio format that cannot be decoded) is skipped; the others are processed and the skipped ones are listed
with the reason at the end. The exit status is 0 when something was written
(3 with ``--strict`` when anything was skipped), 1 when nothing could be
done or a file (model, index) is damaged, and 2 for a bad command line. Outputs are written under a temporary name and renamed into place.

Search is exact inner product over L2-normalised embeddings (cosine), with
faiss when it is installed and plain torch otherwise (same results; choose
with ``--backend``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time

from sense import __version__, formats
from sense.io import (
    OutputExistsError,
    atomic_write,
    check_output_file,
    check_output_folder,
    first_json_line_has,
    save_npy_atomic,
    staged_folder,
    write_text_atomic,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3
TEXT_EXTENSIONS = (".txt",)
INDEX_INFO = "index.json"
INDEX_EMBEDDINGS = "embeddings.npy"
INDEX_ENTRIES = "entries.jsonl"
INDEX_FORMAT = "sense-index"
INDEX_VERSION = 1
ENTRY_KINDS = ("text", "audio")
DAMAGED = "a damaged index: rebuild it with `sense index`"
NPY_MAGIC = b"\x93NUMPY"
ATTENTION_SUMMARY = "summary.json"
#: The keys of the JSON lines each command writes with ``-o`` (how it knows its own file).
SLU_KEYS = ("path", "transcript", "spans")


class CLIError(Exception):
    """A problem that stops a command; printed as ``sense: error: ...`` (exit 1)."""


class UsageError(CLIError):
    """A bad command line found after parsing; printed like argparse's errors (exit 2)."""


class RefusedError(CLIError):
    """An output that must not be replaced, or a model of the wrong kind: one line, exit 2."""


# ---------------------------------------------------------------------------
# Helpers (no heavy imports here: `sense --help` stays fast)
# ---------------------------------------------------------------------------


def _log(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _report_failures(failures: list[tuple[str, str]]) -> None:
    if not failures:
        return
    print(f"skipped {len(failures)} input(s):", file=sys.stderr)
    for path, reason in failures:
        print(f"  {path}: {reason}", file=sys.stderr)


def _exit_status(args, wrote: bool, failures) -> int:
    if not wrote:
        return EXIT_ERROR
    if failures and getattr(args, "strict", False):
        return EXIT_SKIPPED
    return EXIT_OK


def _model_source(model: str) -> str:
    """An existing local model folder as an absolute path; a hub id as is."""
    path = os.path.expanduser(model)
    return os.path.abspath(path) if os.path.isdir(path) else model


def _quiet_libraries() -> None:
    """Silence transformers' per-load progress bars and warnings in a CLI run."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def check_model_kind(args, accepted=formats.EMBEDDING_FORMATS, model: str | None = None) -> None:
    """Refuse a local model folder of another kind than the command needs, before any work.

    A hub id is checked once downloaded, by :func:`_load_model`.
    """
    source = _model_source(model or args.model)
    if not os.path.isdir(source):
        return
    try:
        formats.check_format(source, accepted, f"sense {args.command}")
    except formats.WrongModelError as err:
        raise RefusedError(str(err)) from err
    except formats.ModelFormatError as err:
        raise CLIError(str(err)) from err


def _load_model(
    args,
    source: str,
    accepted=formats.EMBEDDING_FORMATS,
    default: str = formats.SENSE_MODEL,
    what: str = "model",
    **kwargs,
):
    """Load ``source`` with the interface its ``meta.json`` names, one of ``accepted``.

    ``default`` is the format of a folder without ``meta.json``; ``kwargs`` go
    to ``from_hparams`` (e.g. ``overrides``).
    """
    _quiet_libraries()
    _log(args, f"loading {what} {source}")
    try:
        return formats.load(
            source,
            accepted,
            default=default,
            needed_by=f"sense {args.command}",
            savedir=args.savedir,
            device=args.device,
            precision=args.precision,
            trust_remote_code=args.trust_remote_code,
            **kwargs,
        )
    except formats.WrongModelError as err:
        raise RefusedError(str(err)) from err
    except (OSError, ValueError) as err:
        raise CLIError(f"cannot load the {what} {source!r}: {err}") from err


def check_output(args, path: str, is_ours, folder: bool = False) -> None:
    """Refuse an output path holding anything but an earlier output of this command.

    Unless ``--force``; checked before any work (:mod:`sense.io`'s policy).
    """
    check = check_output_folder if folder else check_output_file
    try:
        check(path, is_ours, f"sense {args.command}", force=args.force, hint="pass --force")
    except OutputExistsError as err:
        raise RefusedError(str(err)) from err


def collect_inputs(inputs, force_text: bool = False):
    """Split command-line inputs into audio files and text files.

    Folders are searched recursively for audio files. Returns
    ``(audio_files, text_files, failures)``, failures as ``(path, reason)``.
    """
    from sense.dataio import (
        UNSUPPORTED_AUDIO_REASON,
        find_audio_files,
        find_unsupported_audio_files,
    )

    audio, text, failures, seen = [], [], [], set()

    def add(path, bucket):
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            bucket.append(path)

    for item in inputs:
        if os.path.isdir(item):
            for path in find_unsupported_audio_files(item):
                failures.append((os.path.normpath(path), UNSUPPORTED_AUDIO_REASON))
            try:
                found = find_audio_files(item)
            except ValueError as err:
                failures.append((item, str(err).removeprefix(f"{item}: ")))
                continue
            for path in found:
                add(os.path.normpath(path), audio)
        elif not os.path.lexists(item):
            failures.append((item, "no such file or folder"))
        elif force_text or item.lower().endswith(TEXT_EXTENSIONS):
            add(item, text)
        else:
            add(item, audio)
    return audio, text, failures


def read_sentences(path: str) -> list[tuple[int, str]]:
    """Non-blank lines of a UTF-8 text file as ``(line_number, sentence)``.

    A byte-order mark at the start of the file is not part of the first sentence.

    Raises
    ------
    ValueError
        Unreadable, not UTF-8, or without any sentence (the message names the file).
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from err
    sentences = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    if not sentences:
        raise ValueError(f"{path}: no sentences (the file is empty or blank)")
    return sentences


def gather_inputs(args):
    """Audio files, sentences and failures of the inputs, checked without a model.

    Returns ``(audio_files, sentences, failures)``: sentences as
    ``(path, line_number, sentence)``. Raises :class:`CLIError` (listing the
    failures) when nothing is usable.
    """
    audio, text, failures = collect_inputs(args.inputs, force_text=args.text)
    sentences = []
    for path in text:
        try:
            sentences.extend((path, n, s) for n, s in read_sentences(path))
        except ValueError as err:
            failures.append((path, str(err).removeprefix(f"{path}: ")))
    if not audio and not sentences:
        _report_failures(failures)
        raise CLIError(f"nothing to {args.command}")
    return audio, sentences, failures


def _window_entries(path: str, result) -> list[dict]:
    """One entry per window; ``PATH#1``, ``PATH#2``, ... when there are several."""
    spans = result.spans.tolist()
    return [
        {
            "id": path if len(spans) == 1 else f"{path}#{j}",
            "kind": "audio",
            "path": path,
            "start": round(start, 3),
            "end": round(end, 3),
        }
        for j, (start, end) in enumerate(spans, 1)
    ]


def _embed_inputs(args, model, inputs, windows: bool):
    """Embed the gathered inputs; returns ``(embeddings [N, D] float32, entries, failures)``."""
    import numpy as np

    audio, sentences, failures = inputs
    failures = list(failures)
    rows, entries = [], []
    if audio:
        _check_windows(args, model)
        _log(args, f"embedding {len(audio)} audio file(s)")
        results, audio_failures = model.encode_files(
            audio,
            windows=windows,
            batch_size=args.batch_size,
            max_duration=args.max_duration,
            window=args.window,
            overlap=args.overlap,
            split=args.split,
            progress=not args.quiet,
        )
        failures.extend(audio_failures)
        for path, result in results.items():
            if windows:
                rows.extend(emb.numpy() for emb in result.embeddings)
                entries.extend(_window_entries(path, result))
            else:
                rows.append(result.numpy())
                entries.append({"id": path, "kind": "audio", "path": path})
    if sentences:
        _log(args, f"embedding {len(sentences)} sentence(s)")
        try:
            embs = model.encode_text(
                [s for _, _, s in sentences], batch_size=args.batch_size, progress=not args.quiet
            )
        except (OSError, ValueError, ImportError) as err:
            raise CLIError(f"cannot encode text with this model's teacher: {err}") from err
        for (path, n, sentence), emb in zip(sentences, embs):
            rows.append(emb.numpy())
            entries.append(
                {"id": f"{path}:{n}", "kind": "text", "path": path, "line": n, "text": sentence}
            )
    if not rows:
        return None, entries, failures
    return np.stack(rows).astype(np.float32), entries, failures


def _save_jsonl(path: str, entries) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            for entry in entries:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    atomic_write(path, write)


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


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def cmd_embed(args) -> int:
    """``sense embed``: embeddings to a ``.npy`` file, ids to a ``.jsonl`` beside it."""
    output = args.output if args.output.endswith(".npy") else args.output + ".npy"
    check_output(args, output, _is_embeddings_file)
    check_output(args, _ids_path(output), _is_ids_file)
    check_model_kind(args)
    inputs = gather_inputs(args)
    model = _load_model(args, _model_source(args.model))
    embeddings, entries, failures = _embed_inputs(args, model, inputs, windows=args.windows)
    if embeddings is not None:
        ids = _ids_path(output)
        _save_jsonl(ids, entries)
        save_npy_atomic(output, embeddings)
        _log(args, f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {output}")
        _log(args, f"wrote their ids to {ids}")
    else:
        print("sense: error: nothing to embed", file=sys.stderr)
    _report_failures(failures)
    return _exit_status(args, embeddings is not None, failures)


def cmd_slu(args) -> int:
    """``sense slu``: annotated transcript and labelled spans of each file, as JSON lines."""
    if args.output:
        check_output(args, args.output, lambda p: first_json_line_has(p, SLU_KEYS))
    check_model_kind(args, [formats.SLU_MODEL])
    audio, text, failures = collect_inputs(args.inputs)
    failures += [(path, "not an audio file") for path in text]
    if not audio:
        _report_failures(failures)
        raise CLIError("nothing to decode")
    model = _load_model(
        args, _model_source(args.model), [formats.SLU_MODEL], formats.SLU_MODEL, "SLU model"
    )
    _log(args, f"decoding {len(audio)} audio file(s)")
    results, audio_failures = model.predict_files(audio, batch_size=args.batch_size)
    failures += audio_failures
    lines = [json.dumps({"path": p, **r.to_dict()}, ensure_ascii=False) for p, r in results.items()]
    if args.output:
        write_text_atomic(args.output, "".join(line + "\n" for line in lines))
        _log(args, f"wrote {len(lines)} result(s) to {args.output}")
    else:
        for line in lines:
            print(line)
    _report_failures(failures)
    return _exit_status(args, bool(results), failures)


def cmd_index(args) -> int:
    """``sense index``: a searchable index folder over recordings and sentences."""
    import datetime

    from sense.io import content_fingerprint

    check_output(args, args.output, is_index_folder, folder=True)
    check_model_kind(args)
    inputs = gather_inputs(args)
    source = _model_source(args.model)
    model = _load_model(args, source)
    windows = not args.no_windows
    embeddings, entries, failures = _embed_inputs(args, model, inputs, windows=windows)
    if embeddings is None:
        print("sense: error: nothing to index", file=sys.stderr)
        _report_failures(failures)
        return EXIT_ERROR
    with staged_folder(args.output) as tmp:
        save_npy_atomic(os.path.join(tmp, INDEX_EMBEDDINGS), embeddings)
        _save_jsonl(os.path.join(tmp, INDEX_ENTRIES), entries)
        hp = model.hparams
        info = {
            "format": INDEX_FORMAT,
            "format_version": INDEX_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "model": source,
            "model_fingerprint": content_fingerprint(model.hparams.model_dir),
            "size": int(embeddings.shape[0]),
            "dim": int(embeddings.shape[1]),
            "metric": "inner_product",
            "normalized": bool(hp.normalize),
            "windows": windows,
            "max_duration": args.max_duration or hp.max_duration,
            "window": args.window or hp.window_duration,
            "overlap": hp.window_overlap if args.overlap is None else args.overlap,
            "split": args.split or hp.window_split,
            "skipped": [{"path": p, "reason": r} for p, r in failures],
        }
        write_text_atomic(
            os.path.join(tmp, INDEX_INFO), json.dumps(info, indent=2, ensure_ascii=False) + "\n"
        )
    n_audio = len({e["path"] for e in entries if e["kind"] == "audio"})
    n_text = sum(e["kind"] == "text" for e in entries)
    _log(
        args,
        f"indexed {len(entries)} entries ({n_audio} recording(s), {n_text} sentence(s)) "
        f"in {args.output}",
    )
    _report_failures(failures)
    return _exit_status(args, True, failures)


def is_index_folder(folder: str) -> bool:
    """Whether ``folder`` holds an index written by ``sense index``."""
    try:
        with open(os.path.join(folder, INDEX_INFO), encoding="utf-8") as f:
            return json.load(f).get("format") == INDEX_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _load_index_info(folder: str) -> dict:
    path = os.path.join(folder, INDEX_INFO)
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (ValueError, OSError) as err:
        raise CLIError(f"{path}: not readable JSON ({err}; {DAMAGED})") from err
    if not isinstance(info, dict) or info.get("format") != INDEX_FORMAT:
        raise CLIError(f"{path}: not the description of a sense index ({DAMAGED})")
    missing = [key for key in ("model", "dim") if key not in info]
    if missing:
        raise CLIError(f"{path}: no {', '.join(missing)} ({DAMAGED})")
    return info


def _load_index_embeddings(folder: str):
    import numpy as np

    path = os.path.join(folder, INDEX_EMBEDDINGS)
    if not os.path.isfile(path):
        raise CLIError(f"{path}: missing ({DAMAGED})")
    try:
        embeddings = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CLIError(f"{path}: not a complete .npy array ({err}; {DAMAGED})") from err
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
        raise CLIError(
            f"{path}: a {embeddings.dtype} array of shape {embeddings.shape}, not [N, D] "
            f"floats ({DAMAGED})"
        )
    return embeddings.astype(np.float32, copy=False)


def _load_index_entries(folder: str) -> list[dict]:
    path = os.path.join(folder, INDEX_ENTRIES)
    entries = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError as err:
                    raise CLIError(f"{path}: line {number} is not JSON ({err}; {DAMAGED})") from err
                if not isinstance(entry, dict) or "id" not in entry or "kind" not in entry:
                    raise CLIError(f"{path}: line {number} is not an index entry ({DAMAGED})")
                entries.append(entry)
    except FileNotFoundError as err:
        raise CLIError(f"{path}: missing ({DAMAGED})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise CLIError(f"{path}: cannot read ({err}; {DAMAGED})") from err
    return entries


def load_index(folder: str):
    """``(info, embeddings [N, D] float32, entries)`` of an index folder.

    Raises
    ------
    CLIError
        Not an index, or a damaged one (the message names the file).
    """
    if not os.path.isdir(folder):
        raise CLIError(f"{folder}: no such index folder")
    if not os.path.isfile(os.path.join(folder, INDEX_INFO)):
        raise CLIError(
            f"{folder}: not a sense index (no {INDEX_INFO}); build one with `sense index`"
        )
    info = _load_index_info(folder)
    embeddings = _load_index_embeddings(folder)
    entries = _load_index_entries(folder)
    if len(entries) != embeddings.shape[0]:
        raise CLIError(
            f"{folder}: {len(entries)} entries for {embeddings.shape[0]} embeddings ({DAMAGED})"
        )
    if embeddings.shape[1] != info["dim"]:
        raise CLIError(
            f"{os.path.join(folder, INDEX_EMBEDDINGS)}: {embeddings.shape[1]}-dim embeddings, "
            f"{INDEX_INFO} says {info['dim']} ({DAMAGED})"
        )
    return info, embeddings, entries


def _check_index_model(args, info: dict, source: str) -> None:
    """Refuse a model other than the one that built the index (unless ``--force``)."""
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
        changed = source == info["model"]
        raise UsageError(
            (
                f"the model {source} has changed since the index {args.index} was built"
                if changed
                else f"the index {args.index} was built with the model {info['model']}, "
                f"not {source}"
            )
            + ": its embeddings are not comparable with this model's; rebuild the index, "
            "search with its model, or pass --force"
        )


def _select_kind(embeddings, entries, only: str | None, index: str):
    """The rows of one kind of entry (``--only``), or all of them."""
    if only is None:
        return embeddings, entries
    keep = [i for i, entry in enumerate(entries) if entry.get("kind") == only]
    if not keep:
        raise CLIError(f"{index}: holds no {only} entries (--only {only})")
    return embeddings[keep], [entries[i] for i in keep]


def _format_time(seconds: float) -> str:
    minutes, secs = divmod(float(seconds), 60.0)
    return f"{int(minutes)}:{secs:05.2f}"


def _format_hit(rank: int, score: float, entry: dict) -> str:
    line = f"{rank:>4}  {score:7.4f}  {entry['id']}"
    if "start" in entry:
        line += f"  [{_format_time(entry['start'])}-{_format_time(entry['end'])}]"
    if entry.get("kind") == "text":
        line += f"  {entry['text']}"
    return line


def cmd_search(args) -> int:
    """``sense search``: top-k entries of an index for text and audio queries."""
    if not args.queries and not args.audio:
        raise UsageError("give a text query, or an audio file with --audio")
    if args.model:
        check_model_kind(args)
    import torch

    from sense.dataio import AudioError, audio_info
    from sense.inference import audio_error_reason
    from sense.retrieval import search

    info, embeddings, entries = load_index(args.index)
    embeddings, entries = _select_kind(embeddings, entries, args.only, args.index)
    audio, failures = [], []
    for path in args.audio or []:
        try:
            audio_info(path)
            audio.append(path)
        except AudioError as err:
            failures.append((path, audio_error_reason(err)))
    if not args.queries and not audio:
        _report_failures(failures)
        return EXIT_ERROR
    source = _model_source(args.model or info["model"])
    _check_index_model(args, info, source)
    model = _load_model(args, source)
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
        _report_failures(failures)
        return EXIT_ERROR
    query_matrix = torch.stack([q.float().cpu() for q in queries])
    if query_matrix.shape[1] != embeddings.shape[1]:
        raise CLIError(
            f"the model gives {query_matrix.shape[1]}-dim embeddings, the index holds "
            f"{embeddings.shape[1]}-dim ones: search with the model that built it"
        )
    k = min(args.top_k, embeddings.shape[0])
    scores, indices = search(query_matrix, torch.from_numpy(embeddings), k=k, backend=args.backend)
    results = []
    for label, row_scores, row_indices in zip(labels, scores.tolist(), indices.tolist()):
        hits = [
            {"rank": r, "score": round(s, 6), **entries[i]}
            for r, (s, i) in enumerate(zip(row_scores, row_indices), 1)
        ]
        results.append({"query": label, "hits": hits})
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for result in results:
            label = result["query"]
            title = f"text: {label['text']}" if "text" in label else f"audio: {label['audio']}"
            print(f"query {title}")
            for hit in result["hits"]:
                print(_format_hit(hit["rank"], hit["score"], hit))
            print()
    _report_failures(failures)
    return _exit_status(args, True, failures)


def cmd_import(args) -> int:
    """``sense import``: a SpeechBrain SENSE/SAMU checkpoint as a model folder."""
    check_output(args, args.output, _is_sense_model_folder, folder=True)
    from sense.speechbrain_import import CheckpointImportError, import_speechbrain

    _quiet_libraries()
    _log(args, f"importing {' '.join(args.checkpoint)}")
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
        print(f"sense: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    _log(args, f"wrote the model folder {folder}; use it with `sense embed -m {args.output}`")
    return EXIT_OK


def _is_sense_model_folder(folder: str) -> bool:
    try:
        return formats.read_format(folder) == formats.SENSE_MODEL
    except formats.ModelFormatError:
        return False


def _is_attention_folder(folder: str) -> bool:
    """A folder written by ``sense attention`` (its ``summary.json`` names the format)."""
    try:
        with open(os.path.join(folder, ATTENTION_SUMMARY), encoding="utf-8") as f:
            return json.load(f).get("format") == formats.ATTENTION_OUTPUT
    except (OSError, ValueError, AttributeError):
        return False


def cmd_attention(args) -> int:
    """``sense attention``: where the model finds the meaning (paper, section VII)."""
    check_output(args, args.output, _is_attention_folder, folder=True)
    check_model_kind(args, [formats.SENSE_MODEL])
    if args.force and os.path.isfile(args.output):
        os.remove(args.output)  # --force: the folder takes the file's place
    from sense.analysis.run import analyze, build_aligner, load_utterances, load_vad, read_word_list

    try:
        utterances, failures = load_utterances(args.inputs)
        function_words = read_word_list(args.function_words) if args.function_words else None
    except (OSError, ValueError) as err:
        raise CLIError(str(err)) from err
    if args.limit:
        utterances = dict(list(utterances.items())[: args.limit])
    if not utterances:
        print("sense: error: no utterance to analyse", file=sys.stderr)
        _report_failures(failures)
        return EXIT_ERROR
    pairs = {os.path.basename(os.path.normpath(p)): p for p in args.pair or []}
    for folder in pairs.values():
        if not os.path.isfile(os.path.join(folder, "query.json")):
            raise CLIError(f"{folder}: not a prepared retrieval pair (no query.json)")
    source = _model_source(args.model)
    model = _load_model(args, source, [formats.SENSE_MODEL])
    try:
        aligner = build_aligner(
            args.alignments, args.tier, args.align_model, not args.no_whisperx, str(model.device)
        )
    except (OSError, ValueError, ImportError) as err:
        raise CLIError(str(err)) from err
    sources = ", then ".join(aligner.sources) or "none"
    _log(args, f"word boundaries: the manifest's, then {sources}")
    _log(args, f"analysing {len(utterances)} utterance(s)")
    try:
        summary = analyze(
            model,
            utterances,
            args.output,
            aligner=aligner,
            vad=load_vad(not args.no_vad),
            examples=args.example or (),
            pairs=pairs,
            source=source,
            edge_frames=args.edge_frames,
            grid_size=args.grid,
            top=args.top,
            function_words=(lambda _lang: function_words) if function_words else None,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
    except ValueError as err:
        raise CLIError(str(err)) from err
    if not args.quiet:
        print(summary["report"])
    _log(args, f"wrote the figures and tables to {args.output}")
    failures += [(s["id"], s["reason"]) for s in summary["skipped"]]
    _report_failures(failures)
    return _exit_status(args, True, failures)


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, when it has one that the help does not already give."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """The parser of ``sense`` and of each subcommand (they inherit the class)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {text}")
    return value


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
DEVICE_PATTERN = re.compile(rf"^({'|'.join(DEVICE_TYPES)})(:\d+)?$")


def _check_device(device: str | None) -> None:
    """Refuse a device name torch does not know (without torch) or this machine does not have."""
    if device is None:
        return
    if not DEVICE_PATTERN.match(device):
        raise UsageError(f"argument --device: {device!r} is not a device (cpu, cuda, cuda:1, ...)")
    if device.startswith("cpu"):
        return
    import torch  # only to ask whether this machine has the device

    parsed = torch.device(device)
    backend = getattr(torch, parsed.type) if parsed.type != "mps" else torch.backends.mps
    count = 1 if parsed.type == "mps" else 0
    if backend.is_available() and parsed.type != "mps":
        count = backend.device_count()
    if not backend.is_available() or count == 0:
        raise UsageError(
            f"argument --device: {device}: no {parsed.type} device on this machine "
            "(use --device cpu, or leave --device out)"
        )
    if parsed.index is not None and parsed.index >= count:
        raise UsageError(
            f"argument --device: {device}: this machine has {count} {parsed.type} device(s), "
            f"{parsed.type}:0 to {parsed.type}:{count - 1}"
        )


def _check_windows(args, model=None) -> None:
    """``--window``/``--overlap``/``--max-duration``, with the model's settings for the others."""
    window, overlap = getattr(args, "window", None), getattr(args, "overlap", None)
    max_duration = getattr(args, "max_duration", None)
    if model is None:
        if window is not None and overlap is not None and overlap >= window:
            raise UsageError(
                f"argument --overlap: must be smaller than --window ({window:g}), got {overlap:g}"
            )
        if window is not None and max_duration is not None and window > max_duration:
            raise UsageError(
                f"argument --window: {window:g} s is longer than --max-duration ({max_duration:g} "
                "s), the length from which recordings are cut into windows"
            )
        return
    from sense.windows import check_durations

    hp = model.hparams
    settings = (
        args.max_duration or hp.max_duration,
        window or hp.window_duration,
        hp.window_overlap if overlap is None else overlap,
    )
    try:
        check_durations(*settings)
        if settings[1] > settings[0]:
            raise ValueError("the window is longer than the maximum duration")
    except ValueError as err:
        raise UsageError(
            f"--max-duration {settings[0]:g}, --window {settings[1]:g}, --overlap "
            f"{settings[2]:g} (the model's settings where not given): {err}"
        ) from err


def check_args(args) -> None:
    """Checks of options argparse cannot make alone; raise :class:`UsageError`."""
    _check_device(getattr(args, "device", None))
    _check_windows(args)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run options")
    group.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the best available)")
    group.add_argument(
        "--precision", choices=("fp32", "fp16", "bf16"), help="autocast precision (default fp32)"
    )
    group.add_argument(
        "--batch-size", type=_positive_int, default=8, help="windows or sentences per batch"
    )
    group.add_argument("--savedir", help="where a model from the hub is downloaded")
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let the model's hyperparams.yaml run any Python (only for a model you trust)",
    )
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")


def add_force_option(parser: argparse.ArgumentParser) -> None:
    """``--force``: the one flag that lets a command replace what it did not write."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace whatever is at the output path (by default only this command's own "
        "earlier output)",
    )


def _add_inputs(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, folders of audio (recursive), text files (.txt, one sentence per line)",
    )
    parser.add_argument("-m", "--model", required=True, help="model folder or hub id")
    parser.add_argument("-o", "--output", required=True, help=what)
    parser.add_argument(
        "--text", action="store_true", help="read every input file as text, whatever its name"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    group = parser.add_argument_group("long recordings (default: the model's settings)")
    group.add_argument(
        "--max-duration", type=_positive_float, help="cut recordings longer than this (s)"
    )
    group.add_argument("--window", type=_positive_float, help="window length (s)")
    group.add_argument(
        "--overlap", type=_non_negative_float, help="minimum overlap of fixed windows (s)"
    )
    group.add_argument(
        "--split", choices=("fixed", "silence"), help="overlapping windows, or cuts at pauses"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sense`` command."""
    parser = _Parser(
        prog="sense",
        description="Embed, index and search speech and text of any language in one space "
        "with a SENSE model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = sub.add_parser(
        "embed",
        help="embed audio files, folders or text files into a .npy file",
        description="Write one embedding per audio file (or per window with --windows) and per "
        "sentence to OUTPUT.npy, and their ids, in the same order, to OUTPUT.jsonl.",
    )
    _add_inputs(embed, "output .npy file (ids go to the .jsonl beside it)")
    embed.add_argument(
        "--windows", action="store_true", help="one embedding per window of long recordings"
    )
    add_force_option(embed)
    _add_run_options(embed)
    embed.set_defaults(func=cmd_embed)

    index = sub.add_parser(
        "index",
        help="build a searchable index over recordings and/or sentences",
        description="Embed recordings (long ones cut into windows with their time spans) and "
        "sentences into an index folder for `sense search`.",
    )
    _add_inputs(index, "index folder to write")
    index.add_argument(
        "--no-windows", action="store_true", help="one entry per recording, pooled over windows"
    )
    add_force_option(index)
    _add_run_options(index)
    index.set_defaults(func=cmd_index)

    search = sub.add_parser(
        "search",
        help="search an index with text (any language) or audio queries",
        description="Print the top-k entries of an index for each query, with their scores "
        "(cosine similarity) and the time spans of windows.",
    )
    search.add_argument("index", help="index folder written by `sense index`")
    search.add_argument(
        "queries", nargs="*", default=[], metavar="QUERY", help="text queries (any order)"
    )
    search.add_argument(
        "--audio", action="append", metavar="FILE", help="an audio query (repeatable)"
    )
    search.add_argument("-k", "--top-k", type=_positive_int, default=5, help="hits per query")
    search.add_argument("-m", "--model", help="model folder or hub id (default: the index's)")
    search.add_argument(
        "--only", choices=ENTRY_KINDS, help="search the text or the audio entries only"
    )
    search.add_argument(
        "--force",
        action="store_true",
        help="search with -m MODEL even if it is not the model that built the index",
    )
    search.add_argument(
        "--backend",
        choices=("auto", "faiss", "torch"),
        default="auto",
        help="exact search with faiss or torch (auto: faiss when installed)",
    )
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    _add_run_options(search)
    search.set_defaults(func=cmd_search)

    imp = sub.add_parser(
        "import",
        help="turn a SpeechBrain SENSE or SAMU checkpoint into a model folder",
        description="Read a checkpoint of SpeechBrain's SENSE recipe (W2VBert + AttentionPooling) "
        "or SAMU recipe (Wav2Vec2 + AttentionPooling [+ projection, tanh]) and write a model "
        "folder for the other commands. Errors exit with status 2.",
    )
    imp.add_argument(
        "checkpoint",
        nargs="+",
        metavar="CHECKPOINT",
        help="a CKPT+... folder (or a save folder holding one), or its .ckpt files",
    )
    imp.add_argument("-o", "--output", required=True, help="model folder to write")
    imp.add_argument(
        "--hparams",
        help="the recipe's hparams: the run's hyperparams.yaml or train_sense.yaml "
        "(default: the hyperparams.yaml in or up to two folders above the checkpoint)",
    )
    imp.add_argument(
        "--base",
        help="hub id or local folder of the model the recipe fine-tuned (default: the "
        "encoder's source in the hparams; only its config and feature extractor are read)",
    )
    imp.add_argument(
        "--teacher", help="text encoder to record (default: the hparams' BGE-M3 or LaBSE)"
    )
    imp.add_argument(
        "--activation",
        choices=("recipe", "none", "tanh", "relu", "gelu"),
        default="recipe",
        help="activation after the pooling head, for one applied in the recipe's train.py "
        "(default: what the hparams list)",
    )
    add_force_option(imp)
    imp.add_argument("--overwrite", dest="force", action="store_true", help=argparse.SUPPRESS)
    imp.add_argument("--quiet", "-q", action="store_true", help="no messages")
    imp.set_defaults(func=cmd_import)
    _add_attention_parser(sub)
    from sense.summarization.cli import add_parser as _add_summarize_parser

    _add_summarize_parser(sub)
    _add_slu_parser(sub)
    from sense.translation.cli import add_translate_parser

    add_translate_parser(sub)
    return parser


def _commands(parser: argparse.ArgumentParser) -> dict:
    """``name -> subparser`` of ``parser``."""
    for action in parser._actions:  # argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None):
    """Parse with options and positionals in any order (``parse_intermixed_args``).

    ``args.parser`` is the subcommand's parser, for its error messages.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = _commands(parser)
    if argv and argv[0] in commands:
        sub = commands[argv[0]]
        try:
            args = sub.parse_intermixed_args(argv[1:])
        except TypeError:  # a subcommand with its own subcommands
            args = parser.parse_args(argv)
        args.command = argv[0]
    else:
        args = parser.parse_args(argv)
    args.parser = commands.get(args.command, parser)
    return args


def _add_slu_parser(sub) -> None:
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
    _add_run_options(slu)
    slu.set_defaults(func=cmd_slu)


def _add_attention_parser(sub) -> None:
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
        "--edge-frames", type=_positive_int, default=5, help="frames at each edge (default 5)"
    )
    attention.add_argument(
        "--grid", type=_positive_int, default=101, help="relative positions (default 101)"
    )
    attention.add_argument("--top", type=_positive_int, default=10, help="rows of Table IX")
    attention.add_argument(
        "--function-words", help="file of function words, one a line (default: stop-words lists)"
    )
    attention.add_argument("--limit", type=_positive_int, help="analyse the first N utterances")
    attention.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    add_force_option(attention)
    _add_run_options(attention)
    attention.set_defaults(func=cmd_attention)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sense`` console script; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parse_args(parser, argv)
    started = time.time()
    with _quiet_logs(getattr(args, "quiet", False)):
        return _run(args, started)


@contextlib.contextmanager
def _quiet_logs(quiet: bool):
    """With ``-q``, the library's warnings are not printed either (errors still are)."""
    logger = logging.getLogger("sense")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(args, started: float) -> int:
    try:
        check_args(args)
        status = args.func(args)
    except UsageError as err:
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RefusedError as err:
        print(f"{args.parser.prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except CLIError as err:
        print(f"sense: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("sense: interrupted", file=sys.stderr)
        return 130
    if status in (EXIT_OK, EXIT_SKIPPED):
        _log(args, f"done in {time.time() - started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
