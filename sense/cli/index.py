"""``sense index``: a searchable index folder over recordings and sentences (:mod:`sense.index`).

Building is resumable: each finished batch of files is kept in
``<output>.partial/`` (:class:`sense.index.PartialWork`) until the index is
published, so the same command run again after an interruption embeds only
the files not finished. ``--add`` embeds new and changed files into an
existing index (by each file's size, modification time and content hash);
``--remove`` drops the entries of files or folders.

Under ``torchrun`` (:mod:`sense.distributed`) each process embeds its share
of the batches, balanced by seconds of audio (:mod:`sense.index_shards`),
into the same work folder; rank 0 alone opens it, prints, and publishes the
index once every rank is done. The other ranks print nothing and exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from types import SimpleNamespace

from sense.ann import AUTO_APPROXIMATE, AUTO_FLAT_BELOW, INDEX_TYPES
from sense.cli import common
from sense.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    RefusedError,
    UsageError,
    add_force_option,
    add_inputs,
    add_run_options,
    check_model_kind,
    check_output,
    exit_status,
    gather_inputs,
    log,
    model_source,
    report_failures,
    window_entries,
)
from sense.distributed import Ranks, joined
from sense.index import STORAGE_DTYPES, is_index_folder

#: The long-recording settings an index records, with their options.
SETTING_OPTIONS = {
    "max_duration": "--max-duration",
    "window": "--window",
    "overlap": "--overlap",
    "split": "--split",
}
SECONDS_PER_HOUR = 3600.0
#: BCP 47's shape, loosely: a 2-8 letter primary tag, then subtags; 35 characters at most.
LANGUAGE_TAG = re.compile(r"(?=.{2,35}$)[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} h of audio, {postfix} "
    "[{elapsed}<{remaining}]"
)


# Settings and fingerprints


def model_settings(args, model) -> dict:
    """What the embeddings depend on: the model's fingerprint, normalisation, windows."""
    from sense.io import content_fingerprint

    hp = model.hparams
    return {
        "model_fingerprint": content_fingerprint(hp.model_dir),
        "normalized": bool(hp.normalize),
        "windows": not args.no_windows,
        "max_duration": args.max_duration or hp.max_duration,
        "window": args.window or hp.window_duration,
        "overlap": hp.window_overlap if args.overlap is None else args.overlap,
        "split": args.split or hp.window_split,
    }


def recorded_settings(args, info: dict, model) -> dict:
    """The settings an index was built with; an option asking for others is refused."""
    settings = model_settings(args, model)
    if info.get("model_fingerprint"):
        settings["model_fingerprint"] = info["model_fingerprint"]
    for name, option in SETTING_OPTIONS.items():
        given = getattr(args, name)
        if name in info and given is not None and given != info[name]:
            raise UsageError(
                f"argument {option}: the index {args.output} was built with {option} "
                f"{info[name]}: files added with {given} would not be cut alike "
                "(leave the option out, or rebuild the index)"
            )
        settings[name] = info.get(name, settings[name])
    if args.no_windows and info.get("windows", True):
        raise UsageError(
            f"argument --no-windows: the index {args.output} holds windows "
            "(leave the option out, or rebuild the index)"
        )
    settings["windows"] = info.get("windows", settings["windows"])
    settings["normalized"] = info.get("normalized", settings["normalized"])
    return settings


