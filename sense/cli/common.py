"""What every ``sense`` subcommand shares: errors, exit statuses, options, inputs, models, outputs.

Nothing heavy is imported here: a usage error is printed before torch loads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from sense import formats
from sense.io import (
    OutputExistsError,
    atomic_write,
    check_output_file,
    check_output_folder,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3
TEXT_EXTENSIONS = (".txt",)


class CLIError(Exception):
    """A problem that stops a command; printed as ``sense: error: ...`` (exit 1)."""


class UsageError(CLIError):
    """A bad command line found after parsing; printed like argparse's errors (exit 2)."""


class RefusedError(CLIError):
    """An output that must not be replaced, or a model of the wrong kind: one line, exit 2."""


def log(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def report_failures(failures: list[tuple[str, str]]) -> None:
    if not failures:
        return
    print(f"skipped {len(failures)} input(s):", file=sys.stderr)
    for path, reason in failures:
        print(f"  {path}: {reason}", file=sys.stderr)


def exit_status(args, wrote: bool, failures) -> int:
    if not wrote:
        return EXIT_ERROR
    if failures and getattr(args, "strict", False):
        return EXIT_SKIPPED
    return EXIT_OK


def model_source(model: str) -> str:
    """An existing local model folder as an absolute path; a hub id as is."""
    path = os.path.expanduser(model)
    return os.path.abspath(path) if os.path.isdir(path) else model


def quiet_libraries() -> None:
    """Silence transformers' per-load progress bars and warnings in a CLI run."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def check_model_kind(args, accepted=formats.EMBEDDING_FORMATS, model: str | None = None) -> None:
    """Refuse a local model folder of another kind than the command needs, before any work.

    A hub id is checked once downloaded, by :func:`load_model`.
    """
    source = model_source(model or args.model)
    if not os.path.isdir(source):
        return
    try:
        formats.check_format(source, accepted, f"sense {args.command}")
    except formats.WrongModelError as err:
        raise RefusedError(str(err)) from err
    except formats.ModelFormatError as err:
        raise CLIError(str(err)) from err


def load_model(
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
    quiet_libraries()
    log(args, f"loading {what} {source}")
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


# Inputs


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
        report_failures(failures)
        raise CLIError(f"nothing to {args.command}")
    return audio, sentences, failures


def window_entries(path: str, result) -> list[dict]:
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


def embed_inputs(args, model, inputs, windows: bool):
    """Embed the gathered inputs; returns ``(embeddings [N, D] float32, entries, failures)``."""
    import numpy as np

    audio, sentences, failures = inputs
    failures = list(failures)
    rows, entries = [], []
    if audio:
        check_windows(args, model)
        log(args, f"embedding {len(audio)} audio file(s)")
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
                entries.extend(window_entries(path, result))
            else:
                rows.append(result.numpy())
                entries.append({"id": path, "kind": "audio", "path": path})
    if sentences:
        log(args, f"embedding {len(sentences)} sentence(s)")
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


def save_jsonl(path: str, entries) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            for entry in entries:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    atomic_write(path, write)


# Options


class HelpFormatter(argparse.HelpFormatter):
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


class Parser(argparse.ArgumentParser):
    """The parser of ``sense`` and of each subcommand (they inherit the class)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _number(text: str, kind: type, ok, what: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An option's value that must be a whole number of at least 1.

    Example
    -------
    >>> positive_int("8")
    8
    """
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def positive_float(text: str) -> float:
    """An option's value that must be a number above 0."""
    return _number(text, float, lambda v: v > 0, "a positive number")


def non_negative_float(text: str) -> float:
    """An option's value that must be a number of at least 0."""
    return _number(text, float, lambda v: v >= 0, "zero or positive")


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
DEVICE_PATTERN = re.compile(rf"^({'|'.join(DEVICE_TYPES)})(:\d+)?$")


def check_device(device: str | None) -> None:
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


def check_windows(args, model=None) -> None:
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
    check_device(getattr(args, "device", None))
    check_windows(args)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run options")
    group.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the best available)")
    group.add_argument(
        "--precision", choices=("fp32", "fp16", "bf16"), help="autocast precision (default fp32)"
    )
    group.add_argument(
        "--batch-size", type=positive_int, default=8, help="windows or sentences per batch"
    )
    group.add_argument("--savedir", help="where a model from the hub is downloaded")
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let the model's hyperparams.yaml run any Python (only for a model you trust)",
    )
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")


def require_options(args, **options: str) -> None:
    """Refuse missing options as argparse does: ``require_options(args, model="-m/--model")``.

    Example
    -------
    >>> import argparse
    >>> require_options(argparse.Namespace(model=None, output="x"), model="-m/--model", output="-o")
    Traceback (most recent call last):
    ...
    sense.cli.common.UsageError: the following arguments are required: -m/--model
    """
    missing = [flag for name, flag in options.items() if getattr(args, name, None) is None]
    if missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)}")


def add_force_option(parser: argparse.ArgumentParser) -> None:
    """``--force``: the one flag that lets a command replace what it did not write."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace whatever is at the output path (by default only this command's own "
        "earlier output)",
    )


def add_inputs(
    parser: argparse.ArgumentParser, what: str, model_help: str | None = None, required: bool = True
) -> None:
    """Inputs, ``-m``, ``-o`` and the long-recording options.

    ``required=False``: the command checks ``-m`` and ``-o`` itself
    (:func:`require_options`), e.g. when an action needs no model.
    """
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, folders of audio (recursive), text files (.txt, one sentence per line)",
    )
    parser.add_argument(
        "-m", "--model", required=required, help=model_help or "model folder or hub id"
    )
    parser.add_argument("-o", "--output", required=required, help=what)
    parser.add_argument(
        "--text", action="store_true", help="read every input file as text, whatever its name"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 if any input was skipped"
    )
    group = parser.add_argument_group("long recordings (default: the model's settings)")
    group.add_argument(
        "--max-duration", type=positive_float, help="cut recordings longer than this (s)"
    )
    group.add_argument("--window", type=positive_float, help="window length (s)")
    group.add_argument(
        "--overlap", type=non_negative_float, help="minimum overlap of fixed windows (s)"
    )
    group.add_argument(
        "--split", choices=("fixed", "silence"), help="overlapping windows, or cuts at pauses"
    )
