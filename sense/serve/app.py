"""The web application of ``sense serve``: a JSON search API, the recordings, one page.

Routes::

    GET  /                    the search page (static/index.html, its script and style)
    GET  /api/info            the index: name, model, entries of each kind, languages
    GET  /api/search?q=TEXT&k=5&kind=audio|text&language=xx&file=GLOB_OR_SUBSTRING
    POST /api/search?k=...    an audio query: the file as the multipart form field "audio"
    GET  /audio/{number}      a recording of the index (HTTP Range: the browser seeks)

A search answers ``{"query", "k", "filters", "searched", "seconds", "hits"}``;
each hit is a :meth:`sense.index.SpeechIndex.search` hit (rank, score and the
entry: id, kind, path, start/end or line/text), plus ``audio_url`` for a
recording: ``/audio/N#t=start,end``, which plays the hit's span. A request
that cannot be answered gets a 4xx status and ``{"error": "what to change"}``.

FastAPI reads the handlers' annotations when they are declared: this module
keeps them real objects (no ``from __future__ import annotations``) and
imports the framework when an app is made, so that ``sense`` imports without it.
"""

import os
import time
from importlib import resources

from sense.dataio import AudioError
from sense.index import SpeechIndex
from sense.serve.media import AUDIO_ROUTE, AudioFiles
from sense.serve.query import (
    DEFAULT_K,
    MAX_K,
    QueryError,
    hit_json,
    parse_filters,
    parse_k,
    parse_text,
)
from sense.serve.searcher import Searcher
from sense.serve.upload import MAX_UPLOAD_BYTES, decode_audio

STATIC_PACKAGE = "sense.serve"
STATIC_FOLDER = "static"
PAGE = "index.html"
#: The multipart form field of an audio query.
AUDIO_FIELD = "audio"
BAD_REQUEST = 400
NOT_FOUND = 404
SERVER_ERROR = 500


def static_folder() -> str:
    """The folder of the page, its script and its style (package data of the wheel).

    Example
    -------
    >>> sorted(os.listdir(static_folder()))
    ['app.js', 'index.html', 'style.css']
    """
    return str(resources.files(STATIC_PACKAGE).joinpath(STATIC_FOLDER))


def index_summary(index: SpeechIndex, name: str) -> dict:
    """What ``/api/info`` tells about ``index``.

    Example
    -------
    >>> import numpy as np
    >>> index = SpeechIndex({"model": "m"}, np.eye(2, dtype=np.float32),
    ...     [{"id": "a", "kind": "audio", "language": "fr"}, {"id": "s:1", "kind": "text"}])
    >>> index_summary(index, "my.index")["kinds"], index_summary(index, "my.index")["languages"]
    ({'audio': 1, 'text': 1}, ['fr'])
    """
    kinds = {"audio": 0, "text": 0}
    languages = set()
    for entry in index.entries:
        kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
        if entry.get("language"):
            languages.add(str(entry["language"]))
    return {
        "index": name,
        "model": index.info.get("model"),
        "size": len(index),
        "kinds": kinds,
        "languages": sorted(languages),
        "default_k": DEFAULT_K,
        "max_k": MAX_K,
    }


