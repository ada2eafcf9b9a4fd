"""Compressed and approximate indexes: measured recall, storage, select, exact ties (issue 31)."""

import json
import os

import numpy as np
import pytest
import torch
from test_index_incremental import audio_files, corpus, index, models  # noqa: F401 (fixtures)

from sense.ann import RECALL_K, describe, held_out_queries, set_depth
from sense.cli import main
from sense.index import INDEX_EMBEDDINGS, INDEX_INFO, SpeechIndex, load_index
from sense.retrieval import find_duplicates, search
from sense.storage import decode_int8, stored

pytest.importorskip("faiss")

ROWS, DIM, CLUSTERS = 3000, 32, 30
NPY_HEADER = 128  # bytes before the data of a small .npy


def clustered(rows=ROWS, dim=DIM, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim))
    x = centres[rng.integers(0, CLUSTERS, rows)] + 0.5 * rng.standard_normal((rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def entries(rows=ROWS):
    """Every third row text, the others audio; the id is the row."""
    return [
        {"id": str(i), "kind": "text" if i % 3 == 0 else "audio", "path": f"f{i % 100}"}
        for i in range(rows)
    ]


def numpy_top_k(database: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows of the exact top-k in float64, lower row first on a tie."""
    scores = queries.astype(np.float64) @ database.astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def numpy_recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, e)) / e.size for f, e in zip(found, exact)]))


def ids(hits) -> list[list[int]]:
    return [[int(h["id"]) for h in row] for row in hits]


@pytest.fixture(scope="module")
def rows():
    return clustered()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_the_recorded_recall_is_the_recall_of_the_saved_structure_against_numpy(
    rows, kind, tmp_path
):
    built = SpeechIndex({"model": "m"}, rows, entries())
    record = built.build_ann(kind)
    built.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    assert loaded.info["ann"] == record and loaded.info["format_version"] == 3
    queries = held_out_queries(rows)
    exact = numpy_top_k(rows, queries, RECALL_K)
    found = loaded.ann.search(queries, RECALL_K)[1]  # the recorded depth is set on load
    assert record["recall_at_10"] == round(numpy_recall(found, exact), 4)
    assert record["recall_at_10"] >= record["target_recall"] == 0.95
    assert record["recall_queries"] == 1000


@pytest.mark.parametrize("kind", ["ivf", "ivfpq", "hnsw"])
def test_a_saved_and_loaded_structure_gives_the_same_hits(rows, kind, tmp_path):
    built = SpeechIndex({"model": "m"}, rows, entries())
    built.build_ann(kind)
    queries = held_out_queries(rows, n=50, seed=7)
    before = built.search(queries, k=10)
    built.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    assert os.path.isfile(tmp_path / "idx" / "ann.faiss")
    assert loaded.search(queries, k=10) == before
    assert loaded.search(queries, k=10, exact=True) == built.search(queries, k=10, exact=True)


def test_int8_and_float16_storage_take_a_quarter_and_a_half_of_float32(rows, tmp_path):
    sizes = {}
    for dtype in ("float32", "float16", "int8"):
        data, quantizer = stored(rows, dtype)
        SpeechIndex({"model": "m"}, data, entries(), quantizer=quantizer).save(tmp_path / dtype)
        sizes[dtype] = os.path.getsize(tmp_path / dtype / INDEX_EMBEDDINGS) - NPY_HEADER
    assert sizes == {"float32": ROWS * DIM * 4, "float16": ROWS * DIM * 2, "int8": ROWS * DIM}
    loaded = load_index(tmp_path / "int8")
    assert loaded.info["dtype"] == "int8" and loaded.info["format_version"] == 3
    assert loaded.embeddings.dtype == np.uint8 and not loaded.embeddings.flags.writeable
    # the codes are faiss's SQ8: decoded like faiss's own ScalarQuantizer
    import faiss

    sq = faiss.ScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit)
    sq.train(rows)
    assert np.array_equal(sq.compute_codes(rows), np.asarray(loaded.embeddings))
    np.testing.assert_allclose(
        decode_int8(loaded.embeddings, loaded.quantizer),
        sq.decode(sq.compute_codes(rows)),
        atol=1e-6,
    )
    # exact search of an int8 index is numpy's over the decoded rows
    queries = rows[:20]
    decoded = decode_int8(loaded.embeddings, loaded.quantizer)
    assert ids(loaded.search(queries, k=5)) == numpy_top_k(decoded, queries, 5).tolist()


def test_the_ann_of_an_ivf_index_is_a_quarter_of_float32_plus_ids(tmp_path):
    x = clustered(rows=4000, dim=256)
    built = SpeechIndex({"model": "m"}, x, entries(4000))
    built.build_ann("ivf")
    built.save(tmp_path / "idx")
    size = os.path.getsize(tmp_path / "idx" / "ann.faiss")
    codes = 4000 * (256 + 8)  # one byte a dimension and an 8-byte id a row
    lists = int(built.info["ann"]["factory"][3:].split(",")[0])
    assert codes <= size < codes + lists * 256 * 4 + 2 * 256 * 4 + 4096  # + centroids, ranges
    assert size / x.nbytes < 0.3


def test_select_through_an_ann_returns_only_that_kind_and_the_right_ones(rows):
    built = SpeechIndex({"model": "m"}, rows, entries())
    built.build_ann("ivf-flat")
    audio = built.select("audio")
    assert audio.ann is built.ann
    queries = held_out_queries(rows, n=40, seed=3)
    rows_audio = np.array([i for i in range(ROWS) if i % 3])
    # every list probed: IVF-Flat is then exact, and must equal numpy on the audio rows
    set_depth(built.ann, "ivf", 1 << 20)
    built.info["ann"]["nprobe"] = 1 << 20
    expected = rows_audio[numpy_top_k(rows[rows_audio], queries, 10)]
    assert ids(audio.search(queries, k=10)) == expected.tolist()
    # the tuned depth: only audio entries, and most of the right ones
    built.info["ann"]["nprobe"] = 1
    hits = audio.search(queries, k=10)
    assert {h["kind"] for row in hits for h in row} == {"audio"}
    assert numpy_recall(np.array(ids(hits)), expected) > 0.5


def test_a_query_with_too_few_ann_hits_of_a_kind_is_searched_exactly():
    x = clustered(rows=2000)
    rows_entries = entries(2000)
    for i, entry in enumerate(rows_entries):
        entry["kind"] = "text" if i in (5, 900, 1999) else "audio"
    built = SpeechIndex({"model": "m"}, x, rows_entries)
    built.build_ann("ivf")
    built.info["ann"]["nprobe"] = 1  # one list: the three text rows are mostly elsewhere
    text = built.select("text")
    queries = x[[0, 1000]]
    expected = np.array([5, 900, 1999])[numpy_top_k(x[[5, 900, 1999]], queries, 3)]
    assert ids(text.search(queries, k=3)) == expected.tolist()


def test_adding_and_dropping_rows_rebuilds_the_ann_and_measures_again(rows, tmp_path):
    built = SpeechIndex({"model": "m"}, rows[:2000], entries(2000))
    built.build_ann("hnsw")
    built.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    loaded.add(rows[2000:], entries()[2000:])
    assert loaded.ann is None and "ann" not in loaded.info
    loaded.save(tmp_path / "idx")
    again = load_index(tmp_path / "idx")
    assert again.ann.ntotal == ROWS and again.info["ann"]["type"] == "hnsw"
    exact = numpy_top_k(rows, held_out_queries(rows), RECALL_K)
    found = again.ann.search(held_out_queries(rows), RECALL_K)[1]
    assert again.info["ann"]["recall_at_10"] == round(numpy_recall(found, exact), 4)
    assert again.drop_paths({"f0"}) == ROWS // 100
    again.save(tmp_path / "idx")
    assert load_index(tmp_path / "idx").ann.ntotal == ROWS - ROWS // 100


def test_a_version_2_index_without_ann_still_loads_and_searches(rows, tmp_path):
    SpeechIndex({"model": "m"}, rows[:100], entries(100)).save(tmp_path / "idx")
    with open(tmp_path / "idx" / INDEX_INFO, encoding="utf-8") as f:
        info = json.load(f)
    assert info["format_version"] == 2 and "ann" not in info
    info.pop("index_type", None)
    loaded = load_index(tmp_path / "idx")
    assert loaded.ann is None
    assert ids(loaded.search(rows[:3], k=3)) == numpy_top_k(rows[:100], rows[:3], 3).tolist()


def test_auto_is_flat_below_the_threshold(rows):
    built = SpeechIndex({"model": "m"}, rows, entries())
    assert built.build_ann("auto") is None and built.info["index_type"] == "auto"


# --- exact search -----------------------------------------------------------------------


def tied_database(rows=700, dim=6, seed=0) -> np.ndarray:
    """Small integers: exact scores, many ties and identical rows across blocks."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (rows, dim)).astype(np.float32)
    x[600:] = x[:100]  # identical rows far apart
    return x


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_exact_search_equals_numpy_argsort_with_ties_to_the_lower_row(backend):
    x = tied_database()
    queries = np.random.default_rng(1).integers(-2, 3, (30, 6)).astype(np.float32)
    expected = numpy_top_k(x, queries, 25)
    for dup in ("find", find_duplicates(x)):
        found = search(queries, x, k=25, chunk_size=64, backend=backend, duplicates=dup)[1]
        assert found.tolist() == expected.tolist()
    index = SpeechIndex({"model": "m"}, x, entries(len(x)))
    assert ids(index.search(queries, k=25, backend=backend)) == expected.tolist()
    assert ids(index.search(queries, k=25, backend=backend)) == expected.tolist()  # cached


def test_a_non_finite_database_row_is_still_refused():
    x = tied_database()
    x[650, 2] = np.inf
    with pytest.raises(ValueError, match="database has 1 row"):
        search(torch.ones(2, 6), x, k=3, chunk_size=64)


def test_sense_index_type_end_to_end(models, corpus, tmp_path, capsys):  # noqa: F811
    out = str(tmp_path / "talks.index")
    status, err = index(
        capsys, models[0], out, *audio_files(corpus), options=("--index-type", "hnsw")
    )
    assert status == 0, err
    with open(os.path.join(out, INDEX_INFO), encoding="utf-8") as f:
        info = json.load(f)
    assert info["index_type"] == "hnsw" and info["ann"]["factory"] == "HNSW32,SQ8"
    assert describe(info["ann"]) in err  # "hnsw (HNSW32,SQ8): recall@10 ... (efSearch 16)"
    loaded = load_index(out)
    assert loaded.ann.ntotal == len(loaded) == info["size"]
    hits = loaded.search(np.asarray(loaded.embeddings[:2]), k=3)
    assert all(
        len(row) == 3 and {h["id"] for h in row} <= {e["id"] for e in loaded.entries}
        for row in hits
    )
    # --remove rebuilds the structure and says its recall again
    status, err = index(capsys, models[0], out, audio_files(corpus)[0], options=("--remove",))
    assert status == 0, err
    again = load_index(out)
    assert again.ann.ntotal == len(again) == len(loaded) - 1
    assert again.info["index_type"] == "hnsw" and describe(again.info["ann"]) in err


def test_a_subset_of_an_int8_ann_index_keeps_its_codes_and_searches_its_rows_only(rows):
    data, quantizer = stored(rows, "int8")
    built = SpeechIndex({"model": "m"}, data, entries(), quantizer=quantizer)
    built.build_ann("ivf-flat")
    chosen = np.arange(0, ROWS, 7)
    part = built.subset(chosen)
    assert part.info["dtype"] == "int8" and np.array_equal(part.embeddings, data[chosen])
    queries = held_out_queries(rows, n=20, seed=5)
    built.info["ann"]["nprobe"] = 1 << 20  # every list: exact over the codes
    decoded = decode_int8(data[chosen], quantizer)
    expected = chosen[numpy_top_k(decoded, queries, 5)]
    assert ids(part.search(queries, k=5)) == expected.tolist()
    with pytest.raises(ValueError, match="need their quantizer"):
        SpeechIndex({"model": "m"}, data[:3], entries(3))


def test_sense_search_exact_searches_every_row_of_an_approximate_index(
    models,  # noqa: F811
    corpus,  # noqa: F811
    tmp_path,
    capsys,
    monkeypatch,
):
    out = str(tmp_path / "talks.index")
    clips = audio_files(corpus)
    assert index(capsys, models[0], out, *clips, options=("--index-type", "hnsw"))[0] == 0
    asked = []
    original = SpeechIndex.search

    def search(self, queries, k=5, backend="auto", exact=False):
        asked.append(exact)
        return original(self, queries, k=k, backend=backend, exact=exact)

    monkeypatch.setattr(SpeechIndex, "search", search)
    for options, expected in (((), False), (("--exact",), True)):
        argv = ["search", out, "--audio", clips[0], "-k", "3", "--json", "--device", "cpu"]
        assert main([*argv, *options, "-q"]) == 0
        hits = json.loads(capsys.readouterr().out)
        assert asked[-1] is expected
        loaded = load_index(out)
        query = np.asarray(loaded.embeddings[:1])  # the clip's own row: it ranks first
        reference = original(loaded, query, k=3, exact=expected)[0]
        assert hits[0]["hits"][0]["id"] == reference[0]["id"] == clips[0]
