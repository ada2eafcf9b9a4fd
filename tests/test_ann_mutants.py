"""The ANN structures' decisions, pinned by hand (the mutants of ``sense/ann.py``)."""

import gc
import os
import time

import numpy as np
import pytest
from test_index_ann import clustered

import sense.ann as ann_module
from sense.ann import (
    EF_SEARCH_STEPS,
    TARGET_RECALL,
    ann_search,
    build_ann,
    exact_top_k,
    factory_string,
    held_out_queries,
    ivf_lists,
    pq_bytes,
    read_ann,
    resolve_type,
    search_params,
    tune,
    write_ann,
)

faiss = pytest.importorskip("faiss")


def unit_rows(rows=2000, dim=16, seed=0):
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_auto_is_approximate_from_the_threshold_on():
    assert resolve_type("auto", 49_999) == "flat"
    assert resolve_type("auto", 50_000) == "ivf"


def test_lists_and_code_sizes_by_hand():
    # sqrt(1000) = 31.6 -> 32 lists, but 1000 // 39 = 25 rows-per-list bound: 25
    assert ivf_lists(1000) == 25 and isinstance(ivf_lists(1000), int)
    # 90 // 8 = 11 does not divide 90; 10 does. 10 // 8 = 1.
    assert pq_bytes(90) == 10 and pq_bytes(10) == 1
    # 2 rows: one list, and k-means of 2**1 centroids
    assert factory_string("ivfpq", 2, 16) == "IVF1,PQ2x1np"


def test_held_out_queries_are_every_row_plus_half_its_norm_of_noise():
    # 64 orthogonal rows of norms 1..64, all 64 drawn (so once each, in row order),
    # decoded at twice their stored value: query i is 2 (i + 1) e_i plus noise of norm (i + 1).
    stored = np.diag(np.arange(1, 65)).astype(np.float32)
    queries = held_out_queries(stored, n=64, decode=lambda rows: 2 * stored[rows])
    assert queries.dtype == np.float32 and queries.shape == (64, 64)
    noise = np.linalg.norm(queries - 2 * stored, axis=1)
    np.testing.assert_allclose(noise, np.arange(1, 65), rtol=1e-5)
    # float16 rows give float32 queries; in 2 dims many noise draws are shorter than 1
    rows = np.random.default_rng(0).standard_normal((300, 2)).astype(np.float16)
    queries = held_out_queries(rows, n=300)
    assert queries.dtype == np.float32
    base = rows.astype(np.float32)
    np.testing.assert_allclose(
        np.linalg.norm(queries - base, axis=1), 0.5 * np.linalg.norm(base, axis=1), rtol=1e-5
    )


def test_a_training_sample_is_distinct_sorted_rows_and_seeded():
    calls = []

    def decode(rows):
        calls.append(rows)
        return np.zeros((3, 2), np.float32)

    ann_module._train_sample(10, 10, decode, seed=0)
    assert calls.pop() == slice(None)  # every row
    ann_module._train_sample(10, 9, decode, seed=0)
    picked = calls.pop()
    assert len(picked) == 9 and len(set(picked.tolist())) == 9
    assert picked.tolist() == sorted(picked.tolist())
    ann_module._train_sample(10, 9, decode, seed=0)
    assert calls.pop().tolist() == picked.tolist()
    ann_module._train_sample(10, 9, decode, seed=1)
    assert calls.pop().tolist() != picked.tolist()


def test_rows_are_added_in_blocks_in_order():
    added = []

    class Structure:
        def add(self, block):
            added.extend(block[:, 0].tolist())

    ann_module._add_rows(Structure(), 10, lambda s: np.arange(10.0)[s, None], block=4)
    assert added == list(range(10))


def test_exact_top_k_takes_k():
    x = unit_rows(rows=20)
    assert exact_top_k(x, x[:2], 3).tolist() == [
        np.argsort(-(x @ x[i]), kind="stable")[:3].tolist() for i in range(2)
    ]


def fake_recalls(monkeypatch, table):
    """tune() over a structure whose recall at each depth is ``table[depth]`` (of 20 hits)."""
    exact = np.arange(20).reshape(2, 10)
    state = {}

    def set_depth(ann, family, depth):
        state["depth"] = depth

    def search(ann, queries, k):
        found = exact.copy().ravel()
        found[: round((1 - table[state["depth"]]) * 20)] = -1
        return None, found.reshape(2, 10)

    monkeypatch.setattr(ann_module, "set_depth", set_depth)
    monkeypatch.setattr(ann_module, "ann_search", search)
    return exact, state


def test_tune_stops_at_the_first_depth_that_reaches_the_target(monkeypatch):
    exact, state = fake_recalls(monkeypatch, {16: 0.5, 32: TARGET_RECALL, 64: 1.0})
    assert tune(None, "hnsw", None, exact) == (32, TARGET_RECALL) and state["depth"] == 32


