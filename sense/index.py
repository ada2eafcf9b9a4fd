"""A search index over recordings and sentences: build, add, search, save, load.

An index folder holds three files:

- ``index.json``: the format, the model that built it (and a fingerprint of
  its files), the embedding size and how recordings were cut into windows;
- ``embeddings.npy``: ``[N, D]`` float32 embeddings, one row per entry;
- ``entries.jsonl``: one JSON object per row, ``{"id", "kind": "audio" | "text",
  "path", ...}`` with ``start``/``end`` (seconds) for a window and
  ``line``/``text`` for a sentence.

:meth:`SpeechIndex.save` publishes the folder whole (a reader sees the old
index or the new one); :func:`load_index` refuses a damaged one with the file
and the problem.

Example
-------
>>> import os, tempfile, numpy as np
>>> index = SpeechIndex({"model": "m", "normalized": True},
...     np.eye(3, 4, dtype=np.float32),
...     [{"id": f"s:{i}", "kind": "text", "path": "s", "text": t}
...      for i, t in enumerate(["a", "b", "c"], 1)])
>>> folder = os.path.join(tempfile.mkdtemp(), "idx")
>>> index.save(folder)
>>> loaded = load_index(folder)
>>> len(loaded), loaded.info["dim"]
(3, 4)
>>> [[hit["id"] for hit in hits] for hits in loaded.search(np.eye(1, 4, 1), k=2)]
[['s:2', 's:1']]
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sense.io import save_npy_atomic, staged_folder, write_text_atomic

if TYPE_CHECKING:
    import numpy as np

INDEX_INFO = "index.json"
INDEX_EMBEDDINGS = "embeddings.npy"
INDEX_ENTRIES = "entries.jsonl"
INDEX_FORMAT = "sense-index"
INDEX_VERSION = 1
ENTRY_KINDS = ("text", "audio")
#: Keys every ``index.json`` has.
REQUIRED_INFO = ("model", "dim")
DAMAGED = "a damaged index: rebuild it with `sense index`"


class IndexFormatError(ValueError):
    """Not an index folder, or a damaged one (the message names the file)."""


def is_index_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an index written by :meth:`SpeechIndex.save`.

    Example
    -------
    >>> import tempfile
    >>> is_index_folder(tempfile.mkdtemp())
    False
    """
    try:
        with open(os.path.join(folder, INDEX_INFO), encoding="utf-8") as f:
            return json.load(f).get("format") == INDEX_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class SpeechIndex:
    """Embeddings with their entries and a description, searchable by inner product.

    Parameters
    ----------
    info : dict
        The description (``model``, ``model_fingerprint``, window settings,
        ``skipped`` inputs, ...); ``format``, ``size`` and ``dim`` are filled in.
    embeddings : numpy.ndarray
        [N, D] float32 embeddings.
    entries : list of dict
        One per row: ``id``, ``kind`` and where it comes from.

    Example
    -------
    >>> import numpy as np
    >>> index = SpeechIndex({"model": "m"}, np.ones((1, 2), np.float32), [{"id": "a", "kind": "text"}])
    >>> index.add(np.zeros((1, 2), np.float32), [{"id": "b", "kind": "audio"}])
    >>> len(index), index.info["size"]
    (2, 2)
    """

    def __init__(self, info: dict, embeddings: np.ndarray, entries: Sequence[dict]):
        import numpy as np

        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.entries = list(entries)
        if self.embeddings.ndim != 2 or len(self.entries) != self.embeddings.shape[0]:
            raise ValueError(
                f"{len(self.entries)} entries for embeddings of shape {self.embeddings.shape}"
            )
        self.info = {"format": INDEX_FORMAT, "format_version": INDEX_VERSION, **info}
        self._count()

    def _count(self) -> None:
        self.info["size"] = int(self.embeddings.shape[0])
        self.info["dim"] = int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, embeddings: np.ndarray, entries: Sequence[dict]) -> None:
        """Append ``[M, D]`` embeddings and their ``M`` entries."""
        import numpy as np

        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.shape[1:] != self.embeddings.shape[1:] or len(entries) != len(embeddings):
            raise ValueError(
                f"cannot add {len(entries)} entries with embeddings of shape {embeddings.shape} "
                f"to an index of {self.embeddings.shape[1]}-dim embeddings"
            )
        self.embeddings = np.concatenate([self.embeddings, embeddings])
        self.entries.extend(entries)
        self._count()

    def select(self, kind: str | None) -> SpeechIndex:
        """The entries of one kind (``"text"`` or ``"audio"``), or all of them.

        Raises
        ------
        IndexFormatError
            The index holds no entry of that kind.
        """
        if kind is None:
            return self
        keep = [i for i, entry in enumerate(self.entries) if entry.get("kind") == kind]
        if not keep:
            raise IndexFormatError(f"the index holds no {kind} entries")
        return SpeechIndex(self.info, self.embeddings[keep], [self.entries[i] for i in keep])

    def search(self, queries, k: int = 5, backend: str = "auto") -> list[list[dict]]:
        """The top ``k`` entries of each query, as entries with ``rank`` and ``score``.

        Parameters
        ----------
        queries : numpy.ndarray or torch.Tensor
            [Nq, D] query embeddings (from the model that built the index).
        k : int
            Hits per query (at most the index's size).
        backend : {"auto", "faiss", "torch"}
            Exact search with faiss or torch (:func:`sense.retrieval.search`).
        """
        import torch

        from sense.retrieval import search

        queries = torch.as_tensor(queries, dtype=torch.float32).reshape(-1, self.info["dim"])
        k = min(k, len(self))
        scores, indices = search(
            queries, torch.from_numpy(self.embeddings), k=k, backend=backend
        )
        return [
            [
                {"rank": r, "score": round(s, 6), **self.entries[i]}
                for r, (s, i) in enumerate(zip(row_scores, row_indices), 1)
            ]
            for row_scores, row_indices in zip(scores.tolist(), indices.tolist())
        ]

    def save(self, folder: str | os.PathLike) -> None:
        """Write the index folder, published whole (the old one stays until then)."""
        info = dict(self.info)
        info.setdefault(
            "created",
            datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        with staged_folder(folder) as tmp:
            save_npy_atomic(os.path.join(tmp, INDEX_EMBEDDINGS), self.embeddings)
            lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.entries)
            write_text_atomic(os.path.join(tmp, INDEX_ENTRIES), lines)
            text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
            write_text_atomic(os.path.join(tmp, INDEX_INFO), text)