def fingerprint_inputs(paths, failures: list, ranks: Ranks) -> dict[str, dict]:
    """``path -> fingerprint`` (:func:`sense.io.file_fingerprint`); unreadable ones go to failures.

    Each rank reads every ``world_size``-th file; all of them get every fingerprint.
    """
    from sense.io import file_fingerprint

    def fingerprint(path: str) -> tuple[dict | None, str | None]:
        try:
            return file_fingerprint(path), None
        except OSError as err:
            return None, f"cannot read ({err.strerror or err})"

    paths = list(paths)
    mine = [fingerprint(path) for path in paths[ranks.rank :: ranks.world_size]]
    shares = ranks.all_gather(mine)
    files = {}
    for i, path in enumerate(paths):
        fp, reason = shares[i % ranks.world_size][i // ranks.world_size]
        if reason is None:
            files[path] = fp
        else:
            failures.append((path, reason))
    return files


# Embedding, resumable


class IndexProgress:
    """A progress bar over the hours of audio, with files done and the time left (none with -q)."""

    def __init__(self, args, audio: list[str], finished: set[str], desc: str = "sense index"):
        self.bar = None
        if args.quiet or not audio:
            return
        from tqdm.auto import tqdm

        self.hours = {path: _duration(path) / SECONDS_PER_HOUR for path in audio}
        self.files, self.total = len(finished), len(audio)
        self.bar = tqdm(
            total=sum(self.hours.values()),
            initial=sum(self.hours[p] for p in finished),
            desc=desc,
            bar_format=BAR_FORMAT,
            leave=False,
        )
        self.bar.set_postfix_str(self._files())

    def _files(self) -> str:
        return f"{self.files}/{self.total} files"

    def update(self, paths: list[str]) -> None:
        if self.bar is None:
            return
        self.files += len(paths)
        self.bar.set_postfix_str(self._files(), refresh=False)
        self.bar.update(sum(self.hours[p] for p in paths))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(path: str) -> float:
    from sense.dataio import AudioError, audio_info

    try:
        frames, rate = audio_info(path)
    except AudioError:
        return 0.0
    return frames / rate


def open_work(args, settings: dict, ranks: Ranks):
    """The work folder beside the output: earlier work made alike is reused.

    Rank 0 alone checks, creates or reads it; the other ranks only add records.
    """
    from sense.index import PartialWork, partial_folder

    folder = partial_folder(args.output)

    def open_checked():
        if os.path.lexists(folder) and not PartialWork.is_partial(folder) and not args.force:
            raise RefusedError(
                f"{folder}: exists and is not the work folder of `sense index` (which keeps the "
                "finished files of an index being built there): move it, or pass --force"
            )
        work, stale = PartialWork.open(folder, settings)
        if stale:
            log(args, f"{folder}: earlier work made with another model or settings: not reused")
        elif len(work):
            log(args, f"resuming: {len(work)} file(s) already embedded in {folder}")
        return work

    opened = {}

    def open_on_main() -> None:
        opened["work"] = open_checked()

    ranks.on_main(open_on_main)
    return opened["work"] if ranks.is_main else PartialWork(folder, settings)


def _audio_arrays(result, windows: bool) -> tuple:
    if windows:
        return result.embeddings.numpy(), result.spans.numpy()
    return result.numpy()[None], None


def plan_work(args, audio, sentences, keys, work, ranks: Ranks) -> list:
    """Rank 0's plan: the unfinished batches and text files, one share per rank.

    The batches are those of an uninterrupted one-process run, so that a
    resumed or shared build embeds bit-identical vectors
    (:func:`sense.index_shards.plan_shares`).
    """
    from sense.index_shards import audio_batches, plan_shares

    batches = []
    for i, batch in enumerate(audio_batches(audio, args.batch_size)):
        todo = [p for p in batch if keys[p] not in work]
        if todo:
            batches.append((i, todo))
    if audio:
        log(args, f"embedding {sum(len(todo) for _, todo in batches)} audio file(s)")
    sentence_counts: dict[str, int] = {}
    for path, _, _ in sentences:
        if keys[path] not in work:
            sentence_counts[path] = sentence_counts.get(path, 0) + 1
    if sentence_counts:
        log(args, f"embedding {sum(sentence_counts.values())} sentence(s)")
    return plan_shares(batches, sentence_counts, _duration, ranks.world_size)


def progress_bar(args, audio, share, ranks: Ranks) -> IndexProgress:
    """Over every file with one process; over rank 0's share with several (the others: none)."""
    todo = share.audio_files()
    if ranks.distributed:
        desc = f"sense index, rank 0's share of {ranks.world_size}"
        return IndexProgress(args, todo, set(), desc=desc)
    return IndexProgress(args, audio, set(audio) - set(todo))


def embed_audio(args, model, batches, keys, settings, work, progress) -> dict[int, list]:
    """Embed audio ``(batch index, files)`` batches, each recorded; the skipped files by batch."""
    skipped = {}
    for i, todo in batches:
        results, skipped[i] = model.encode_files(
            todo,
            windows=settings["windows"],
            batch_size=args.batch_size,
            max_duration=settings["max_duration"],
            window=settings["window"],
            overlap=settings["overlap"],
            split=settings["split"],
        )
        work.put({keys[p]: _audio_arrays(r, settings["windows"]) for p, r in results.items()})
        progress.update(todo)
    return skipped


def embed_text(args, model, paths, sentences, keys, work) -> None:
    """Embed the sentences of each text file of ``paths``, one record per file."""
    by_file: dict[str, list[str]] = {path: [] for path in paths}
    for path, _, sentence in sentences:
        if path in by_file:
            by_file[path].append(sentence)
    for path, texts in by_file.items():
        try:
            embs = model.encode_text(texts, batch_size=args.batch_size, progress=not args.quiet)
        except (OSError, ValueError, ImportError) as err:
            raise CLIError(f"cannot encode text with this model's teacher: {err}") from err
        work.put({keys[path]: (embs.float().numpy(), None)})


def embed_share(args, model, audio, sentences, keys, settings, work, ranks: Ranks):
    """This rank's share embedded: ``(skipped files by batch, error or None)`` for rank 0."""
    share = ranks.on_main(lambda: plan_work(args, audio, sentences, keys, work, ranks))
    share = share[ranks.rank]
    progress = progress_bar(args, audio, share, ranks)
    try:
        skipped = embed_audio(args, model, share.audio, keys, settings, work, progress)
        progress.close()
        embed_text(args, model, share.text, sentences, keys, work)
    except CLIError as err:  # reported by rank 0 once every rank is done
        return {}, err
    except KeyboardInterrupt:
        if ranks.is_main:
            kept = "the finished files of every rank are"
            if not ranks.distributed:
                kept = f"{len(work)} finished file(s) are"
            print(
                f"sense index: {kept} kept in {work.folder}: run the same command again to go "
                "on from there",
                file=sys.stderr,
            )
        raise
    finally:
        progress.close()
    return skipped, None


def collect(audio, sentences, keys, work, windows: bool):
    """Rows and entries of the finished files, in the order of the inputs."""
    import numpy as np

    rows, entries = [], []
    for path in audio:
        if keys[path] not in work:
            continue  # skipped
        embeddings, spans = work.get(keys[path])
        rows.append(embeddings)
        if windows:  # window_entries reads only ``.spans``
            entries.extend(window_entries(path, SimpleNamespace(spans=spans)))
        else:
            entries.append({"id": path, "kind": "audio", "path": path})
    seen: dict[str, int] = {}  # sentences of each file so far: its row in the record
    for path, n, sentence in sentences:
        row = seen[path] = seen.get(path, -1) + 1
        rows.append(work.get(keys[path])[0][row][None])
        entries.append(
            {"id": f"{path}:{n}", "kind": "text", "path": path, "line": n, "text": sentence}
        )
    if not rows:
        return None, entries
    return np.concatenate(rows).astype(np.float32, copy=False), entries


def embed_files(args, model, inputs, settings: dict, files: dict, ranks: Ranks):
    """Embed the inputs resumably, each rank its share.

    Returns ``(embeddings or None, entries, failures, work)`` on rank 0 once
    every rank is done, ``None`` on the others.
    """
    from sense.index import file_key
    from sense.index_shards import failures_in_batch_order

    audio, sentences, failures = inputs
    keys = {path: file_key(path, fp) for path, fp in files.items()}
    audio = [p for p in audio if p in keys]
    sentences = [s for s in sentences if s[0] in keys]
    if audio:
        common.check_windows(args, model)
    work = open_work(args, settings, ranks)
    outcome = embed_share(args, model, audio, sentences, keys, settings, work, ranks)
    outcomes = ranks.gather(outcome)  # every rank done: its records are all written
    if not ranks.is_main:
        if outcome[1] is not None:
            raise outcome[1]
        return None
    errors = [error for _, error in outcomes if error is not None]
    if errors:
        raise errors[0]
    failures.extend(failures_in_batch_order([skipped for skipped, _ in outcomes]))
    work.refresh()
    embeddings, entries = collect(audio, sentences, keys, work, settings["windows"])
    if args.language:
        entries = [{**entry, "language": args.language} for entry in entries]
    return embeddings, entries, failures, work


def language_tag(value: str) -> str:
    """A language tag as ``--language`` takes it: letters, digits and ``-``, up to 35 chars.

    Example
    -------
    >>> language_tag("pt-BR")
    'pt-BR'
    >>> language_tag("fr en")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: not a language tag (letters, digits and -, like en or pt-BR): 'fr en'
    """
    if not LANGUAGE_TAG.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"not a language tag (letters, digits and -, like en or pt-BR): {value!r}"
        )
    return value