def test_tune_keeps_the_shallowest_of_equal_best_recalls(monkeypatch):
    exact, state = fake_recalls(monkeypatch, dict.fromkeys(EF_SEARCH_STEPS, 0.9) | {32: 0.5})
    assert tune(None, "hnsw", None, exact) == (16, 0.9) and state["depth"] == 16


@pytest.mark.parametrize(
    "kind, x, expected",
    [
        ("ivf", clustered(rows=2000), 2),  # 2 of 32 lists reach 0.95
        ("ivf", unit_rows(rows=1000, dim=64), 25),  # no cluster: every one of the 25 lists
        ("hnsw", clustered(rows=2000), 16),
    ],
    ids=["ivf-clustered", "ivf-random", "hnsw"],
)
def test_the_tuned_depth_is_the_first_step_reaching_the_target(kind, x, expected):
    ann, record = build_ann(x, kind)
    family, steps = ("hnsw", EF_SEARCH_STEPS) if kind == "hnsw" else ("ivf", None)
    parameter = "efSearch" if kind == "hnsw" else "nprobe"
    if steps is None:
        lists = faiss.extract_index_ivf(ann).nlist
        steps = [s for s in ann_module.NPROBE_STEPS if s < lists] + [lists]
    queries = held_out_queries(x)
    exact = exact_top_k(x, queries, 10)
    depth = record[parameter]
    assert depth == expected and depth in steps

    def recall(step):
        ann_module.set_depth(ann, family, step)
        found = ann_search(ann, queries, 10)[1]
        return np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])

    assert recall(depth) >= TARGET_RECALL
    assert record["recall_at_10"] == round(recall(depth), 4)
    earlier = steps[: steps.index(depth)]
    assert all(recall(s) < TARGET_RECALL for s in earlier)


def test_the_training_sample_is_lists_times_rows_per_list_and_seeded(monkeypatch):
    monkeypatch.setattr(ann_module, "MIN_TRAIN_ROWS", 256)
    monkeypatch.setattr(ann_module, "TRAIN_ROWS_PER_LIST", 8)
    x = unit_rows(rows=3000)
    lists = ivf_lists(3000)  # 64
    calls = []

    def decode(rows):
        calls.append(rows)
        return x[rows]

    first = faiss.serialize_index(build_ann(x, "ivf", decode=decode, seed=5)[0])
    trained = [c for c in calls if isinstance(c, np.ndarray)]
    assert len(trained[0]) == lists * 8 == 512  # then the held-out queries' 1,000 rows
    assert len(trained[1]) == 1000 and len(set(trained[1].tolist())) == 1000
    again = faiss.serialize_index(build_ann(x, "ivf", seed=5)[0])
    other, record = build_ann(x, "ivf", decode=decode, seed=6)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, faiss.serialize_index(other))
    assert calls[-1].tolist() != trained[1].tolist()  # the queries follow the seed too


def test_the_record_states_the_build_time():
    started = time.perf_counter()
    _, record = build_ann(unit_rows(), "ivf")
    elapsed = time.perf_counter() - started
    assert set(record) == {
        "type",
        "factory",
        "nprobe",
        "recall_at_10",
        "recall_queries",
        "target_recall",
        "build_seconds",
        "file",
    }
    assert 0.0 <= record["build_seconds"] <= elapsed + 0.01
    assert record["build_seconds"] == round(record["build_seconds"], 2)


def test_a_read_structure_is_memory_mapped(tmp_path):
    ann, record = build_ann(unit_rows(), "ivf")
    path = tmp_path / "ann.faiss"
    write_ann(ann, path)
    loaded = read_ann(path, record)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(loaded).invlists)
    assert type(lists).__name__ == "OnDiskInvertedLists"
    assert faiss.extract_index_ivf(loaded).nprobe == record["nprobe"]
    assert os.path.getsize(path) > 0


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_a_row_filter_returns_those_rows_only(kind):
    # Rows 3, 9 and 130: bits 3 and 1 of bytes 0 and 1, bit 2 of byte 16. Searched
    # as deep as the structure goes, the filter alone decides which rows come back.
    x = unit_rows(rows=200)
    ann, record = build_ann(x, kind)
    depth = "efSearch" if kind == "hnsw" else "nprobe"
    record[depth] = 1024 if kind == "hnsw" else faiss.extract_index_ivf(ann).nlist
    params = search_params(ann, record, np.array([3, 9, 130]))
    assert getattr(params, depth) == record[depth]
    # the bitmap must live as long as the parameters: fresh arrays of its size, all
    # bits set, would take its memory if it had been freed
    gc.collect()
    junk = [np.full((ann.ntotal + 7) // 8, 255, np.uint8) for _ in range(1000)]
    _, found = ann_search(ann, x[[9, 3]], 5, params=params)
    assert found[0, 0] == 9 and found[1, 0] == 3
    assert [sorted(row[:3]) for row in found.tolist()] == [[3, 9, 130]] * 2
    assert found[:, 3:].tolist() == [[-1, -1]] * 2
    del junk