def create_app(
    index: SpeechIndex,
    model,
    root: str = ".",
    name: str = "index",
    backend: str = "auto",
    batch_size: int = 8,
):
    """The FastAPI application serving ``index``, its queries embedded by ``model``.

    Parameters
    ----------
    index : SpeechIndex
        The index (built by ``model``).
    model : object
        ``encode_text``, ``encode_waveforms`` and ``sample_rate``, as :class:`sense.SENSE`.
    root : str
        The folder the index's relative paths start from (where ``sense index`` ran).
    name : str
        The index's name, shown by the page.
    backend, batch_size
        Of the search and of an audio query's forward passes (:class:`Searcher`).

    Example
    -------
    >>> import numpy as np, torch
    >>> from fastapi.testclient import TestClient
    >>> class Model:
    ...     sample_rate = 16000
    ...     def encode_text(self, texts, batch_size=None):
    ...         return torch.ones(len(texts), 2)
    >>> index = SpeechIndex({"model": "m"}, np.ones((1, 2), np.float32),
    ...     [{"id": "s:1", "kind": "text", "path": "s", "line": 1, "text": "hi"}])
    >>> client = TestClient(create_app(index, Model()))
    >>> client.get("/api/search", params={"q": "hello"}).json()["hits"][0]["id"]
    's:1'
    >>> client.get("/api/search", params={"q": " "}).json()
    {'error': 'empty query: type what to search for (in any language)'}
    """
    from fastapi import FastAPI, File, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    searcher = Searcher(index, model, backend=backend, batch_size=batch_size)
    files = AudioFiles(index.entries, root)
    summary = index_summary(index, name)
    app = FastAPI(title=f"sense serve {name}", docs_url=None, redoc_url=None)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(QueryError)
    @app.exception_handler(AudioError)
    def bad_request(request: Request, err: Exception) -> JSONResponse:
        return error(BAD_REQUEST, str(err))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return error(BAD_REQUEST, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    def failed(request: Request, err: Exception) -> JSONResponse:  # logged by the server too
        return error(SERVER_ERROR, f"{type(err).__name__}: {err}")

    @app.exception_handler(HTTPException)
    def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error(err.status_code, str(err.detail))

    def answer(query: dict, k: int, filters, search) -> dict:
        started = time.perf_counter()
        hits = search(k, filters)
        return {
            "query": query,
            "k": k,
            "filters": {key: getattr(filters, key) for key in ("kind", "language", "file")},
            "searched": searcher.count(filters),
            "seconds": round(time.perf_counter() - started, 4),
            "hits": [hit_json(hit, files.url(hit)) for hit in hits],
        }

    @app.get("/api/info")
    def info() -> dict:
        return summary

    @app.get("/api/search")
    def search_text(
        q: str | None = None,
        k: str | None = None,
        kind: str | None = None,
        language: str | None = None,
        file: str | None = None,
    ) -> dict:
        text, k_value, filters = parse_text(q), parse_k(k), parse_filters(kind, language, file)
        return answer({"text": text}, k_value, filters, lambda n, f: searcher.text(text, n, f))

    @app.post("/api/search")
    def search_audio(
        audio: UploadFile | None = File(None),  # noqa: B008 - FastAPI's way to declare it
        k: str | None = None,
        kind: str | None = None,
        language: str | None = None,
        file: str | None = None,
    ) -> dict:
        if audio is None:
            raise QueryError(
                f"no audio: send the recording as the multipart form field {AUDIO_FIELD!r}"
            )
        filename = os.path.basename(audio.filename or "upload")
        k_value, filters = parse_k(k), parse_filters(kind, language, file)  # before decoding
        wav = decode_audio(audio.file.read(MAX_UPLOAD_BYTES + 1), filename, model.sample_rate)

        def search(n, filters):
            try:
                return searcher.audio(wav, n, filters)
            except ValueError as err:  # e.g. shorter than the model's shortest input
                raise AudioError(filename, str(err).removeprefix("waveform 0: ")) from err

        return answer({"audio": filename}, k_value, filters, search)

    @app.get(AUDIO_ROUTE + "/{number}")
    def audio_file(number: str) -> FileResponse:
        path = files.local_path(int(number)) if number.isdigit() else None
        if path is None:
            raise HTTPException(NOT_FOUND, f"no recording {number} in this index")
        if not os.path.isfile(path):
            raise HTTPException(NOT_FOUND, f"{path}: the recording is missing on the server")
        return FileResponse(path)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(os.path.join(static_folder(), PAGE))

    app.mount("/static", StaticFiles(directory=static_folder()), name="static")
    return app
