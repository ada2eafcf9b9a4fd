"""Translation retrieval: mean subtraction, exact top-k search, R@k and MRR.

The SENSE paper (section V-A) evaluates an encoder by translation retrieval:
each query (speech in language X) is embedded, every entry of a search
database (speech or text in language Y) is embedded, both sets are centred on
their own mean, and the query must find its translation by similarity.
Recall@k is the share of queries whose translation is among the ``k`` best
entries; the mean reciprocal rank (MRR) averages ``1 / rank`` over queries.

Everything here is exact and scales to the paper's largest setting (MUST-C:
5K queries against a 280K x 1024 search database) without building the full
score matrix: queries and database are scored block by block in float32.

Ranking rule
------------
Entries are ordered by decreasing inner product; **on an exact tie the lower
database index wins**. Duplicate database rows (a sentence such as
"Thank you." occurs hundreds of times in a MUST-C text database) are detected
and scored once, so they tie exactly whatever the BLAS kernel does: a
matrix product does not promise bit-identical results for identical rows at
different positions. Two *distinct* rows whose scores differ only by float32
rounding are ordered by the float32 scores as computed.

Example
-------
>>> g = torch.Generator().manual_seed(0)
>>> text = torch.randn(100, 16, generator=g)
>>> speech = text + 0.1 * torch.randn(100, 16, generator=g)
>>> recall_at_k(speech, text, torch.arange(100), k=1)
1.0
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_QUERY_CHUNK_SIZE",
    "find_duplicates",
    "mean_subtract",
    "prepare_embeddings",
    "recall_at_k",
    "retrieval_metrics",
    "search",
    "target_ranks",
]

#: Database rows scored at once (with 1024 queries: a 64 MB float32 block).
DEFAULT_CHUNK_SIZE = 16384
#: Queries scored at once.
DEFAULT_QUERY_CHUNK_SIZE = 1024
#: faiss is asked for ``k + FAISS_TIE_MARGIN`` candidates so that ties at the
#: k-th place can be re-ranked by index; rows whose ties run past the margin
#: are searched again exactly with torch.
FAISS_TIE_MARGIN = 16
#: Number of leading columns hashed to find candidate duplicate rows (exact
#: comparison of the candidates follows, so collisions cost time, never
#: correctness); 8 float32 are 32 bytes, one cache line a row.
_HASH_COLUMNS = 8
#: Hash multipliers stay below 2**26 so that 32 products of int32 bit
#: patterns sum without int64 overflow.
_HASH_MULTIPLIER_BITS = 26
_HASH_SEED = 20240917
_BACKENDS = ("auto", "faiss", "torch")
#: ``backend="auto"`` on a CPU times both backends once on a probe of this
#: size, for searches of at least ``PROBE_WORK`` multiply-adds; smaller ones use torch.
PROBE_QUERIES = 256
PROBE_DATABASE = 16384
PROBE_WORK = 100 * PROBE_QUERIES * PROBE_DATABASE * 256


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _as_matrix(x, name: str, check_finite: bool = True) -> torch.Tensor:
    """Validate an embedding matrix and return it as a float32 tensor.

    float16 / bfloat16 / float64 / integer inputs are cast to float32, so
    that scores (and therefore ties) are computed in one precision. Without
    ``check_finite`` the values are not read (a search checks its scores:
    :func:`_check_scores`).
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D [N, D] matrix, got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.detach().to(torch.float32)
    if check_finite:
        _check_finite(x, name)
    return x


def _check_finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(f"{name} has {bad} row(s) with NaN or infinite values")


def _check_scores(scores: torch.Tensor, database: torch.Tensor) -> None:
    """Refuse a database with NaN or infinite values, found from a block of scores.

    A non-finite database row makes every score with it non-finite (the
    queries are checked finite), so the block's sum is; reading the scores
    costs ``1 / D`` of reading the database.
    """
    if not bool(torch.isfinite(scores.sum())):
        _check_finite(database, "database")  # or a finite overflow: go on