# The three actions


def _summary(entries) -> str:
    n_audio = len({e["path"] for e in entries if e["kind"] == "audio"})
    n_text = sum(e["kind"] == "text" for e in entries)
    return f"{len(entries)} entries ({n_audio} recording(s), {n_text} sentence(s))"


def _indexed(files: dict, failures) -> dict:
    failed = {path for path, _ in failures}
    return {path: fp for path, fp in files.items() if path not in failed}


def build(args, ranks: Ranks) -> int:
    """Embed the inputs and write the index folder (resuming earlier work)."""
    check_output(args, args.output, is_index_folder, folder=True)
    check_model_kind(args)
    audio, sentences, failures = gather_inputs(args)
    files = fingerprint_inputs(
        audio + list(dict.fromkeys(s[0] for s in sentences)), failures, ranks
    )
    source = model_source(args.model)
    model = ranks.agree(lambda: common.load_model(args, source))  # fails on all if on one
    settings = model_settings(args, model)
    built = embed_files(args, model, (audio, sentences, failures), settings, files, ranks)
    if built is None:  # another rank: rank 0 publishes
        return EXIT_OK
    embeddings, entries, failures, work = built
    if embeddings is None:
        work.remove()
        print("sense: error: nothing to index", file=sys.stderr)
        report_failures(failures)
        return EXIT_ERROR
    from sense.index import SpeechIndex

    info = {
        "model": source,
        "metric": "inner_product",
        **settings,
        "skipped": [{"path": p, "reason": r} for p, r in failures],
    }
    from sense.storage import stored

    rows, quantizer = stored(embeddings, args.dtype)
    index = SpeechIndex(info, rows, entries, _indexed(files, failures), quantizer=quantizer)
    index.build_ann(args.index_type or INDEX_TYPES[0])
    _publish(args, index)
    work.remove()
    log(args, f"indexed {_summary(entries)} in {args.output}")
    report_failures(failures)
    return exit_status(args, True, failures)


