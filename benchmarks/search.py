"""Search at corpus scale: exact search against one matmul, and approximate indexes.

On ``rows`` x 1024 embeddings drawn to look like real ones (a mixture of
Gaussian clusters around random unit centres, L2-normalised, seeded), in
one process:

* **exact**: :meth:`sense.index.SpeechIndex.search` with ``exact=True`` on a
  float32 index, against one bare ``queries @ embeddings.T`` and
  ``torch.topk`` (the reference: ratio = bare time / ours, >= 1.0 means ours
  is no slower), for a batch of queries and for single queries;
* **approximate**: each structure of :mod:`sense.ann` built the way
  ``sense index --index-type`` builds it (search depth tuned to recall@10
  :data:`sense.ann.TARGET_RECALL` on held-out queries), then its recall@10
  against exact search on fresh queries from the same mixture, its memory
  (the resident size of the structure read whole by faiss in a fresh process,
  and that over float32's; also its file's bytes), build time, and the latency
  of single queries (batch 1) through ``SpeechIndex.search``, p50 and p99.

Example
-------
>>> rows = clustered_embeddings(100, 8, clusters=4)
>>> rows.shape, bool(np.allclose(np.linalg.norm(rows, axis=1), 1))
((100, 8), True)
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time

import numpy as np
import torch

ROWS = 1_000_000
DIM = 1024
#: Clusters of the mixture, and the noise around a unit centre (norm, relative to it).
CLUSTERS = 2048
CLUSTER_NOISE = 1.0
#: Queries for recall and the batched exact timing; single queries for latency.
RECALL_QUERIES = 1000
BATCH_QUERIES = 256
SINGLE_QUERIES = 200
#: Single queries of the exact timing (each reads the whole float32 index: 4 GB at 1M rows).
EXACT_SINGLE_QUERIES = 20
EXACT_ROUNDS = 3
K = 10
TYPES = ("ivf", "ivfpq", "hnsw")
#: Rows generated at once.
BLOCK = 1 << 16
SEED = 0


def clustered_embeddings(
    rows: int, dim: int = DIM, clusters: int = CLUSTERS, noise: float = CLUSTER_NOISE, seed=SEED
) -> np.ndarray:
    """``[rows, dim]`` float32 unit rows: random unit centres plus Gaussian noise, normalised."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(clusters, dim, generator=g), dim=1)
    out = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, BLOCK):
        n = min(BLOCK, rows - start)
        which = torch.randint(0, clusters, (n,), generator=g)
        block = centres[which] + torch.randn(n, dim, generator=g) * (noise / dim**0.5)
        out[start : start + n] = torch.nn.functional.normalize(block, dim=1).numpy()
    return out


def _say(text: str) -> None:
    print(f"[benchmarks] search: {text}", file=sys.stderr, flush=True)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bare_top_k(queries: torch.Tensor, database: torch.Tensor, k: int = K):
    """The reference: one matmul, one ``torch.topk``."""
    return torch.topk(queries @ database.T, k, dim=1)


def exact_rows(index, queries: np.ndarray, k: int = K) -> np.ndarray:
    """``[Nq, k]`` rows of the exact top-k through ``SpeechIndex.search(exact=True)`` (ids are rows)."""
    hits = index.search(queries, k=k, exact=True)
    return np.array([[int(h["id"]) for h in row] for row in hits])


def time_exact(index, database: torch.Tensor, batch: np.ndarray, singles: np.ndarray) -> dict:
    """Ours vs one matmul + top-k, alternating, on a batch and on single queries."""
    batch_t = torch.from_numpy(batch)
    ours, bare = [], []
    for _ in range(EXACT_ROUNDS):
        ours.append(_timed(lambda: index.search(batch, k=K, exact=True))[0])
        bare.append(_timed(lambda: bare_top_k(batch_t, database))[0])
    ours1, bare1 = [], []
    for q in singles:
        ours1.append(_timed(lambda q=q: index.search(q[None], k=K, exact=True))[0])
        bare1.append(_timed(lambda q=q: bare_top_k(torch.from_numpy(q[None]), database))[0])
    batch_ratio = float(np.median(bare) / np.median(ours))
    single_ratio = float(np.median(bare1) / np.median(ours1))
    return {
        "batch_queries": len(batch),
        "batch_s": round(float(np.median(ours)), 3),
        "batch_bare_s": round(float(np.median(bare)), 3),
        "batch_ratio": round(batch_ratio, 3),
        "single_queries": len(singles),
        "single_p50_ms": round(1e3 * _percentile(ours1, 50), 2),
        "single_bare_p50_ms": round(1e3 * _percentile(bare1, 50), 2),
        "single_ratio": round(single_ratio, 3),
    }


#: Run in a fresh process: the growth of its resident memory (Linux ``/proc/self/statm``)
#: while faiss reads a structure whole, in bytes. A fresh process, because this one's
#: allocator may hand the structure memory that earlier work left resident.
RESIDENT_PROBE = """
import os, sys, faiss
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
ann = faiss.read_index(sys.argv[1])
print(rss() - before)
"""


def structure_bytes(ann) -> tuple[int, int]:
    """``(file bytes, resident bytes)`` of a structure: its ``ann.faiss``, and its memory once read.

    The resident figure is what holding the structure in memory costs (its codes, ids,
    centroids and faiss's bookkeeping), measured, not computed from the format.
    """
    import subprocess

    from sense.ann import write_ann

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ann.faiss")
        write_ann(ann, path)
        probe = [sys.executable, "-c", RESIDENT_PROBE, path]
        resident = int(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)
        return os.path.getsize(path), resident