def _check_pair(queries: torch.Tensor, database: torch.Tensor) -> None:
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries and database must have the same dimension, got "
            f"{queries.shape[1]} and {database.shape[1]}"
        )
    if queries.device != database.device:
        raise ValueError(
            f"queries are on {queries.device} and database on {database.device}: "
            "put both on one device"
        )


def _as_targets(targets, n_query: int, n_database: int, device: torch.device) -> torch.Tensor:
    if isinstance(targets, np.ndarray):
        targets = torch.from_numpy(targets)
    elif not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(list(targets))
    if targets.dim() != 1 or targets.shape[0] != n_query:
        raise ValueError(
            f"targets must be a 1-D [Nq] tensor with one index per query ({n_query}), "
            f"got shape {tuple(targets.shape)}"
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer indices, got dtype {targets.dtype}")
    targets = targets.to(device=device, dtype=torch.int64)
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= n_database:
        raise ValueError(
            f"targets must index the database (0 <= t < {n_database}), got values in [{low}, {high}]"
        )
    return targets


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------


def mean_subtract(x: torch.Tensor) -> torch.Tensor:
    """Centre a set of embeddings on its own mean, then L2-normalise each row.

    The paper normalises the query database and the search database each by
    its own mean; after the row normalisation an inner product is a cosine
    similarity. A row equal to the mean becomes the zero vector.

    Parameters
    ----------
    x : torch.Tensor
        [N, D] embeddings, any floating dtype (computed in at least float32).

    Returns
    -------
    torch.Tensor
        [N, D] float32 (float64 for float64 input) rows of unit norm.

    Example
    -------
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    >>> mean_subtract(x)
    tensor([[-1.,  0.],
            [ 1.,  0.]])
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"mean_subtract expects a non-empty [N, D] tensor, got {shape}")
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    return F.normalize(x - x.mean(dim=0, keepdim=True), dim=1)


def prepare_embeddings(x, mean_subtract: bool = True) -> torch.Tensor:
    """Validate and prepare one side of a retrieval (queries or database).

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        [N, D] embeddings.
    mean_subtract : bool
        Centre on the set's own mean first (the paper's protocol); without
        it the rows are only L2-normalised (plain cosine similarity).

    Returns
    -------
    torch.Tensor
        [N, D] float32, unit-norm rows.

    Example
    -------
    >>> x = prepare_embeddings(torch.randn(4, 3))
    >>> x.shape, torch.allclose(x.norm(dim=1), torch.ones(4))
    (torch.Size([4, 3]), True)
    """
    return _prepare(_as_matrix(x, "embeddings"), mean_subtract)


def _prepare(x: torch.Tensor, center: bool) -> torch.Tensor:
    """:func:`prepare_embeddings` on an already validated float32 matrix."""
    return mean_subtract(x) if center else F.normalize(x, dim=1)


# ---------------------------------------------------------------------------
# Duplicate database rows
# ---------------------------------------------------------------------------


@dataclass
class _Duplicates:
    """Groups of identical database rows, each scored once.

    Groups are numbered by their first occurrence, so comparing group numbers
    compares the lowest database index of each group.
    """

    first: torch.Tensor  # [Nu] lowest database index of each group, ascending
    inverse: torch.Tensor  # [Nd] group of each database row
    counts: torch.Tensor  # [Nu] rows per group
    offsets: torch.Tensor  # [Nu + 1] start of each group in `members`
    members: torch.Tensor  # [Nd] database indices grouped by group, ascending within
    before: torch.Tensor  # [Nd] rows of the same group with a lower index

    def count_below(self, groups: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
        """Number of rows of ``groups[i]`` with an index below ``limits[i]``."""
        n = self.inverse.shape[0]
        keys = self.inverse[self.members] * n + self.members  # sorted ascending
        return torch.searchsorted(keys, groups * n + limits) - self.offsets[groups]


def find_duplicates(database) -> _Duplicates | None:
    """The groups of identical rows of a ``[N, D]`` database, for :func:`search` to reuse.

    ``None`` when all rows differ. Finding them reads the first
    :data:`_HASH_COLUMNS` columns of every row (and compares candidates).

    Example
    -------
    >>> find_duplicates(torch.eye(3)) is None, find_duplicates(torch.ones(3, 2)).first.tolist()
    (True, [0])
    """
    return _find_duplicates(_as_matrix(database, "database", check_finite=False))


def _find_duplicates(x: torch.Tensor) -> _Duplicates | None:
    """Group the identical rows of ``x`` [N, D]; ``None`` when all differ."""
    n, dim = x.shape
    device = x.device
    # the leading columns: contiguous in each row, so one cache line or two a row
    bits = (x[:, :_HASH_COLUMNS] + 0.0).contiguous().view(torch.int32).long()  # -0.0 -> 0.0
    gen = torch.Generator().manual_seed(_HASH_SEED)
    weights = torch.randint(1, 2**_HASH_MULTIPLIER_BITS, (bits.shape[1],), generator=gen)
    keys = (bits * weights.to(device)).sum(dim=1)
    _, key_group, key_count = torch.unique(keys, return_inverse=True, return_counts=True)
    candidates = (key_count[key_group] > 1).nonzero().squeeze(1)
    if candidates.numel() == 0:
        return None
    # exact comparison of the candidate rows
    _, sub_group = torch.unique(x[candidates], dim=0, return_inverse=True)
    sub_first = torch.full((int(sub_group.max()) + 1,), n, dtype=torch.int64, device=device)
    sub_first.scatter_reduce_(0, sub_group, candidates, reduce="amin")
    representative = torch.arange(n, device=device)
    representative[candidates] = sub_first[sub_group]
    first = (representative == torch.arange(n, device=device)).nonzero().squeeze(1)
    if first.numel() == n:
        return None
    group_of_first = torch.full((n,), -1, dtype=torch.int64, device=device)
    group_of_first[first] = torch.arange(first.numel(), device=device)
    inverse = group_of_first[representative]
    counts = torch.bincount(inverse, minlength=first.numel())
    members = torch.argsort(inverse, stable=True)
    offsets = torch.zeros(first.numel() + 1, dtype=torch.int64, device=device)
    offsets[1:] = counts.cumsum(0)
    position = torch.empty_like(members)
    position[members] = torch.arange(n, device=device)
    before = position - offsets[inverse]
    return _Duplicates(first, inverse, counts, offsets, members, before)


# ---------------------------------------------------------------------------
# Top-k over distinct rows
# ---------------------------------------------------------------------------


def _order(scores: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (decreasing score, increasing index)."""
    index, perm = index.sort(dim=1)
    scores = scores.gather(1, perm)
    scores, perm = scores.sort(dim=1, descending=True, stable=True)
    return scores, index.gather(1, perm)