def _publish(args, index) -> None:
    """Save the index (its approximate structure rebuilt if rows changed); print its recall."""
    if args.index_type and args.index_type != index.info.get("index_type"):
        index.build_ann(args.index_type)
    index.save(args.output)
    if index.info.get("ann"):
        from sense.ann import describe

        log(args, describe(index.info["ann"]))


def _load_existing(args):
    from sense.index import IndexFormatError, load_index

    try:
        return load_index(args.output)
    except IndexFormatError as err:
        raise CLIError(f"{err} (--add and --remove change an existing index)") from err


def _indexed_paths(index) -> set[str]:
    return {entry["path"] for entry in index.entries if "path" in entry} | set(index.files)


def add(args, ranks: Ranks) -> int:
    """Embed new and changed files into an existing index; drop the old entries of changed ones."""
    from sense.cli.search import check_index_model

    index = _load_existing(args)
    source = model_source(args.model or index.info["model"])
    check_model_kind(args, model=source)
    check_index_model(args, index.info, source, args.output)
    audio, sentences, failures = gather_inputs(args)
    files = fingerprint_inputs(
        audio + list(dict.fromkeys(s[0] for s in sentences)), failures, ranks
    )
    unchanged = {p for p, fp in files.items() if index.files.get(p) == fp}
    files = {p: fp for p, fp in files.items() if p not in unchanged}
    stale = set(files) & _indexed_paths(index)
    if unchanged:
        log(args, f"{len(unchanged)} file(s) unchanged since they were indexed")
    if not files and not stale:
        report_failures(failures)
        return exit_status(args, True, failures)
    model = ranks.agree(lambda: common.load_model(args, source))  # fails on all if on one
    settings = recorded_settings(args, index.info, model)
    built = embed_files(args, model, (audio, sentences, failures), settings, files, ranks)
    if built is None:  # another rank: rank 0 publishes
        return EXIT_OK
    embeddings, entries, failures, work = built
    # a changed file re-embedded without --language keeps the language it was indexed with
    tagged = {e["path"]: e["language"] for e in index.entries if "language" in e}
    entries = [
        {**e, "language": tagged[e["path"]]} if "language" not in e and e["path"] in tagged else e
        for e in entries
    ]
    dropped = index.drop_paths(stale)
    if embeddings is not None:
        index.add(embeddings, entries)
    index.files.update(_indexed(files, failures))
    touched = set(files) | {p for p, _ in failures}
    index.info["skipped"] = [
        s for s in index.info.get("skipped", []) if s.get("path") not in touched
    ] + [{"path": p, "reason": r} for p, r in failures]
    _publish(args, index)
    work.remove()
    log(
        args,
        f"added {_summary(entries)} to {args.output} (replacing {dropped} entries of "
        f"{len(stale)} changed file(s)); it holds {len(index)} entries",
    )
    report_failures(failures)
    return exit_status(args, True, failures)


