"""Approximate nearest-neighbour structures (faiss) with a measured recall.

An index folder may hold ``ann.faiss`` beside its embeddings: an inverted
file (IVF) or graph (HNSW) over the same rows (faiss id = row number), built
by :func:`build_ann`. Building picks the structure (:func:`resolve_type`),
trains it, then tunes its search depth (IVF ``nprobe``, HNSW ``efSearch``)
on held-out queries until recall@10 against exact search reaches
:data:`TARGET_RECALL`, and records the recall it measured.

Index types (:data:`INDEX_TYPES`):

- ``flat``: none, exact search over the embeddings;
- ``ivf``: IVF with 8-bit scalar-quantised codes (``IVF<n>,SQ8``: one byte a
  dimension, plus faiss's 8-byte id a row); from :data:`RABITQ_FROM_DIM`
  dimensions on, with faiss's RaBitQ codes of :data:`RABITQ_BITS` bits a
  dimension instead (``IVF<n>,RaBitQ7``: 7/8 of a byte a dimension plus 20
  bytes a row, below a quarter of float32 with the ids and centroids);
- ``ivf-flat``: IVF with float32 codes (``IVF<n>,Flat``);
- ``ivfpq``: IVF with product-quantised codes (``IVF<n>,PQ<m>``: ``m`` bytes a row);
- ``hnsw``: an HNSW graph over 8-bit codes (``HNSW32,SQ8``);
- ``auto``: ``flat`` below :data:`AUTO_FLAT_BELOW` rows, ``ivf`` from there.

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
>>> x /= np.linalg.norm(x, axis=1, keepdims=True)
>>> ann, record = build_ann(x, "ivf")
>>> record["type"], record["factory"], record["recall_at_10"] >= TARGET_RECALL
('ivf', 'IVF32,SQ8', True)
>>> int(ann_search(ann, x[:1], 3)[1][0, 0])
0
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: What ``--index-type`` accepts.
INDEX_TYPES = ("auto", "flat", "ivf", "ivf-flat", "ivfpq", "hnsw")
#: ``auto`` searches exactly below this many rows (one query then costs ~25 ms on 2 cores).
AUTO_FLAT_BELOW = 50_000
#: ``auto``'s structure from :data:`AUTO_FLAT_BELOW` rows on.
AUTO_APPROXIMATE = "ivf"
#: The recall@10 against exact search that tuning aims at.
TARGET_RECALL = 0.95
RECALL_K = 10
#: Held-out queries the recall is measured on (at most the index's rows).
RECALL_QUERIES = 1000
#: Held-out query = a sampled row plus Gaussian noise of this norm relative to the row's.
RECALL_NOISE = 0.5
RECALL_SEED = 31
#: IVF lists: the power of two nearest ``sqrt(rows)``, within these bounds.
MIN_LISTS = 1
MAX_LISTS = 65536
#: Rows per list sampled to train the IVF centroids (faiss warns below 39).
TRAIN_ROWS_PER_LIST = 64
#: Rows sampled to train a structure at least (SQ8 ranges, HNSW).
MIN_TRAIN_ROWS = 1 << 14
#: Rows added to a structure at once.
ADD_ROWS = 1 << 16
#: Least rows per list: a small index gets fewer lists.
MIN_ROWS_PER_LIST = 39
#: Product-quantiser sub-vectors: one byte per this many dimensions.
PQ_DIMS_PER_BYTE = 8
PQ_BITS = 8
HNSW_LINKS = 32
#: ``ivf`` stores RaBitQ codes of this many bits a dimension from :data:`RABITQ_FROM_DIM`
#: dimensions on. SQ8's one byte a dimension is a quarter of float32 by itself, so with
#: faiss's 8-byte id a row and the centroids an ``IVF<n>,SQ8`` is always above a quarter
#: (0.253 at 1M x 1,024). RaBitQ7 (a sign bit and 6 more bits a dimension, rescaled per
#: row: 20 bytes of factors) is 916 bytes a row at 1,024 dims, 0.227 of float32 with the
#: ids and centroids. On 200,000 clustered 1,024-dim rows (docs/benchmarks/cpu-search.md)
#: it kept recall@10 0.97 (SQ8: 0.98), where SQ6 (0.19 of float32) fell to 0.94 and an
#: uncentred projection to 992 dims before SQ8 (0.25) to 0.84: the 32 dropped dimensions
#: held 1.2% of those rows' energy, enough to reorder near neighbours. Its cost is the
#: build: encoding a row takes ~30 times SQ8's time (331 s to build at 1M x 1,024).
RABITQ_BITS = 7
#: Below this many dimensions ``ivf`` keeps SQ8: RaBitQ's 20 bytes of factors a row outweigh
#: the 1/8 byte a dimension it saves (RaBitQ7 is smaller than SQ8 from 168 dims on), and its
#: recall was measured on 512 and 1,024 dims only.
RABITQ_FROM_DIM = 512
#: Search depths tried, smallest first, until the recall reaches the target.
NPROBE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
EF_SEARCH_STEPS = (16, 32, 64, 128, 256, 512, 1024)
ANN_FILE = "ann.faiss"
#: faiss's name of the search depth of each structure family.
DEPTH_PARAMETER = {"ivf": "nprobe", "hnsw": "efSearch"}


def resolve_type(index_type: str, rows: int) -> str:
    """The structure ``index_type`` means for an index of ``rows`` rows.

    Example
    -------
    >>> resolve_type("auto", 1000), resolve_type("auto", 1_000_000), resolve_type("hnsw", 5)
    ('flat', 'ivf', 'hnsw')
    """
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index type must be one of {INDEX_TYPES}, got {index_type!r}")
    if index_type == "auto":
        return "flat" if rows < AUTO_FLAT_BELOW else AUTO_APPROXIMATE
    return index_type


def ivf_lists(rows: int) -> int:
    """IVF lists for ``rows`` rows: the power of two nearest ``sqrt(rows)``, bounded.

    Example
    -------
    >>> ivf_lists(1_000_000), ivf_lists(2000), ivf_lists(10)
    (1024, 32, 1)
    """
    lists = 2 ** round(math.log2(max(rows, 1)) / 2)
    lists = min(lists, max(MIN_LISTS, rows // MIN_ROWS_PER_LIST))
    return max(MIN_LISTS, min(MAX_LISTS, lists))


def pq_bytes(dim: int) -> int:
    """Bytes of a product-quantised code: ``dim / 8`` rounded down to a divisor of ``dim``.

    Example
    -------
    >>> pq_bytes(1024), pq_bytes(36), pq_bytes(3)
    (128, 4, 1)
    """
    m = max(1, dim // PQ_DIMS_PER_BYTE)
    while dim % m:
        m -= 1
    return m


def factory_string(index_type: str, rows: int, dim: int) -> str:
    """The faiss factory string of a structure over ``rows`` x ``dim`` embeddings.

    Example
    -------
    >>> factory_string("ivf", 1_000_000, 1024), factory_string("ivfpq", 1_000_000, 1024)
    ('IVF1024,RaBitQ7', 'IVF1024,PQ128x8np')
    >>> factory_string("ivf", 1_000_000, 384)
    'IVF1024,SQ8'
    >>> factory_string("hnsw", 10, 4), factory_string("ivf-flat", 2000, 4)
    ('HNSW32,SQ8', 'IVF32,Flat')
    """
    lists = ivf_lists(rows)
    if index_type == "ivf":
        codes = f"RaBitQ{RABITQ_BITS}" if dim >= RABITQ_FROM_DIM else "SQ8"
        return f"IVF{lists},{codes}"
    if index_type == "ivf-flat":
        return f"IVF{lists},Flat"
    if index_type == "ivfpq":
        bits = min(PQ_BITS, max(1, int(math.log2(max(rows, 2)))))  # k-means needs 2**bits rows
        return f"IVF{lists},PQ{pq_bytes(dim)}x{bits}np"  # np: no polysemous training (slow)
    if index_type == "hnsw":
        return f"HNSW{HNSW_LINKS},SQ8"
    raise ValueError(f"no approximate structure for index type {index_type!r}")


def _family(index_type: str) -> str:
    return "hnsw" if index_type == "hnsw" else "ivf"


def held_out_queries(
    embeddings: np.ndarray, n: int = RECALL_QUERIES, decode=None, seed: int = RECALL_SEED
):
    """``[n', D]`` float32 queries: seeded rows plus noise (:data:`RECALL_NOISE` of their norm).

    ``decode`` turns row numbers into float32 rows (default: ``embeddings[rows]``).

    Example
    -------
    >>> import numpy as np
    >>> held_out_queries(np.eye(4, dtype=np.float32), n=2).shape
    (2, 4)
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(embeddings), size=min(n, len(embeddings)), replace=False))
    base = decode(rows) if decode is not None else _float32(embeddings[rows])
    noise = rng.standard_normal(base.shape).astype(np.float32)
    scale = RECALL_NOISE * np.linalg.norm(base, axis=1, keepdims=True)
    noise *= scale / np.maximum(np.linalg.norm(noise, axis=1, keepdims=True), 1e-12)
    return base + noise


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of ``exact`` [Nq, k] found in the same row of ``found``.

    Example
    -------
    >>> import numpy as np
    >>> recall_at_k(np.array([[1, 2], [3, 9]]), np.array([[2, 1], [3, 4]]))
    0.75
    """
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact))
    return hits / exact.size


def set_depth(ann, family: str, depth: int) -> None:
    """Set the search depth (``nprobe`` or ``efSearch``) of a structure."""
    import faiss

    faiss.ParameterSpace().set_index_parameter(ann, DEPTH_PARAMETER[family], int(depth))


def _float32(rows):
    import numpy as np

    return np.asarray(rows, dtype=np.float32)


def _train_sample(size: int, rows: int, decode, seed: int) -> np.ndarray:
    import numpy as np

    if rows >= size:
        return np.ascontiguousarray(decode(slice(None)))
    picked = np.sort(np.random.default_rng(seed).choice(size, rows, replace=False))
    return np.ascontiguousarray(decode(picked))


def _add_rows(ann, size: int, decode, block: int = ADD_ROWS) -> None:
    import numpy as np

    for start in range(0, size, block):
        ann.add(np.ascontiguousarray(decode(slice(start, start + block))))


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """``[Nq, k]`` row numbers of the exact top-k (lower row first on a tie)."""
    from sense.retrieval import search

    return search(queries, embeddings, k=k)[1].numpy()


def ann_search(ann, queries: np.ndarray, k: int, params=None):
    """faiss search of ``[Nq, D]`` queries: ``(scores [Nq, k], rows [Nq, k])``, -1 where none."""
    import numpy as np

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    return ann.search(queries, k, params=params) if params is not None else ann.search(queries, k)


def tune(ann, family: str, queries: np.ndarray, exact: np.ndarray) -> tuple[int, float]:
    """The smallest search depth whose recall@k reaches :data:`TARGET_RECALL`, and that recall.

    When none does, the depth with the best recall (the deepest tried).
    """
    steps = EF_SEARCH_STEPS if family == "hnsw" else NPROBE_STEPS
    if family == "ivf":
        import faiss

        lists = faiss.extract_index_ivf(ann).nlist
        steps = [s for s in steps if s < lists] + [lists]
    depth, recall = steps[0], -1.0
    for step in steps:
        set_depth(ann, family, step)
        measured = recall_at_k(ann_search(ann, queries, exact.shape[1])[1], exact)
        if measured > recall:
            depth, recall = step, measured
        if measured >= TARGET_RECALL:
            break
    set_depth(ann, family, depth)
    return depth, recall


def build_ann(
    embeddings: np.ndarray, index_type: str, decode=None, exact=None, seed: int = RECALL_SEED
):
    """Train and fill a faiss structure over ``[N, D]`` rows; tune it and measure its recall.

    Parameters
    ----------
    embeddings : numpy.ndarray
        [N, D] rows (float32, or stored otherwise with ``decode``).
    index_type : str
        ``ivf``, ``ivf-flat``, ``ivfpq`` or ``hnsw`` (:func:`resolve_type`).
    decode : callable, optional
        ``rows (slice or row numbers) -> [M, D] float32``; default: ``embeddings[rows]``.
    exact : callable, optional
        ``(queries [Nq, D], k) -> [Nq, k]`` exact top-k rows; default
        :func:`sense.retrieval.search` over ``embeddings``.

    Returns
    -------
    ann, record
        ``record`` is what ``index.json`` keeps under ``"ann"``: ``type``,
        ``factory``, the depth (``nprobe`` or ``efSearch``), ``recall_at_10``,
        ``recall_queries``, ``target_recall``, ``build_seconds``, ``file``.
    """
    import faiss

    decode = decode or (lambda rows: _float32(embeddings[rows]))
    exact = exact or (lambda queries, k: exact_top_k(embeddings, queries, k))
    started = time.perf_counter()
    rows, dim = embeddings.shape
    factory = factory_string(index_type, rows, dim)
    ann = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    family = _family(index_type)
    lists = ivf_lists(rows) if family == "ivf" else 1
    ann.train(_train_sample(rows, max(lists * TRAIN_ROWS_PER_LIST, MIN_TRAIN_ROWS), decode, seed))
    _add_rows(ann, rows, decode)
    built = time.perf_counter() - started
    queries = held_out_queries(embeddings, decode=decode, seed=seed)
    k = min(RECALL_K, rows)
    depth, recall = tune(ann, family, queries, exact(queries, k))
    record = {
        "type": index_type,
        "factory": factory,
        DEPTH_PARAMETER[family]: depth,
        f"recall_at_{RECALL_K}": round(recall, 4),
        "recall_queries": len(queries),
        "target_recall": TARGET_RECALL,
        "build_seconds": round(built, 2),
        "file": ANN_FILE,
    }
    return ann, record


def describe(record: dict) -> str:
    """The line ``sense index`` prints about a structure.

    Example
    -------
    >>> describe({"type": "ivf", "factory": "IVF1024,SQ8", "nprobe": 16,
    ...           "recall_at_10": 0.97, "recall_queries": 1000})
    'ivf (IVF1024,SQ8): recall@10 0.97 on 1,000 held-out queries (nprobe 16)'
    """
    family = _family(record["type"])
    depth = DEPTH_PARAMETER[family]
    return (
        f"{record['type']} ({record['factory']}): recall@{RECALL_K} "
        f"{record[f'recall_at_{RECALL_K}']:.2f} on {record['recall_queries']:,} held-out "
        f"queries ({depth} {record[depth]})"
    )


def write_ann(ann, path: str | os.PathLike) -> None:
    """Write a structure (the caller publishes the folder atomically)."""
    import faiss

    faiss.write_index(ann, os.fspath(path))


def read_ann(path: str | os.PathLike, record: dict):
    """A structure written by :func:`write_ann`, memory-mapped, its recorded depth set."""
    import faiss

    ann = faiss.read_index(os.fspath(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    family = _family(record["type"])
    set_depth(ann, family, record[DEPTH_PARAMETER[family]])
    return ann


def search_params(ann, record: dict, rows: np.ndarray | None):
    """faiss search parameters: the recorded depth, restricted to ``rows`` when given."""
    import faiss
    import numpy as np

    family = _family(record["type"])
    depth = int(record[DEPTH_PARAMETER[family]])
    if rows is None:
        return None
    bits = np.zeros((ann.ntotal + 7) // 8, dtype=np.uint8)
    np.bitwise_or.at(bits, rows >> 3, (1 << (rows & 7)).astype(np.uint8))
    selector = faiss.IDSelectorBitmap(ann.ntotal, faiss.swig_ptr(bits))
    selector.referenced_bits = bits  # keep the bitmap alive as long as the selector
    if family == "hnsw":
        return faiss.SearchParametersHNSW(sel=selector, efSearch=depth)
    return faiss.SearchParametersIVF(sel=selector, nprobe=depth)


__all__ = [
    "ANN_FILE",
    "AUTO_FLAT_BELOW",
    "INDEX_TYPES",
    "TARGET_RECALL",
    "ann_search",
    "build_ann",
    "describe",
    "factory_string",
    "held_out_queries",
    "read_ann",
    "recall_at_k",
    "resolve_type",
    "search_params",
    "write_ann",
]
