"""The ``sense`` command: one module per subcommand, shared helpers in :mod:`sense.cli.common`.

::

    sense embed  -m MODEL clips/ -o clips.npy            # one vector per file
    sense embed  -m MODEL --text sentences.txt -o s.npy  # one vector per line
    sense index  -m MODEL talks/ sentences.txt -o my.index
    sense index  --add new_talks/ -o my.index              # new and changed files only
    sense search my.index "le chat dort" --audio query.wav --top-k 5
    sense serve  my.index --port 8000                     # a search page and a JSON API
    sense import results/SENSE/save/CKPT+checkpoint_epoch9 -o my-model  # a SpeechBrain run
    sense attention -m MODEL manifest.json -o attention/ --align-model CTC_MODEL
    sense summarize -m SUMMARIZER call.wav article.txt
    sense slu -m SLU_MODEL clips/ > spans.jsonl
    sense translate -m TRANSLATOR clips/ -o translations.jsonl

``MODEL`` is an exported folder or a hub id; its ``meta.json`` names its kind
(:mod:`sense.formats`) and a command refuses a model of another kind in one
line. Its ``hyperparams.yaml`` may only build the classes our exports use
unless ``--trust-remote-code`` (:mod:`sense.trust`). Inputs are audio files,
folders (searched recursively for audio) and text files (``.txt``, or any
file with ``--text``), one sentence per line. Long recordings are cut into
windows with their time spans (``sense index`` by default, ``sense embed
--windows``); the windows of a recording cut in several have the ids
``PATH#1``, ``PATH#2``, ...

Usage, outputs and the model's kind are checked before anything is loaded
(and before torch is imported). A command replaces only its own earlier
output: anything else at ``-o`` is refused unless ``--force``. An index
records the model that built it (and a fingerprint of its files): ``sense
search -m`` with another model is refused unless ``--force``.

A file that cannot be used (missing, unreadable, empty, too short, a folder
without audio, an audio format that cannot be decoded) is skipped; the others
are processed and the skipped ones are listed with the reason at the end. The
exit status is 0 when something was written (3 with ``--strict`` when
anything was skipped), 1 when nothing could be done or a file (model, index)
is damaged, and 2 for a bad command line, a refused output or a model of the
wrong kind. Outputs are written under a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time

from sense import __version__
from sense.cli import (
    attention,
    embed,
    importer,
    index,
    search,
    serve,
    slu,
    summarize,
    translate,
)
from sense.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SKIPPED,
    EXIT_USAGE,
    CLIError,
    Parser,
    RefusedError,
    UsageError,
    check_args,
    log,
)

#: The subcommands, in the order ``sense --help`` lists them.
COMMANDS = (embed, index, search, serve, importer, attention, summarize, slu, translate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sense`` command.

    Example
    -------
    >>> sorted(_commands(build_parser()))[:3]
    ['attention', 'embed', 'import']
    """
    parser = Parser(
        prog="sense",
        description="Embed, index and search speech and text of any language in one space "
        "with a SENSE model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
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
        log(args, f"done in {time.time() - started:.1f} s")
    return status


__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_SKIPPED", "EXIT_USAGE", "build_parser", "main"]
