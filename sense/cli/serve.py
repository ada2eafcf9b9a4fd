"""``sense serve``: an index searched from a web page and a JSON API (:mod:`sense.serve`)."""

from __future__ import annotations

import errno
import importlib.util
import os
import socket

from sense.cli import common
from sense.cli.common import (
    CLIError,
    add_run_options,
    check_model_kind,
    model_source,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_PORT = 65535
#: Modules of the ``serve`` extra that the server needs.
SERVE_MODULES = ("fastapi", "uvicorn", "multipart", "av")
BACKLOG = 128
#: What to do about the commonest reasons a port cannot be listened on.
LISTEN_HINTS = {
    errno.EADDRINUSE: " (another server listens there): choose another --port",
    errno.EACCES: ": ports below 1024 need root; choose another --port",
    errno.EADDRNOTAVAIL: ": not an address of this machine; check --host",
}


def port_number(text: str) -> int:
    """``--port``: 0 (any free port) to 65535.

    Example
    -------
    >>> port_number("8080")
    8080
    """
    import argparse

    if not text.isdigit() or int(text) > MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to {MAX_PORT}, got {text!r}")
    return int(text)


def check_extra() -> None:
    """Refuse to start without the ``serve`` extra, naming what to install."""
    missing = [name for name in SERVE_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise CLIError(f"sense serve needs {', '.join(missing)}: pip install 'sense[serve]'")


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: any free one), before anything is loaded.

    Example
    -------
    >>> sock = listen("127.0.0.1", 0)
    >>> sock.getsockname()[1] > 0
    True
    >>> sock.close()
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as err:
        if isinstance(err, socket.gaierror):
            reason, hint = err.strerror, ": check --host"
        else:  # without create_server's "(while attempting to bind ...)"
            reason = os.strerror(err.errno) if err.errno else str(err)
            hint = LISTEN_HINTS.get(err.errno, "")
        raise CLIError(f"cannot listen on {host}:{port}: {reason}{hint}") from err
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a listening socket.

    Example
    -------
    >>> sock = listen("127.0.0.1", 0)
    >>> url_of(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}/"
    True
    >>> sock.close()
    """
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run(args) -> int:
    """Load the index and its model once, then serve until interrupted."""
    from sense.cli.search import check_index_model

    if args.model:
        check_model_kind(args)
    check_extra()
    root = os.path.abspath(args.root or os.getcwd())
    if not os.path.isdir(root):
        raise CLIError(f"--root {args.root}: no such folder")
    sock = listen(args.host, args.port)
    try:
        from sense.index import IndexFormatError, load_index

        try:
            index = load_index(args.index)
        except IndexFormatError as err:
            raise CLIError(str(err)) from err
        source = model_source(args.model or index.info["model"])
        check_index_model(args, index.info, source)
        model = common.load_model(args, source)
        dim = getattr(model, "output_dim", index.info["dim"])
        if dim != index.info["dim"]:
            raise CLIError(
                f"the model gives {dim}-dim embeddings, the index holds {index.info['dim']}-dim "
                "ones: serve it with the model that built it"
            )
        _load_teacher(args, model)
        return _serve(args, sock, index, model, root)
    finally:
        sock.close()


def _load_teacher(args, model) -> None:
    """Load the text side now, not on the first text query; audio queries work without it."""
    try:
        model.encode_text(["sense"], batch_size=1)
    except (OSError, ValueError, ImportError) as err:
        common.log(
            args, f"text queries will fail: cannot encode text with this model's teacher: {err}"
        )


def _serve(args, sock: socket.socket, index, model, root: str) -> int:
    import uvicorn

    from sense.serve.app import create_app

    name = os.path.basename(os.path.normpath(args.index))
    app = create_app(
        index, model, root=root, name=name, backend=args.backend, batch_size=args.batch_size
    )
    config = uvicorn.Config(
        app,
        log_level="warning" if args.quiet else "info",
        access_log=not args.quiet,
        timeout_graceful_shutdown=1,
    )
    print(f"serving {args.index} ({len(index)} entries) on {url_of(sock)}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return common.EXIT_OK


def add_parser(sub) -> None:
    """Register ``sense serve``."""
    parser = sub.add_parser(
        "serve",
        help="search an index from a web page and a JSON API",
        description="Serve an index over HTTP: a page to search it with text, an uploaded or "
        "a recorded audio query and play each hit from its start, and the JSON API behind it "
        "(GET /api/search?q=...; POST /api/search with an audio file). The index and its model "
        "are loaded once.",
    )
    parser.add_argument("index", help="index folder written by `sense index`")
    parser.add_argument("-m", "--model", help="model folder or hub id (default: the index's)")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (0.0.0.0: every network; recording needs https there)",
    )
    parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help="port (0: any free one)"
    )
    parser.add_argument(
        "--root",
        help="folder the index's relative paths start from (default: the current folder, "
        "where `sense index` ran)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="serve with -m MODEL even if it is not the model that built the index",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "faiss", "torch"),
        default="auto",
        help="exact search with faiss or torch (auto: faiss when installed)",
    )
    add_run_options(parser)
    parser.set_defaults(func=run)
