"""``ivf`` below a quarter of float32 at large dims (RaBitQ7 codes), and an approximate
search that leaves the embeddings unread (issue 31)."""

import os

import numpy as np
import pytest
from test_index_ann import ids, numpy_top_k

from sense.ann import RECALL_K, describe, factory_string, held_out_queries
from sense.index import INDEX_EMBEDDINGS, SpeechIndex, load_index

faiss = pytest.importorskip("faiss")

ROWS, DIM, CLUSTERS = 2000, 1024, 20
#: Bytes of one RaBitQ7 code at 1,024 dims, by hand: 1,024 sign bits, 6 more bits a
#: dimension, and 5 float32 factors of the row (3 for the sign bits, 2 for the others).
RABITQ7_CODE_1024 = 1024 // 8 + 1024 * 6 // 8 + 5 * 4  # 916
FAISS_ID = 8  # bytes of faiss's id, one a row
CODES = (factory_string("ivf", 1_000_000, DIM).split(",")[1], "SQ8")  # RaBitQ7, SQ8
HEADER = 4096  # at most, for faiss's headers and the quantiser's own fields


def clustered(rows=ROWS, dim=DIM, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim))
    x = centres[rng.integers(0, CLUSTERS, rows)] + rng.standard_normal((rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def entries(rows=ROWS):
    return [{"id": str(i), "kind": "text" if i % 3 == 0 else "audio"} for i in range(rows)]


@pytest.fixture(scope="module")
def built():
    index = SpeechIndex({"model": "m"}, clustered(), entries())
    index.build_ann("ivf")
    return index


def test_the_factory_is_rabitq7_from_512_dims_and_sq8_below():
    assert factory_string("ivf", 1_000_000, 1024) == "IVF1024,RaBitQ7"
    assert factory_string("ivf", 1_000_000, 512) == "IVF1024,RaBitQ7"
    assert factory_string("ivf", 1_000_000, 511) == "IVF1024,SQ8"
    assert factory_string("ivf", 2000, 16) == "IVF32,SQ8"
    assert factory_string("ivf", ROWS, DIM) == "IVF32,RaBitQ7"


def test_the_memory_at_1m_x_1024_is_below_a_quarter_by_hand():
    """What faiss stores a row, and so the ratios at 1M x 1,024 with 1,024 lists."""
    made = [faiss.index_factory(DIM, f"IVF16,{c}", faiss.METRIC_INNER_PRODUCT) for c in CODES]
    rabitq, sq8 = (faiss.downcast_index(index) for index in made)  # made keeps them alive
    assert (rabitq.code_size, sq8.code_size) == (RABITQ7_CODE_1024, 1024) == (916, 1024)
    rows, lists, float32 = 1_000_000, 1024, 1_000_000 * 1024 * 4
    centroids = lists * DIM * 4
    assert round((rows * (916 + FAISS_ID) + centroids) / float32, 4) == 0.2266
    assert round((rows * (1024 + FAISS_ID) + centroids) / float32, 4) == 0.2530  # SQ8: above


def test_the_saved_structure_is_its_codes_ids_and_centroids(built, tmp_path):
    assert built.info["ann"]["factory"] == "IVF32,RaBitQ7"
    built.save(tmp_path / "idx")
    size = os.path.getsize(tmp_path / "idx" / "ann.faiss")
    least = ROWS * (RABITQ7_CODE_1024 + FAISS_ID) + 32 * DIM * 4  # + 32 centroids
    assert least <= size < least + HEADER
    assert size / (ROWS * DIM * 4) < 0.25


def test_the_rabitq_index_finds_each_row_first_and_its_recall_is_numpys(built, tmp_path):
    rows = built.embeddings
    record = built.info["ann"]
    assert record["recall_at_10"] >= 0.95
    assert describe(record).startswith("ivf (IVF32,RaBitQ7): recall@10 ")
    built.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    assert [row[0] for row in ids(loaded.search(rows[:200], k=RECALL_K))] == list(range(200))
    queries = held_out_queries(rows)
    exact = numpy_top_k(rows, queries, RECALL_K)
    found = loaded.ann.search(queries, RECALL_K)[1]
    recall = np.mean([len(np.intersect1d(f, e)) / RECALL_K for f, e in zip(found, exact)])
    assert record["recall_at_10"] == round(float(recall), 4)


def test_select_through_a_rabitq_index_returns_that_kind_only(built):
    queries = held_out_queries(built.embeddings, n=30, seed=5)
    texts = built.select("text")  # rows 0, 3, 6, ...
    hits = ids(texts.search(queries, k=5))
    assert all(i % 3 == 0 for row in hits for i in row)
    exact = numpy_top_k(built.embeddings[::3], queries, 5) * 3
    assert np.mean([len(set(h) & set(e)) / 5 for h, e in zip(hits, exact.tolist())]) >= 0.9


def resident_kib(path: str) -> int:
    """Resident KiB of this process's mappings of ``path`` (``/proc/self/smaps``)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
                inside = line.rstrip("\n").endswith(path)
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc smaps")
def test_an_approximate_search_leaves_the_embeddings_unread(built, tmp_path):
    built.save(tmp_path / "idx")
    path = os.path.realpath(tmp_path / "idx" / INDEX_EMBEDDINGS)
    loaded = load_index(tmp_path / "idx")
    assert resident_kib(path) == 0
    queries = held_out_queries(built.embeddings, n=50, seed=3)
    hits = loaded.search(queries, k=10)
    assert len(hits) == 50 and all(len(row) == 10 for row in hits)
    assert resident_kib(path) == 0  # not one page of the embeddings mapped in
    loaded.search(queries, k=10, exact=True)  # an exact search reads them all
    assert resident_kib(path) >= ROWS * DIM * 4 // 1024 - 64