def _matches(path: str, target: str) -> bool:
    path = os.path.normpath(path)
    return path == target or path.startswith(target.rstrip(os.sep) + os.sep)


def remove(args) -> int:
    """Drop the entries of the given files (or of every file under a given folder)."""
    index = _load_existing(args)
    paths = _indexed_paths(index)
    gone, failures = set(), []
    for target in map(os.path.normpath, args.inputs):
        matched = {p for p in paths if _matches(p, target)}
        if not matched:
            failures.append((target, "not in the index"))
        gone |= matched
    if not gone:
        report_failures(failures)
        return EXIT_ERROR
    dropped = index.drop_paths(gone)
    if not len(index):
        raise CLIError(
            f"--remove would leave the index {args.output} empty: delete the folder instead"
        )
    index.info["skipped"] = [s for s in index.info.get("skipped", []) if s.get("path") not in gone]
    _publish(args, index)
    log(args, f"removed {dropped} entries of {len(gone)} file(s); {len(index)} left")
    report_failures(failures)
    return exit_status(args, True, failures)


def run(args) -> int:
    """Build an index, or add files to one, or remove files from one (under torchrun: rank 0)."""
    if args.add or args.remove:
        common.require_options(args, output="-o/--output")
    else:
        common.require_options(args, model="-m/--model", output="-o/--output")
    action = add if args.add else build
    if args.remove:
        action = _on_main_only(remove)
    with joined(args.device) as (ranks, device):
        args.device = device
        if ranks.is_main:
            return action(args, ranks)
        return _quietly(action, args, ranks)


def _on_main_only(action):
    return lambda args, ranks: action(args) if ranks.is_main else EXIT_OK


def _quietly(action, args, ranks: Ranks) -> int:
    """Another rank than 0: nothing printed (rank 0 reports for all), the same exit status."""
    args.quiet = True
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        try:
            return action(args, ranks)
        except (UsageError, RefusedError):
            return EXIT_USAGE
        except CLIError:
            return EXIT_ERROR


def add_parser(sub) -> None:
    """Register ``sense index``."""
    parser = sub.add_parser(
        "index",
        help="build a searchable index over recordings and/or sentences",
        description="Embed recordings (long ones cut into windows with their time spans) and "
        "sentences into an index folder for `sense search`. An interrupted run resumes "
        "where it stopped when run again; --add and --remove update an index.",
    )
    add_inputs(
        parser,
        "index folder to write (or to update with --add/--remove)",
        model_help="model folder or hub id (with --add: the index's by default)",
        required=False,
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--add",
        action="store_true",
        help="add the inputs to the index -o: new and changed files are embedded, the old "
        "entries of changed ones dropped, unchanged ones left alone",
    )
    action.add_argument(
        "--remove",
        action="store_true",
        help="drop the entries of the inputs (files, or every file under a folder) from the "
        "index -o; no model needed",
    )
    parser.add_argument(
        "--no-windows", action="store_true", help="one entry per recording, pooled over windows"
    )
    parser.add_argument(
        "--language",
        type=language_tag,
        default=None,
        help="language tag (en, fr, pt-BR, ...) recorded on every entry this run indexes, "
        "for `sense serve`'s language filter; index each language with its own --add",
    )
    parser.add_argument(
        "--dtype",
        choices=STORAGE_DTYPES,
        default=STORAGE_DTYPES[0],
        help="how the embeddings are stored: float16 halves the index (scores agree to about "
        "1e-3), int8 (8-bit codes) quarters it; --add keeps the index's",
    )
    parser.add_argument(
        "--index-type",
        choices=INDEX_TYPES,
        default=None,
        help="approximate structure searched instead of every row: ivf (IVF, 8-bit codes; "
        "7-bit RaBitQ codes from 512 dims, under a quarter of float32), "
        "ivf-flat, ivfpq, hnsw (HNSW, 8-bit codes), or flat (exact); auto (default for a new "
        f"index): flat below {AUTO_FLAT_BELOW:,} entries, {AUTO_APPROXIMATE} above. Its "
        "recall@10 against exact search is measured on held-out queries and printed; "
        "--add/--remove rebuild it (default: the index's type)",
    )
    add_force_option(parser)
    add_run_options(parser)
    parser.set_defaults(func=run)
