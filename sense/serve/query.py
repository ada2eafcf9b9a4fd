"""What a search request asks for (top-k, filters), checked, and the hits it gets back as JSON.

Nothing here needs the web framework or a model: the server and its tests share it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sense.index import ENTRY_KINDS

DEFAULT_K = 5
#: The most hits one request may ask for.
MAX_K = 100
#: Characters of a text query; a longer one is refused (the teacher truncates anyway).
MAX_QUERY_CHARS = 2000
GLOB_CHARS = "*?["


class QueryError(ValueError):
    """A request that cannot be searched: the message says what to change (HTTP 400)."""


@dataclass(frozen=True)
class Filters:
    """Which entries a request searches: one kind, one language, files matching a pattern.

    ``file`` is a glob (``*``, ``?``, ``[...]``) matched against the whole path,
    or else a substring of the path. A language keeps only the entries that
    carry that ``language``.

    Example
    -------
    >>> f = Filters(kind="audio", file="talks/*.mp3")
    >>> f.keeps({"kind": "audio", "path": "talks/a.mp3"}), f.keeps({"kind": "text", "path": "talks/a.mp3"})
    (True, False)
    >>> Filters(file="2019").keeps({"kind": "audio", "path": "talks/2019/b.wav"})
    True
    >>> Filters(language="fr").keeps({"kind": "text", "path": "s.txt"})
    False
    """

    kind: str | None = None
    language: str | None = None
    file: str | None = None

    def __bool__(self) -> bool:
        return any((self.kind, self.language, self.file))

    def keeps(self, entry: dict) -> bool:
        """Whether ``entry`` passes every filter."""
        if self.kind and entry.get("kind") != self.kind:
            return False
        if self.language and entry.get("language") != self.language:
            return False
        if self.file:
            path = str(entry.get("path", ""))
            if any(c in self.file for c in GLOB_CHARS):
                return fnmatch.fnmatchcase(path, self.file)
            return self.file in path
        return True


def parse_k(text: str | None) -> int:
    """The number of hits asked for, 1 to :data:`MAX_K` (:data:`DEFAULT_K` when not given).

    Example
    -------
    >>> parse_k("3"), parse_k(None)
    (3, 5)
    >>> parse_k("0")
    Traceback (most recent call last):
    ...
    sense.serve.query.QueryError: k must be a whole number from 1 to 100, got '0'
    """
    if text is None or text == "":
        return DEFAULT_K
    try:
        k = int(text)
    except ValueError:
        k = 0
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be a whole number from 1 to {MAX_K}, got {text!r}")
    return k


def parse_filters(kind: str | None, language: str | None, file: str | None) -> Filters:
    """Filters from a request's parameters (blank ones are no filter).

    Example
    -------
    >>> parse_filters("text", " fr ", "")
    Filters(kind='text', language='fr', file=None)
    >>> parse_filters("video", None, None)
    Traceback (most recent call last):
    ...
    sense.serve.query.QueryError: kind must be audio or text (or left out for both), got 'video'
    """
    kind = (kind or "").strip() or None
    if kind is not None and kind not in ENTRY_KINDS:
        raise QueryError(f"kind must be audio or text (or left out for both), got {kind!r}")
    return Filters(kind, (language or "").strip() or None, (file or "").strip() or None)


def parse_text(text: str | None) -> str:
    """A text query, stripped; an empty or overlong one is refused.

    Example
    -------
    >>> parse_text("  le chat  ")
    'le chat'
    >>> parse_text(" ")
    Traceback (most recent call last):
    ...
    sense.serve.query.QueryError: empty query: type what to search for (in any language)
    """
    text = (text or "").strip()
    if not text:
        raise QueryError("empty query: type what to search for (in any language)")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query has {len(text)} characters; at most {MAX_QUERY_CHARS}")
    return text


def seconds(value: float) -> str:
    """Seconds as short as exact to the millisecond (as entries store them).

    Example
    -------
    >>> seconds(10.966), seconds(0.0), seconds(2.6), seconds(1234.5678)
    ('10.966', '0', '2.6', '1234.568')
    """
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def media_fragment(entry: dict) -> str:
    """The media fragment (``#t=start,end``) that plays an audio entry's span; '' without one.

    Example
    -------
    >>> media_fragment({"start": 10.966, "end": 30.966})
    '#t=10.966,30.966'
    """
    if "start" not in entry or "end" not in entry:
        return ""
    return f"#t={seconds(entry['start'])},{seconds(entry['end'])}"


def hit_json(hit: dict, audio_url: str | None) -> dict:
    """A hit of :meth:`sense.index.SpeechIndex.search` with the URL that plays it (audio only).

    Example
    -------
    >>> hit_json({"rank": 1, "score": 0.5, "id": "a.wav", "kind": "audio", "path": "a.wav",
    ...           "start": 0.0, "end": 2.5}, "/audio/0")["audio_url"]
    '/audio/0#t=0,2.5'
    """
    if hit.get("kind") != "audio" or audio_url is None:
        return dict(hit)
    return {**hit, "audio_url": audio_url + media_fragment(hit)}