def _block_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of a score block [B, N] with the lower column winning ties."""
    extra = min(k + 1, scores.shape[1])
    values, index = scores.topk(extra, dim=1)
    # torch.topk picks arbitrarily among ties at the k-th place; there is one
    # exactly when the (k+1)-th best score equals the k-th: redo those rows
    tied = values[:, k] == values[:, k - 1] if extra > k else None
    values, index = _order(values[:, :k], index[:, :k])
    if tied is not None and bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        row_values, row_index = scores[rows].sort(dim=1, descending=True, stable=True)
        values[rows] = row_values[:, :k]
        index[rows] = row_index[:, :k]
    return values, index


@contextlib.contextmanager
def full_fp32():
    """Matrix products in full float32 inside (no TF32 on CUDA), whatever the global setting.

    Importing SpeechBrain turns TF32 on; a search scored with TF32 is not exact.

    Example
    -------
    >>> with full_fp32():
    ...     torch.backends.cuda.matmul.fp32_precision
    'ieee'
    """
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision = before


def _topk_torch(
    queries: torch.Tensor,
    database: torch.Tensor,
    k: int,
    chunk_size: int,
    query_chunk_size: int,
    skip: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running exact top-k over database blocks; [Nq, k] scores and indices.

    ``skip``: ascending rows never returned (scored ``-inf``: the later
    copies of identical rows), at most ``Nd - k`` of them.
    """
    n_query, n_database = queries.shape[0], database.shape[0]
    if skip is not None:
        bounds = torch.searchsorted(skip, torch.arange(0, n_database + chunk_size, chunk_size))
    out_scores = torch.empty(n_query, k, dtype=torch.float32, device=queries.device)
    out_index = torch.empty(n_query, k, dtype=torch.int64, device=queries.device)
    for q0 in range(0, n_query, query_chunk_size):
        block = queries[q0 : q0 + query_chunk_size]
        best_scores = best_index = None
        for d0 in range(0, n_database, chunk_size):
            scores = block @ database[d0 : d0 + chunk_size].T
            _check_scores(scores, database[d0 : d0 + chunk_size])
            if skip is not None:
                b = d0 // chunk_size
                scores[:, skip[bounds[b] : bounds[b + 1]] - d0] = float("-inf")
            values, index = _block_topk(scores, min(k, scores.shape[1]))
            index += d0
            if best_scores is None:
                best_scores, best_index = values, index
                continue
            # every running index is below every index of this block, and both
            # parts are already in (score, index) order: a stable sort merges them
            values = torch.cat([best_scores, values], dim=1)
            index = torch.cat([best_index, index], dim=1)
            values, perm = values.sort(dim=1, descending=True, stable=True)
            best_scores, best_index = values[:, :k], index.gather(1, perm[:, :k])
        out_scores[q0 : q0 + query_chunk_size] = best_scores
        out_index[q0 : q0 + query_chunk_size] = best_index
    return out_scores, out_index