def _read_info(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, INDEX_INFO)
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (ValueError, OSError) as err:
        raise IndexFormatError(f"{path}: not readable JSON ({err}; {DAMAGED})") from err
    if not isinstance(info, dict) or info.get("format") != INDEX_FORMAT:
        raise IndexFormatError(f"{path}: not the description of a sense index ({DAMAGED})")
    missing = [key for key in REQUIRED_INFO if key not in info]
    if missing:
        raise IndexFormatError(f"{path}: no {', '.join(missing)} ({DAMAGED})")
    return info


def _read_embeddings(folder: str) -> np.ndarray:
    import numpy as np

    path = os.path.join(folder, INDEX_EMBEDDINGS)
    if not os.path.isfile(path):
        raise IndexFormatError(f"{path}: missing ({DAMAGED})")
    try:
        embeddings = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise IndexFormatError(f"{path}: not a complete .npy array ({err}; {DAMAGED})") from err
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
        raise IndexFormatError(
            f"{path}: a {embeddings.dtype} array of shape {embeddings.shape}, not [N, D] "
            f"floats ({DAMAGED})"
        )
    return embeddings.astype(np.float32, copy=False)


def _read_entries(folder: str) -> list[dict]:
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
                    raise IndexFormatError(
                        f"{path}: line {number} is not JSON ({err}; {DAMAGED})"
                    ) from err
                if not isinstance(entry, dict) or "id" not in entry or "kind" not in entry:
                    raise IndexFormatError(
                        f"{path}: line {number} is not an index entry ({DAMAGED})"
                    )
                entries.append(entry)
    except FileNotFoundError as err:
        raise IndexFormatError(f"{path}: missing ({DAMAGED})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise IndexFormatError(f"{path}: cannot read ({err}; {DAMAGED})") from err
    return entries


def load_index(folder: str | os.PathLike) -> SpeechIndex:
    """The index in ``folder``.

    Raises
    ------
    IndexFormatError
        Not an index, or a damaged one (the message names the file).

    Example
    -------
    >>> import tempfile
    >>> load_index(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sense.index.IndexFormatError: ...: not a sense index (no index.json); build one with `sense index`
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise IndexFormatError(f"{folder}: no such index folder")
    if not os.path.isfile(os.path.join(folder, INDEX_INFO)):
        raise IndexFormatError(
            f"{folder}: not a sense index (no {INDEX_INFO}); build one with `sense index`"
        )
    info = _read_info(folder)
    embeddings = _read_embeddings(folder)
    entries = _read_entries(folder)
    if len(entries) != embeddings.shape[0]:
        raise IndexFormatError(
            f"{folder}: {len(entries)} entries for {embeddings.shape[0]} embeddings ({DAMAGED})"
        )
    if embeddings.shape[1] != info["dim"]:
        raise IndexFormatError(
            f"{os.path.join(folder, INDEX_EMBEDDINGS)}: {embeddings.shape[1]}-dim embeddings, "
            f"{INDEX_INFO} says {info['dim']} ({DAMAGED})"
        )
    return SpeechIndex(info, embeddings, entries)


__all__ = [
    "ENTRY_KINDS",
    "INDEX_FORMAT",
    "IndexFormatError",
    "SpeechIndex",
    "is_index_folder",
    "load_index",
]
