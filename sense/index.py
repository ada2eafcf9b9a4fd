"""A search index over recordings and sentences: build, add, search, save, load.

An index folder holds four files, and two more in some:

- ``index.json``: the format, the model that built it (and a fingerprint of
  its files), the embedding size and how recordings were cut into windows;
- ``embeddings.npy``: ``[N, D]`` float32 (or float16, half the size, or
  uint8 codes with ``--dtype int8``, a quarter: :mod:`sense.storage`)
  embeddings, one row per entry, memory-mapped when loaded;
- ``quantizer.npy``: ``[2, D]`` ranges of the 8-bit codes (int8 storage only);
- ``ann.faiss``: an approximate structure over the rows (IVF, IVF-PQ or
  HNSW: :mod:`sense.ann`), memory-mapped, searched instead of every row;
  ``index.json`` records its kind, search depth and measured recall@10.
  An approximate search reads ``ann.faiss`` only: ``embeddings.npy`` stays
  memory-mapped and unread (the scores and rows are faiss's), except for a
  query faiss finds fewer than ``k`` hits for, which is searched exactly,
  and the rows of one kind that :meth:`SpeechIndex.select` copies;
- ``entries.jsonl``: one JSON object per row, ``{"id", "kind": "audio" | "text",
  "path", ...}`` with ``start``/``end`` (seconds) for a window and
  ``line``/``text`` for a sentence;
- ``files.jsonl``: one JSON object per indexed file, ``{"path", "size",
  "mtime_ns", "sha"}`` (:func:`sense.io.file_fingerprint`), so that adding
  files knows which ones changed (format version 2; a version 1 index has
  none and is still read; version 3 is written only with int8 storage or
  an ``ann.faiss``, versions 1 and 2 are still read).

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
import re
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sense.io import atomic_write, save_npy_atomic, staged_folder, write_text_atomic
from sense.storage import QUANTIZER_FILE, STORAGE_DTYPES

if TYPE_CHECKING:
    import numpy as np

INDEX_INFO = "index.json"
INDEX_EMBEDDINGS = "embeddings.npy"
INDEX_ENTRIES = "entries.jsonl"
INDEX_FORMAT = "sense-index"
INDEX_FILES = "files.jsonl"
INDEX_VERSION = 2
#: The version of an index with int8 storage or an approximate structure.
INDEX_VERSION_ANN = 3
#: Format versions :func:`load_index` reads (version 1 has no ``files.jsonl``).
READABLE_VERSIONS = (1, 2, 3)
ENTRY_KINDS = ("text", "audio")
#: Rows of the index scored at once by :meth:`SpeechIndex.search` (as float32).
SEARCH_ROWS = 1 << 16
#: Scores of a float32 index computed at once (16 MB, within a server CPU's last-level
#: cache, so the top-k reads them from there): one query scores up to 4M rows in one
#: block; 256 queries score 16,384 rows a block, 1.25x one matmul + top-k at 1M rows
#: (64 MB blocks: 1.09x; docs/benchmarks/cpu-search.md, run 5).
SEARCH_SCORES = 1 << 22
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
        [N, D] embeddings, kept as float16 when given so (see
        :data:`sense.storage.STORAGE_DTYPES`), as float32 otherwise; or
        [N, D] uint8 codes with their ``quantizer``.
    entries : list of dict
        One per row: ``id``, ``kind`` and where it comes from.
    files : dict, optional
        ``path -> fingerprint`` of the files indexed (:func:`sense.io.file_fingerprint`).
    quantizer : numpy.ndarray, optional
        [2, D] ranges of 8-bit codes (:func:`sense.storage.train_int8`).
    ann : faiss.Index, optional
        An approximate structure over the rows, described by ``info["ann"]``
        (:func:`sense.ann.build_ann`); searched instead of every row.

    Example
    -------
    >>> import numpy as np
    >>> index = SpeechIndex({"model": "m"}, np.ones((1, 2), np.float32), [{"id": "a", "kind": "text"}])
    >>> index.add(np.zeros((1, 2), np.float32), [{"id": "b", "kind": "audio"}])
    >>> len(index), index.info["size"]
    (2, 2)
    """

    def __init__(
        self,
        info: dict,
        embeddings: np.ndarray,
        entries: Sequence[dict],
        files: dict[str, dict] | None = None,
        *,
        quantizer: np.ndarray | None = None,
        ann=None,
    ):
        import numpy as np

        if quantizer is not None:
            dtype = np.uint8
        elif np.asarray(embeddings).dtype == np.uint8:
            raise ValueError("8-bit codes need their quantizer (SpeechIndex.subset keeps it)")
        else:
            dtype = np.float16 if np.asarray(embeddings).dtype == np.float16 else np.float32
        self.embeddings = np.ascontiguousarray(embeddings, dtype=dtype)
        self.quantizer = quantizer
        self.entries = list(entries)
        if self.embeddings.ndim != 2 or len(self.entries) != self.embeddings.shape[0]:
            raise ValueError(
                f"{len(self.entries)} entries for embeddings of shape {self.embeddings.shape}"
            )
        self.info = {**info, "format": INDEX_FORMAT}  # its format_version: _count
        self.files = dict(files or {})
        self.ann = ann
        self._rows = None  # a select()ed index: its rows in the ann's numbering
        self._duplicates = None  # cached groups of identical rows (float32 storage)
        if ann is None:
            self.info.pop("ann", None)
        self._count()

    def _count(self) -> None:
        self.info["size"] = int(self.embeddings.shape[0])
        self.info["dim"] = int(self.embeddings.shape[1])
        self.info["dtype"] = "int8" if self.quantizer is not None else str(self.embeddings.dtype)
        needs_v3 = self.ann is not None or self.quantizer is not None
        self.info["format_version"] = INDEX_VERSION_ANN if needs_v3 else INDEX_VERSION

    def _changed(self) -> None:
        """Rows changed: the approximate structure is rebuilt when saved."""
        self.ann = None
        self.info.pop("ann", None)
        self._duplicates = None
        self._count()

    def rows(self, which=slice(None)) -> np.ndarray:
        """``[M, D]`` float32 rows (a slice or row numbers), decoded from int8 or float16.

        Example
        -------
        >>> import numpy as np
        >>> SpeechIndex({"model": "m"}, np.eye(2, dtype=np.float16),
        ...     [{"id": "a", "kind": "text"}, {"id": "b", "kind": "text"}]).rows([1]).tolist()
        [[0.0, 1.0]]
        """
        from sense.storage import as_float32

        return as_float32(self.embeddings[which], self.quantizer)

    def build_ann(self, index_type: str = "auto") -> dict | None:
        """Build the approximate structure ``index_type`` means at this size (none for flat).

        Records the requested type in ``info["index_type"]`` (``--add`` and
        ``--remove`` rebuild with it) and the structure in ``info["ann"]``;
        returns that record, or ``None`` for exact search.

        Example
        -------
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
        >>> index = SpeechIndex({"model": "m"}, x, [{"id": str(i), "kind": "text"} for i in range(500)])
        >>> index.build_ann("ivf")["factory"], index.build_ann("flat"), index.ann
        ('IVF12,SQ8', None, None)
        """
        from sense.ann import build_ann, resolve_type

        self.info["index_type"] = index_type
        self._changed()
        kind = resolve_type(index_type, len(self))
        if kind == "flat" or not len(self):
            return None
        self.ann, self.info["ann"] = build_ann(
            self.embeddings, kind, decode=self.rows, exact=self._exact_rows
        )
        self._count()
        return self.info["ann"]

    def _exact_rows(self, queries, k: int):
        import torch

        return self._top_k(torch.as_tensor(queries, dtype=torch.float32), k, "auto")[1].numpy()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, embeddings: np.ndarray, entries: Sequence[dict]) -> None:
        """Append ``[M, D]`` embeddings and their ``M`` entries."""
        import numpy as np

        from sense.storage import encode_int8

        embeddings = np.asarray(embeddings)
        if embeddings.shape[1:] != self.embeddings.shape[1:] or len(entries) != len(embeddings):
            raise ValueError(
                f"cannot add {len(entries)} entries with embeddings of shape {embeddings.shape} "
                f"to an index of {self.embeddings.shape[1]}-dim embeddings"
            )
        if self.quantizer is not None:
            embeddings = encode_int8(embeddings, self.quantizer)
        embeddings = embeddings.astype(self.embeddings.dtype, copy=False)
        self.embeddings = np.concatenate([self.embeddings, embeddings])
        self.entries.extend(entries)
        self._changed()

    def drop_paths(self, paths) -> int:
        """Drop the entries (and file records) of ``paths``; returns how many entries went.

        Example
        -------
        >>> import numpy as np
        >>> index = SpeechIndex({"model": "m"}, np.eye(3, dtype=np.float32),
        ...     [{"id": p, "kind": "audio", "path": p} for p in ("a", "b", "c")])
        >>> index.drop_paths({"b"}), [e["id"] for e in index.entries], index.embeddings[:, 2].tolist()
        (1, ['a', 'c'], [0.0, 1.0])
        """
        paths = set(paths)
        keep = [i for i, entry in enumerate(self.entries) if entry.get("path") not in paths]
        dropped = len(self.entries) - len(keep)
        self.embeddings = self.embeddings[keep]
        self.entries = [self.entries[i] for i in keep]
        self.files = {p: fp for p, fp in self.files.items() if p not in paths}
        if dropped:
            self._changed()
        return dropped

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
        if len(keep) == len(self):
            return self
        return self.subset(keep)

    def subset(self, rows) -> SpeechIndex:
        """The index of some rows (ascending row numbers), searched as this one is.

        The rows keep their storage (int8 codes with their quantizer) and the
        approximate structure, which is asked for these rows only.

        Example
        -------
        >>> import numpy as np
        >>> index = SpeechIndex({"model": "m"}, np.eye(3, dtype=np.float32),
        ...     [{"id": i, "kind": "text"} for i in "abc"])
        >>> [h["id"] for h in index.subset([0, 2]).search(np.ones((1, 3)), k=2)[0]]
        ['a', 'c']
        """
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        part = SpeechIndex(
            self.info,
            self.embeddings[rows],
            [self.entries[i] for i in rows],
            self.files,
            quantizer=self.quantizer,
            ann=self.ann,
        )
        parent = np.arange(len(self)) if self._rows is None else self._rows
        part._rows = parent[rows]  # the ann still numbers rows as the whole index
        return part

    def search(
        self, queries, k: int = 5, backend: str = "auto", exact: bool = False
    ) -> list[list[dict]]:
        """The top ``k`` entries of each query, as entries with ``rank`` and ``score``.

        Parameters
        ----------
        queries : numpy.ndarray or torch.Tensor
            [Nq, D] query embeddings (from the model that built the index).
        k : int
            Hits per query (at most the index's size).
        backend : {"auto", "faiss", "torch"}
            Exact search with faiss or torch (:func:`sense.retrieval.search`).
        exact : bool
            Search every row even when the index has an approximate structure
            (by default that structure is searched: :mod:`sense.ann`).
        """
        import numpy as np
        import torch

        if isinstance(queries, np.ndarray):  # a copy: it may be read-only (memory-mapped)
            queries = np.array(queries, dtype=np.float32)
        queries = torch.as_tensor(queries, dtype=torch.float32).reshape(-1, self.info["dim"])
        k = min(k, len(self))
        if self.ann is not None and not exact:
            scores, indices = self._top_k_ann(queries, k, backend)
        else:
            scores, indices = self._top_k(queries, k, backend)
        return [
            [
                {"rank": r, "score": round(s, 6), **self.entries[i]}
                for r, (s, i) in enumerate(zip(row_scores, row_indices), 1)
            ]
            for row_scores, row_indices in zip(scores.tolist(), indices.tolist())
        ]

    def _top_k_ann(self, queries, k: int, backend: str):
        """Top-k through the approximate structure, ties in row order.

        A :meth:`select`ed index asks faiss for its rows only (an id
        selector); a query for which faiss finds fewer than ``k`` of them is
        searched exactly.
        """
        import numpy as np
        import torch

        from sense.ann import ann_search, search_params

        params = search_params(self.ann, self.info["ann"], self._rows)
        scores, found = ann_search(self.ann, queries.numpy(), k, params)
        if self._rows is not None:  # the ann's numbering -> this index's rows
            found = np.where(found >= 0, np.searchsorted(self._rows, found), -1)
        order = np.lexsort((np.where(found < 0, len(self), found), -scores), axis=1)
        scores = np.take_along_axis(scores, order, 1)
        found = np.take_along_axis(found, order, 1)
        scores, found = torch.from_numpy(scores.copy()), torch.from_numpy(found.astype(np.int64))
        short = (found < 0).any(dim=1)
        if bool(short.any()):
            rows = short.nonzero().squeeze(1)
            scores[rows], found[rows] = self._top_k(queries[rows], k, backend)
        return scores, found

    def _top_k(self, queries, k: int, backend: str):
        """Exact top-k, each row scored as float32; on a tie the lower row ranks first.

        float32 storage is searched in place (memory-mapped, no copy; with
        torch unless ``backend="faiss"``, which copies it), its identical rows
        found once and kept; float16 and int8 storage are decoded and
        searched :data:`SEARCH_ROWS` rows at a time.
        """
        import warnings

        import numpy as np
        import torch

        from sense.retrieval import DEFAULT_CHUNK_SIZE, find_duplicates, search

        if self.embeddings.dtype == np.float32:
            with warnings.catch_warnings():  # read-only memory map: search never writes it
                warnings.simplefilter("ignore", UserWarning)
                database = torch.from_numpy(self.embeddings)
            if self._duplicates is None:
                self._duplicates = (find_duplicates(database),)
            backend = "torch" if backend == "auto" else backend  # faiss would copy the rows
            rows = max(DEFAULT_CHUNK_SIZE, SEARCH_SCORES // len(queries))  # few queries: one block
            return search(
                queries, database, k, rows, backend=backend, duplicates=self._duplicates[0]
            )
        best = None
        for start in range(0, len(self), SEARCH_ROWS):
            block = torch.from_numpy(self.rows(slice(start, start + SEARCH_ROWS)))
            scores, indices = search(queries, block, k=min(k, len(block)), backend=backend)
            indices += start
            if best is not None:  # earlier blocks first: a stable sort keeps ties in row order
                scores = torch.cat([best[0], scores], dim=1)
                indices = torch.cat([best[1], indices], dim=1)
                scores, order = scores.sort(dim=1, descending=True, stable=True)
                indices = indices.gather(1, order)
            best = scores[:, :k], indices[:, :k]
        return best

    def save(self, folder: str | os.PathLike) -> None:
        """Write the index folder, published whole (the old one stays until then)."""
        info = dict(self.info)
        info.setdefault(
            "created",
            datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        if self.ann is None and "index_type" in info:  # rows changed since it was built
            self.build_ann(info["index_type"])
            info = {**info, **self.info}
        with staged_folder(folder) as tmp:
            save_npy_atomic(os.path.join(tmp, INDEX_EMBEDDINGS), self.embeddings)
            if self.quantizer is not None:
                save_npy_atomic(os.path.join(tmp, QUANTIZER_FILE), self.quantizer)
            if self.ann is not None:
                from sense.ann import write_ann

                write_ann(self.ann, os.path.join(tmp, self.info["ann"]["file"]))
            lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.entries)
            write_text_atomic(os.path.join(tmp, INDEX_ENTRIES), lines)
            files = "".join(
                json.dumps({"path": p, **fp}, ensure_ascii=False) + "\n"
                for p, fp in self.files.items()
            )
            write_text_atomic(os.path.join(tmp, INDEX_FILES), files)
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
    version = info.get("format_version", 1)
    if version not in READABLE_VERSIONS:
        raise IndexFormatError(
            f"{path}: format version {version}; this sense reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (upgrade sense, or rebuild the index)"
        )
    return info


def _read_quantizer(folder: str, info: dict) -> np.ndarray | None:
    """The ``[2, D]`` ranges of an int8 index (none otherwise)."""
    if info.get("dtype") != "int8":
        return None
    path = os.path.join(folder, QUANTIZER_FILE)
    quantizer = _load_npy(path)
    if quantizer.shape != (2, info["dim"]):
        raise IndexFormatError(
            f"{path}: shape {quantizer.shape}, not (2, {info['dim']}) ({DAMAGED})"
        )
    return quantizer


def _read_ann(folder: str, info: dict):
    """The approximate structure of ``info["ann"]`` (none when there is no record)."""
    record = info.get("ann")
    if not record:
        return None
    path = os.path.join(folder, record.get("file", "ann.faiss"))
    if not os.path.isfile(path):
        raise IndexFormatError(f"{path}: missing ({DAMAGED})")
    from sense.ann import read_ann

    try:
        ann = read_ann(path, record)
    except (RuntimeError, KeyError, ValueError) as err:
        raise IndexFormatError(f"{path}: not a readable faiss index ({err}; {DAMAGED})") from err
    if ann.ntotal != info["size"] or ann.d != info["dim"]:
        raise IndexFormatError(
            f"{path}: {ann.ntotal} rows of {ann.d} dims for an index of {info['size']} "
            f"rows of {info['dim']} ({DAMAGED})"
        )
    return ann


def _load_npy(path: str) -> np.ndarray:
    import numpy as np

    if not os.path.isfile(path):
        raise IndexFormatError(f"{path}: missing ({DAMAGED})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise IndexFormatError(f"{path}: not a complete .npy array ({err}; {DAMAGED})") from err


def _read_embeddings(folder: str, info: dict) -> np.ndarray:
    import numpy as np

    path = os.path.join(folder, INDEX_EMBEDDINGS)
    embeddings = _load_npy(path)
    codes = info.get("dtype") == "int8"
    stored_as = embeddings.dtype == np.uint8 if codes else embeddings.dtype.kind == "f"
    if embeddings.ndim != 2 or not stored_as:
        raise IndexFormatError(
            f"{path}: a {embeddings.dtype} array of shape {embeddings.shape}, not [N, D] "
            f"{'8-bit codes' if codes else 'floats'} ({DAMAGED})"
        )
    return embeddings  # memory-mapped: read as searched (8-bit codes decoded then)


def _read_files(folder: str, version: int) -> dict[str, dict]:
    """``path -> fingerprint`` of ``files.jsonl`` (none in a version 1 index)."""
    if version < 2:
        return {}
    records = _read_jsonl(os.path.join(folder, INDEX_FILES), ("path", "sha"), "a file record")
    return {r.pop("path"): r for r in records}


def _read_entries(folder: str) -> list[dict]:
    return _read_jsonl(os.path.join(folder, INDEX_ENTRIES), ("id", "kind"), "an index entry")


def _read_jsonl(path: str, keys: tuple[str, ...], what: str) -> list[dict]:
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
                if not isinstance(entry, dict) or any(key not in entry for key in keys):
                    raise IndexFormatError(f"{path}: line {number} is not {what} ({DAMAGED})")
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
    embeddings = _read_embeddings(folder, info)
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
    files = _read_files(folder, info.get("format_version", 1))
    quantizer, ann = _read_quantizer(folder, info), _read_ann(folder, info)
    return SpeechIndex(info, embeddings, entries, files, quantizer=quantizer, ann=ann)


PARTIAL_SUFFIX = ".partial"
PARTIAL_FORMAT = "sense-index-partial"
PARTIAL_SETTINGS = "settings.json"
#: A record of finished files: ``done-<hash>.npz`` (``keys``, ``emb<i>``, ``spans<i>``).
PARTIAL_RECORD = re.compile(r"^done-[0-9a-f]{16}\.npz$")


def file_key(path: str, fingerprint: dict) -> str:
    """The key of one version of a file: its absolute path and fingerprint.

    Example
    -------
    >>> file_key("a.wav", {"size": 4, "mtime_ns": 1, "sha": "0"}) == file_key(
    ...     "a.wav", {"size": 4, "mtime_ns": 2, "sha": "0"})
    False
    """
    import hashlib

    text = json.dumps([os.path.abspath(path), fingerprint], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def partial_folder(output: str | os.PathLike) -> str:
    """The work folder of an index being built: ``<output>.partial`` beside it.

    Example
    -------
    >>> partial_folder("talks.index/")
    'talks.index.partial'
    """
    return os.path.normpath(os.fspath(output)) + PARTIAL_SUFFIX


class PartialWork:
    """The finished files of an index build, kept on disk so that a rerun resumes.

    Each finished batch of files is one record written atomically (a file is
    finished once its record is there, never half-written), holding each
    file's ``[W, D]`` embeddings (and ``[W, 2]`` window spans) under its
    :func:`file_key`. ``settings.json`` holds the model's fingerprint and the
    settings: work made with others is not reused. Several processes may add
    records to one folder (``PartialWork(folder, settings)`` writes without
    reading; a record is named by its files' keys, so two processes with
    different files never write the same one): one of them opens it and,
    once all are done, reads the others' records (:meth:`refresh`).

    Parameters
    ----------
    folder : str
        The work folder (created when missing).
    settings : dict
        What the embeddings depend on (model fingerprint, window settings, ...).

    Example
    -------
    >>> import os, tempfile, numpy as np
    >>> folder = os.path.join(tempfile.mkdtemp(), "my.index.partial")
    >>> work, stale = PartialWork.open(folder, {"model_fingerprint": "abc"})
    >>> work.put({"k1": (np.ones((2, 3), np.float32), None)})
    >>> again, stale = PartialWork.open(folder, {"model_fingerprint": "abc"})
    >>> "k1" in again, again.get("k1")[0].shape, stale
    (True, (2, 3), False)
    >>> other, stale = PartialWork.open(folder, {"model_fingerprint": "xyz"})
    >>> "k1" in other, stale
    (False, True)
    >>> other.remove(); os.path.exists(folder)
    False
    """

    def __init__(self, folder: str, settings: dict):
        self.folder = folder
        self.settings = settings
        self.done: dict[str, tuple] = {}
        self.records: set[str] = set()  # the record files read or written here

    @classmethod
    def open(cls, folder: str | os.PathLike, settings: dict) -> tuple[PartialWork, bool]:
        """The work in ``folder`` if made with ``settings``; else a fresh one.

        Returns ``(work, stale)``: ``stale`` when earlier work was there but
        made with another model or settings (it is deleted).
        """
        import shutil

        work = cls(os.fspath(folder), settings)
        stale = False
        if os.path.isdir(work.folder):
            if work._read_settings() == settings:
                work._load_records()
                return work, False
            stale = True
            shutil.rmtree(work.folder)
        with staged_folder(work.folder) as tmp:  # never a work folder without its settings
            write_text_atomic(
                os.path.join(tmp, PARTIAL_SETTINGS),
                json.dumps({"format": PARTIAL_FORMAT, "settings": settings}, indent=2) + "\n",
            )
        return work, stale

    @staticmethod
    def is_partial(folder: str | os.PathLike) -> bool:
        """Whether ``folder`` is the work folder of an index build (safe to replace)."""
        return PartialWork(os.fspath(folder), {})._read_settings() is not None

    def _read_settings(self) -> dict | None:
        try:
            with open(os.path.join(self.folder, PARTIAL_SETTINGS), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != PARTIAL_FORMAT:
            return None
        return data.get("settings")

    def _load_records(self) -> None:
        import numpy as np

        for name in sorted(os.listdir(self.folder)):
            path = os.path.join(self.folder, name)
            if name in self.records:
                continue
            if not PARTIAL_RECORD.match(name):
                if name != PARTIAL_SETTINGS:  # the temporary file of a killed write
                    os.remove(path)
                continue
            try:
                with np.load(path, allow_pickle=False) as record:
                    for i, key in enumerate(record["keys"].tolist()):
                        spans = record[f"spans{i}"] if f"spans{i}" in record else None
                        self.done[key] = (record[f"emb{i}"], spans)
                self.records.add(name)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                os.remove(path)  # damaged: its files are embedded again

    def refresh(self) -> None:
        """Read the records other processes wrote since (once none of them writes any more).

        Example
        -------
        >>> import os, tempfile, numpy as np
        >>> folder = os.path.join(tempfile.mkdtemp(), "my.index.partial")
        >>> work, _ = PartialWork.open(folder, {})
        >>> PartialWork(folder, {}).put({"k2": (np.ones((1, 3), np.float32), None)})
        >>> "k2" in work, work.refresh(), "k2" in work
        (False, None, True)
        """
        self._load_records()

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def __len__(self) -> int:
        return len(self.done)

    def get(self, key: str) -> tuple:
        """``(embeddings [W, D], spans [W, 2] or None)`` of a finished file."""
        return self.done[key]

    def put(self, results: dict[str, tuple]) -> None:
        """Record finished files, ``key -> (embeddings, spans or None)``, in one atomic write."""
        import hashlib

        import numpy as np

        if not results:
            return
        keys = list(results)
        arrays = {"keys": np.array(keys)}
        for i, key in enumerate(keys):
            embeddings, spans = results[key]
            arrays[f"emb{i}"] = np.asarray(embeddings, dtype=np.float32)
            if spans is not None:
                arrays[f"spans{i}"] = np.asarray(spans, dtype=np.float64)
        name = hashlib.sha256("\0".join(keys).encode()).hexdigest()[:16]

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(os.path.join(self.folder, f"done-{name}.npz"), write)
        self.records.add(f"done-{name}.npz")
        self.done.update({key: (arrays[f"emb{i}"], results[key][1]) for i, key in enumerate(keys)})

    def remove(self) -> None:
        """Delete the work folder (once the index is published)."""
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


__all__ = [
    "ENTRY_KINDS",
    "INDEX_FORMAT",
    "STORAGE_DTYPES",
    "IndexFormatError",
    "PartialWork",
    "SpeechIndex",
    "file_key",
    "is_index_folder",
    "load_index",
    "partial_folder",
]