def _topk_faiss(
    queries: torch.Tensor, database: torch.Tensor, k: int, chunk_size: int, query_chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inner-product top-k with faiss ``IndexFlatIP``, ties re-ranked."""
    import faiss

    n_database = database.shape[0]
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(np.ascontiguousarray(database.cpu().numpy()))
    wanted = min(k + FAISS_TIE_MARGIN, n_database)
    out_scores, out_index = [], []
    for q0 in range(0, queries.shape[0], query_chunk_size):
        block = queries[q0 : q0 + query_chunk_size]
        scores, found = index.search(np.ascontiguousarray(block.cpu().numpy()), wanted)
        _check_scores(torch.from_numpy(scores), database)
        scores, found = _order(torch.from_numpy(scores), torch.from_numpy(found))
        if wanted < n_database:
            # a tie at the k-th place that reaches the last candidate may hide
            # lower-index rows that faiss left out: search those rows exactly
            unsure = scores[:, k - 1] == scores[:, -1]
            if bool(unsure.any()):
                rows = unsure.nonzero().squeeze(1)
                exact = _topk_torch(
                    block.cpu()[rows], database.cpu(), k, chunk_size, query_chunk_size
                )
                scores[rows, :k], found[rows, :k] = exact
        out_scores.append(scores[:, :k])
        out_index.append(found[:, :k])
    device = queries.device
    return torch.cat(out_scores).to(device), torch.cat(out_index).to(device)


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_backend(backend: str, device: torch.device, shape: tuple[int, int, int]) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "faiss" and not _faiss_available():
        raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu")
    if backend != "auto":
        return backend
    n_query, n_database, dim = shape
    if device.type != "cpu" or not _faiss_available() or n_query * n_database * dim < PROBE_WORK:
        return "torch"
    return _faster_cpu_backend(dim)


@functools.cache
def _faster_cpu_backend(dim: int) -> str:
    """Time both backends once per process on a probe of this width; the faster one.

    Which wins depends on the CPU and its BLAS (measured both ways on two
    machines), so ``auto`` asks the machine at hand.
    """
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(PROBE_QUERIES, dim, generator=g)
    database = torch.randn(PROBE_DATABASE, dim, generator=g)
    seconds = {}
    for name, topk in (("torch", _topk_torch), ("faiss", _topk_faiss)):
        start = time.perf_counter()
        topk(queries, database, 1, DEFAULT_CHUNK_SIZE, DEFAULT_QUERY_CHUNK_SIZE)
        seconds[name] = time.perf_counter() - start
    return min(seconds, key=seconds.get)


def _expand(
    scores: torch.Tensor, groups: torch.Tensor, dup: _Duplicates, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of database rows from the top-k groups of identical rows.

    Every row of the top k lies in one of the k best groups (groups ordered by
    score, then lowest index), and at most its first k rows can qualify.
    """
    n_database = dup.inverse.shape[0]
    width = min(k, int(dup.counts.max()))
    slot = torch.arange(width, device=groups.device)
    take = dup.offsets[groups].unsqueeze(-1) + slot  # [Nq, k', width]
    valid = slot < dup.counts[groups].unsqueeze(-1)
    rows = torch.where(valid, dup.members[take.clamp(max=n_database - 1)], n_database)
    row_scores = torch.where(valid, scores.unsqueeze(-1), float("-inf"))
    row_scores, rows = _order(row_scores.flatten(1), rows.flatten(1))  # padding sorts last
    return row_scores[:, :k].contiguous(), rows[:, :k].contiguous()


@torch.no_grad()
def search(
    queries,
    database,
    k: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
    backend: str = "auto",
    duplicates="find",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k inner-product search, blockwise, with a fixed tie-break.

    The embeddings are used as given (call :func:`prepare_embeddings` first for
    the paper's mean-subtracted cosine). Scores are float32 whatever the input
    dtype. On an exact tie the lower database index ranks first, in both
    backends; identical database rows always tie exactly (module docstring).

    Parameters
    ----------
    queries : torch.Tensor or numpy.ndarray
        [Nq, D] query embeddings.
    database : torch.Tensor or numpy.ndarray
        [Nd, D] search database, on the same device as ``queries``.
    k : int
        Entries returned per query, ``1 <= k <= Nd``.
    chunk_size : int
        Database rows scored at once (torch backend; faiss blocks internally).
    query_chunk_size : int
        Queries scored at once.
    backend : str
        ``"faiss"`` (``IndexFlatIP``, CPU), ``"torch"`` (any device) or
        ``"auto"``: torch, except for a large search on a CPU where faiss
        proved faster in a one-time probe on this machine.
        Both apply the same tie-break and return the same indices, except
        between two distinct entries whose scores differ only by float32
        rounding (the two compute dot products in a different order); scores
        agree to float32 rounding.
    duplicates : optional
        The database's groups of identical rows from :func:`find_duplicates`
        (reused by a caller that searches one database many times), or
        ``"find"`` (default) to find them here.

    Returns
    -------
    scores : torch.Tensor
        [Nq, k] float32, decreasing along each row.
    indices : torch.Tensor
        [Nq, k] int64 database indices.

    Example
    -------
    >>> db = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> scores, indices = search(torch.tensor([[1.0, 0.1]]), db, k=2)
    >>> scores.shape, indices.tolist()
    (torch.Size([1, 2]), [[0, 2]])
    """
    queries = _as_matrix(queries, "queries")
    database = _as_matrix(database, "database", check_finite=False)  # checked as scored
    _check_pair(queries, database)
    k = _check_positive_int(k, "k")
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    query_chunk_size = _check_positive_int(query_chunk_size, "query_chunk_size")
    if k > database.shape[0]:
        raise ValueError(f"k={k} is larger than the database ({database.shape[0]} rows)")
    backend = _resolve_backend(backend, queries.device, (*queries.shape[:1], *database.shape))
    topk = _topk_faiss if backend == "faiss" else _topk_torch

    with full_fp32():
        dup = _find_duplicates(database) if isinstance(duplicates, str) else duplicates
        if dup is None:
            return topk(queries, database, k, chunk_size, query_chunk_size)
        wanted = min(k, dup.first.shape[0])
        if topk is _topk_torch:  # the later copies skipped in place: no copy of the database
            later = (dup.before > 0).nonzero().squeeze(1)
            scores, rows = topk(queries, database, wanted, chunk_size, query_chunk_size, later)
            return _expand(scores, dup.inverse[rows], dup, k)
        distinct = database[dup.first]
        scores, groups = topk(queries, distinct, wanted, chunk_size, query_chunk_size)
        return _expand(scores, groups, dup, k)


# ---------------------------------------------------------------------------
# Ranks and metrics
# ---------------------------------------------------------------------------


@torch.no_grad()
def target_ranks(
    queries,
    database,
    targets,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
) -> torch.Tensor:
    """Exact rank (1 = best) of each query's target in the full ranking.

    ``rank = 1 + #{entries with a higher score} + #{entries with the same
    score and a lower index}``, the ranking :func:`search` uses, counted
    blockwise with no sort. Embeddings are used as given (inner product).

    Parameters
    ----------
    queries : torch.Tensor or numpy.ndarray
        [Nq, D] query embeddings.
    database : torch.Tensor or numpy.ndarray
        [Nd, D] search database.
    targets : torch.Tensor or sequence of int
        [Nq] index in ``database`` of each query's correct entry.
    chunk_size, query_chunk_size : int
        Database rows and queries scored at once.

    Returns
    -------
    torch.Tensor
        [Nq] int64 ranks in ``[1, Nd]``.

    Example
    -------
    >>> db = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> target_ranks(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), db, [2, 1]).tolist()
    [2, 3]
    """
    queries, database, targets = _check_retrieval(queries, database, targets)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    query_chunk_size = _check_positive_int(query_chunk_size, "query_chunk_size")
    return _ranks(queries, database, targets, chunk_size, query_chunk_size)


def _check_retrieval(queries, database, targets):
    """Validate a retrieval problem; float32 matrices and int64 targets."""
    queries = _as_matrix(queries, "queries")
    database = _as_matrix(database, "database")
    _check_pair(queries, database)
    targets = _as_targets(targets, queries.shape[0], database.shape[0], queries.device)
    return queries, database, targets


def _ranks(
    queries: torch.Tensor,
    database: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
    query_chunk_size: int,
) -> torch.Tensor:
    """:func:`target_ranks` on validated inputs."""
    with full_fp32():
        return _ranks_fp32(queries, database, targets, chunk_size, query_chunk_size)


def _ranks_fp32(queries, database, targets, chunk_size, query_chunk_size) -> torch.Tensor:
    dup = _find_duplicates(database)
    if dup is None:
        distinct, target_group = database, targets
        ranks = torch.ones_like(targets)
    else:
        distinct, target_group = database[dup.first], dup.inverse[targets]
        ranks = 1 + dup.before[targets]  # identical rows with a lower index

    device = queries.device
    for q0 in range(0, queries.shape[0], query_chunk_size):
        block = queries[q0 : q0 + query_chunk_size]
        group = target_group[q0 : q0 + query_chunk_size]
        limit = targets[q0 : q0 + query_chunk_size]
        own = (block * distinct[group]).sum(dim=1, keepdim=True)  # [B, 1]
        ahead = torch.zeros(block.shape[0], dtype=torch.int64, device=device)
        for d0 in range(0, distinct.shape[0], chunk_size):
            scores = block @ distinct[d0 : d0 + chunk_size].T
            position = torch.arange(d0, d0 + scores.shape[1], device=device)
            other = position != group.unsqueeze(1)
            higher = (scores > own) & other
            equal = (scores == own) & other
            if dup is None:
                ahead += higher.sum(dim=1) + (equal & (position < limit.unsqueeze(1))).sum(dim=1)
                continue
            ahead += torch.where(higher, dup.counts[d0 : d0 + scores.shape[1]], 0).sum(dim=1)
            rows, cols = equal.nonzero(as_tuple=True)
            if rows.numel():
                ahead.index_add_(0, rows, dup.count_below(cols + d0, limit[rows]))
        ranks[q0 : q0 + query_chunk_size] += ahead
    return ranks


def _check_ks(ks) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    if not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    return tuple(_check_positive_int(k, "every k in ks") for k in ks)


@torch.no_grad()
def retrieval_metrics(
    queries,
    database,
    targets,
    ks: Sequence[int] = (1, 5, 10),
    mean_subtract: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
) -> dict[str, float | int]:
    """R@k for several k and the MRR, from one blockwise pass.

    Parameters
    ----------
    queries : torch.Tensor or numpy.ndarray
        [Nq, D] query embeddings (e.g. speech in language X).
    database : torch.Tensor or numpy.ndarray
        [Nd, D] search database (speech or text in language Y).
    targets : torch.Tensor or sequence of int
        [Nq] index in ``database`` of each query's translation.
    ks : sequence of int
        Cut-offs of the recalls.
    mean_subtract : bool
        Centre queries and database each on its own mean before the cosine
        similarity (the paper's protocol); otherwise plain cosine.
    chunk_size, query_chunk_size : int
        Database rows and queries scored at once.

    Returns
    -------
    dict
        ``"R@k"`` for each k and ``"MRR"``, fractions in [0, 1], plus
        ``"n_query"`` and ``"n_search"``, the sizes of the two databases.

    Example
    -------
    >>> x = torch.eye(4)
    >>> m = retrieval_metrics(x, x, torch.arange(4), ks=(1, 5))
    >>> m["R@1"], m["MRR"], m["n_search"]
    (1.0, 1.0, 4)
    """
    ks = _check_ks(ks)
    queries, database, targets = _check_retrieval(queries, database, targets)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    query_chunk_size = _check_positive_int(query_chunk_size, "query_chunk_size")
    queries = _prepare(queries, mean_subtract)
    database = _prepare(database, mean_subtract)
    ranks = _ranks(queries, database, targets, chunk_size, query_chunk_size)
    metrics: dict[str, float | int] = {f"R@{k}": float((ranks <= k).double().mean()) for k in ks}
    metrics["MRR"] = float((1.0 / ranks.double()).mean())
    metrics["n_query"] = int(queries.shape[0])
    metrics["n_search"] = int(database.shape[0])
    return metrics


def recall_at_k(queries, database, targets, k: int = 1, mean_subtract: bool = True) -> float:
    """Share of queries whose target is among the ``k`` best database entries.

    Parameters
    ----------
    queries : torch.Tensor or numpy.ndarray
        [Nq, D] query embeddings.
    database : torch.Tensor or numpy.ndarray
        [Nd, D] search database.
    targets : torch.Tensor or sequence of int
        [Nq] index in ``database`` of each query's correct entry.
    k : int
        Cut-off (the paper reports R@1).
    mean_subtract : bool
        Centre each side on its own mean before the cosine similarity.

    Returns
    -------
    float
        Recall in [0, 1]; exact ties go to the lower database index.

    Example
    -------
    >>> db = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> recall_at_k(db.flip(0), db, [0, 1], mean_subtract=False)
    0.0
    """
    metrics = retrieval_metrics(queries, database, targets, ks=(k,), mean_subtract=mean_subtract)
    return float(metrics[f"R@{k}"])