def measure_type(index, kind: str, exact, queries, truth, singles) -> dict:
    """Build one structure as ``sense index`` does; its recall, size, build time, latency."""
    from sense.ann import build_ann, recall_at_k

    _say(f"building {kind}")
    seconds, (ann, record) = _timed(
        lambda: build_ann(index.embeddings, kind, decode=index.rows, exact=exact)
    )
    index.ann, index.info["ann"] = ann, record
    _say(f"{kind} built in {seconds:.0f} s: recall@10 {record['recall_at_10']} at build")
    hits = index.search(queries, k=K)
    found = np.array([[int(h["id"]) for h in row] for row in hits])
    latency = [_timed(lambda q=q: index.search(q[None], k=K))[0] for q in singles]
    file_bytes, resident = structure_bytes(ann)
    return {
        "type": kind,
        "factory": record["factory"],
        "depth": {k: record[k] for k in ("nprobe", "efSearch") if k in record},
        "recall_at_10_build": record["recall_at_10"],
        "recall_at_10": round(recall_at_k(found, truth), 4),
        "file_bytes": file_bytes,
        "bytes": resident,
        "memory_ratio": round(resident / index.embeddings.nbytes, 4),
        "build_s": round(seconds, 1),
        "p50_ms": round(1e3 * _percentile(latency, 50), 2),
        "p99_ms": round(1e3 * _percentile(latency, 99), 2),
    }


def run(rows: int = ROWS, dim: int = DIM, types=TYPES, seed: int = SEED) -> dict:
    """Everything above on ``rows`` x ``dim`` embeddings; a JSON-able dict."""
    from sense.index import SpeechIndex

    started = time.perf_counter()
    database = clustered_embeddings(rows, dim, seed=seed)
    fresh = clustered_embeddings(RECALL_QUERIES + SINGLE_QUERIES, dim, seed=seed)  # same centres
    queries, singles = fresh[:RECALL_QUERIES], fresh[RECALL_QUERIES:]
    generated = time.perf_counter() - started
    _say(f"{rows:,} x {dim} generated in {generated:.0f} s")
    entries = [{"id": str(i), "kind": "audio"} for i in range(rows)]
    index = SpeechIndex({"model": "benchmark"}, database, entries)
    del entries
    exact_s, truth = _timed(lambda: exact_rows(index, queries))
    _say(f"exact top-{K} of {len(queries):,} queries in {exact_s:.0f} s")

    @functools.cache
    def cached(key: bytes, k: int):
        return exact_rows(index, np.frombuffer(key, np.float32).reshape(-1, dim), k)

    def exact(q, k):  # the held-out queries are the same for every type: searched once
        return cached(np.ascontiguousarray(q, np.float32).tobytes(), k)

    result = {
        "rows": rows,
        "dim": dim,
        "clusters": CLUSTERS,
        "cluster_noise": CLUSTER_NOISE,
        "float32_bytes": int(database.nbytes),
        "generate_s": round(generated, 1),
        "threads": torch.get_num_threads(),
        "exact_recall_queries_s": round(exact_s, 1),
        "exact": time_exact(
            index,
            torch.from_numpy(database),
            queries[:BATCH_QUERIES],
            singles[:EXACT_SINGLE_QUERIES],
        ),
        "approximate": [],
    }
    _say(f"exact timed: {result['exact']}")
    for kind in types:
        result["approximate"].append(measure_type(index, kind, exact, queries, truth, singles))
        index.ann = None
    return result


def render(r: dict) -> list[str]:
    """The markdown section of a :func:`run` result."""
    e = r["exact"]
    out = [
        "",
        f"## Search: {r['rows']:,} x {r['dim']} clustered unit embeddings "
        f"({r['clusters']:,} clusters), k = {K}",
        "",
        f"Exact float32 search (`SpeechIndex.search(exact=True)`) against one "
        f"`queries @ embeddings.T` + `torch.topk`, {r['threads']} threads:",
        "",
        "| queries | ours | one matmul + top-k | ratio (>= 1: ours no slower) |",
        "|---|---:|---:|---:|",
        f"| batch of {e['batch_queries']} | {e['batch_s']:.3f} s | {e['batch_bare_s']:.3f} s "
        f"| {e['batch_ratio']:.2f} |",
        f"| single (p50 of {e['single_queries']}) | {e['single_p50_ms']:.1f} ms "
        f"| {e['single_bare_p50_ms']:.1f} ms | {e['single_ratio']:.2f} |",
        "",
        f"Approximate indexes (search depth tuned at build to recall@10 >= 0.95 on "
        f"held-out perturbed rows; recall below on {RECALL_QUERIES:,} fresh queries "
        f"against exact search; latency of {SINGLE_QUERIES} single queries, batch 1; "
        f"memory: resident size of the structure read whole in a fresh process, "
        f"beside its file's size):",
        "",
        "| type | faiss | depth | recall@10 (build) | recall@10 | memory | of float32 "
        "| file | build | p50 | p99 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in r["approximate"]:
        depth = ", ".join(f"{k} {v}" for k, v in a["depth"].items())
        out.append(
            f"| {a['type']} | `{a['factory']}` | {depth} | {a['recall_at_10_build']:.3f} "
            f"| {a['recall_at_10']:.3f} | {a['bytes'] / 2**20:,.0f} MiB "
            f"| {a['memory_ratio']:.3f} | {a['file_bytes'] / 2**20:,.0f} MiB "
            f"| {a['build_s']:.0f} s | {a['p50_ms']:.2f} ms "
            f"| {a['p99_ms']:.2f} ms |"
        )
    return out + [""]
