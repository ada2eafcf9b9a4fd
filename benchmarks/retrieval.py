"""Retrieval: exact search at the size of the MUST-C search database.

5,000 queries against a 280,000 x 1024 database (the SENSE paper's largest
setting). The database is random (retrieval speed does not depend on the
values); each query is a noisy copy of one database row, its target, with
the noise set so that R@1 sits well below 1 and the ranking is not trivial.

* **search**: ``sense.retrieval.search`` (``k = 1``, default backend: faiss
  ``IndexFlatIP`` on CPU when installed, blockwise torch matmul otherwise or
  on a GPU), on embeddings already prepared (mean-subtracted, L2-normalised)
  with ``prepare_embeddings``; preparation is timed separately.
* **one matmul**: the full score matrix ``Q @ D.T`` in float32 in one matrix
  product (in slices of queries only when it would not fit in
  ``ONE_MATMUL_BYTES``) and its top-1: the naive way, and the reference.

Reported: queries per second of each, the top-1 agreement (share of queries
for which both return the same index; they may differ only between two
distinct rows whose scores differ by float32 rounding), and R@1 from both.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import pick_device, synchronize
from sense.retrieval import full_fp32, prepare_embeddings, search

MUSTC_DATABASE = 280_000
MUSTC_QUERIES = 5_000
DIM = 1024
NOISE = 6.5  # per-dimension noise std against unit-variance rows: R@1 about 0.5
#: Largest score matrix computed in one product (MUST-C: 5,000 x 280,000 x 4 B = 5.6 GB).
ONE_MATMUL_BYTES = 8 * 2**30


def brute_force_top1(queries: torch.Tensor, database: torch.Tensor) -> torch.Tensor:
    """Index of the best database row for each query: one full matmul, then top-1."""
    rows = max(1, ONE_MATMUL_BYTES // (4 * database.shape[0]))
    best = []
    for start in range(0, queries.shape[0], rows):
        scores = queries[start : start + rows] @ database.T
        best.append(scores.topk(1, dim=1).indices[:, 0])
        del scores
    return torch.cat(best)


def run(
    num_queries: int = MUSTC_QUERIES,
    database_size: int = MUSTC_DATABASE,
    dim: int = DIM,
    device: str | torch.device | None = None,
    backend: str = "auto",
    seed: int = 0,
) -> dict:
    """Time exact search and brute force once each; return a JSON-able dict."""
    device = device if isinstance(device, torch.device) else pick_device(device)
    g = torch.Generator().manual_seed(seed)
    database = torch.randn(database_size, dim, generator=g)
    targets = torch.randint(0, database_size, (num_queries,), generator=g)
    queries = database[targets] + NOISE * torch.randn(num_queries, dim, generator=g)
    database, queries, targets = database.to(device), queries.to(device), targets.to(device)

    synchronize(device)
    start = time.perf_counter()
    db = prepare_embeddings(database)
    q = prepare_embeddings(queries)
    synchronize(device)
    prepare_s = time.perf_counter() - start
    del database, queries

    with full_fp32():  # the reference in full float32 too (SpeechBrain turns TF32 on)
        search(q[:16], db[:4096], k=1, backend=backend)  # warm-up: kernels, backend probe
        synchronize(device)
        start = time.perf_counter()
        reference = brute_force_top1(q, db)
        synchronize(device)
        brute_s = time.perf_counter() - start

    synchronize(device)
    start = time.perf_counter()
    _, indices = search(q, db, k=1, backend=backend)
    synchronize(device)
    search_s = time.perf_counter() - start
    top1 = indices[:, 0].to(device)

    if backend == "auto":
        from sense.retrieval import _resolve_backend

        backend = _resolve_backend("auto", db.device, (num_queries, database_size, dim))
    return {
        "device": device.type,
        "backend": backend,
        "queries": num_queries,
        "database": [database_size, dim],
        "prepare_s": round(prepare_s, 4),
        "search_s": round(search_s, 4),
        "search_queries_per_second": round(num_queries / search_s, 1),
        "brute_force_s": round(brute_s, 4),
        "brute_force_queries_per_second": round(num_queries / brute_s, 1),
        "top1_agreement": float((top1 == reference).float().mean()),
        "r_at_1_search": float((top1 == targets).float().mean()),
        "r_at_1_brute_force": float((reference == targets).float().mean()),
    }
