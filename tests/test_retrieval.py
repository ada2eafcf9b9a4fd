"""Retrieval: mean subtraction, exact top-k search, R@k / MRR, result tables."""

import csv
import io
import json

import numpy as np
import pytest
import torch

from sense.results import RetrievalTable, format_db_size
from sense.retrieval import (
    mean_subtract,
    prepare_embeddings,
    recall_at_k,
    retrieval_metrics,
    search,
    target_ranks,
)

BACKENDS = ["torch", "faiss"]


def _pair(n=200, dim=32, noise=0.8, seed=0):
    """Queries that are noisy copies of a shuffled database (hard enough to miss)."""
    g = torch.Generator().manual_seed(seed)
    database = torch.randn(n, dim, generator=g)
    targets = torch.randperm(n, generator=g)
    queries = database[targets] + noise * torch.randn(n, dim, generator=g)
    return queries, database, targets


def _reference_order(queries, database):
    """Brute force: full float64 score matrix, sorted by (-score, index)."""
    scores = queries.double() @ database.double().T
    index = np.broadcast_to(np.arange(database.shape[0]), scores.shape)
    return np.lexsort((index, -scores.numpy()), axis=-1), scores


def _reference_ranks(queries, database, targets):
    order, _ = _reference_order(queries, database)
    return torch.from_numpy((order == targets.numpy()[:, None]).argmax(axis=1) + 1)


def _integer_embeddings(n_database, n_query, dim, seed, duplicates=True):
    """Small integer vectors: every score is exact in float32, so ties are exact."""
    g = torch.Generator().manual_seed(seed)
    database = torch.randint(-2, 3, (n_database, dim), generator=g).float()
    if duplicates:
        src = torch.randint(0, n_database, (n_database // 3,), generator=g)
        dst = torch.randint(0, n_database, (n_database // 3,), generator=g)
        database[dst] = database[src]
    queries = torch.randint(-2, 3, (n_query, dim), generator=g).float()
    return queries, database


# --- mean subtraction ----------------------------------------------------------


def test_mean_subtract_centres_then_normalises():
    x = torch.randn(50, 8) * 3 + 5
    out = mean_subtract(x)
    centred = x - x.mean(0)
    assert out.shape == (50, 8)
    assert torch.allclose(centred.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(out.norm(dim=1), torch.ones(50), atol=1e-6)
    assert torch.allclose(out, centred / centred.norm(dim=1, keepdim=True), atol=1e-6)


def test_constant_offset_of_a_whole_database_does_not_change_r1():
    queries, database, targets = _pair(noise=2.0)
    offset = 30 * torch.randn(1, database.shape[1], generator=torch.Generator().manual_seed(0))
    base = recall_at_k(queries, database, targets, k=1)
    assert 0.05 < base < 0.95  # a test that can actually fail
    assert recall_at_k(queries, database + offset, targets, k=1) == base
    assert recall_at_k(queries - 3 * offset, database + offset, targets, k=1) == base
    # without mean subtraction the offset dominates and the recall collapses
    assert recall_at_k(queries, database + offset, targets, mean_subtract=False) < base


# --- search ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_matches_brute_force(backend):
    queries, database, _ = _pair(n=300, dim=16, seed=1)
    scores, indices = search(queries, database, k=10, chunk_size=7, backend=backend)
    order, ref_scores = _reference_order(queries, database)
    assert scores.shape == indices.shape == (300, 10)
    assert scores.dtype == torch.float32 and indices.dtype == torch.int64
    assert torch.equal(indices, torch.from_numpy(order[:, :10].copy()))
    expected = np.take_along_axis(ref_scores.numpy(), order[:, :10], axis=1)
    assert np.allclose(scores.numpy(), expected, atol=1e-5)


def test_faiss_and_torch_give_identical_results():
    queries, database, _ = _pair(n=500, dim=32, seed=2)
    s_torch, i_torch = search(queries, database, k=10, chunk_size=64, backend="torch")
    s_faiss, i_faiss = search(queries, database, k=10, backend="faiss")
    assert torch.equal(i_torch, i_faiss)
    assert torch.allclose(s_torch, s_faiss, atol=1e-5)
    _, i_auto = search(queries, database, k=10)
    assert torch.equal(i_auto, i_torch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_ties_go_to_the_lower_database_index(backend):
    database = torch.tensor(
        [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.6, 0.8], [1.0, 0.0], [0.0, 1.0]]
    )
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    scores, indices = search(queries, database, k=4, chunk_size=2, backend=backend)
    assert indices.tolist() == [[1, 3, 5, 4], [0, 6, 4, 2], [4, 0, 1, 2]]
    assert scores[0, :3].tolist() == [1.0, 1.0, 1.0]


def test_duplicate_rows_tie_exactly_in_both_backends_at_any_chunking():
    queries, database = _integer_embeddings(97, 23, dim=5, seed=3)
    order, _ = _reference_order(queries, database)
    expected = torch.from_numpy(order[:, :12].copy())
    for backend in BACKENDS:
        for chunk_size, query_chunk_size in [(1, 1), (5, 4), (1000, 1000)]:
            _, indices = search(
                queries, database, 12, chunk_size, query_chunk_size, backend=backend
            )
            assert torch.equal(indices, expected), (backend, chunk_size, query_chunk_size)


def test_faiss_rechecks_ties_longer_than_its_margin():
    # 60 distinct rows that all score 1.0: faiss returns an arbitrary subset
    database = torch.cat([torch.ones(60, 1), torch.arange(60.0).unsqueeze(1)], dim=1)
    database = database[torch.randperm(60, generator=torch.Generator().manual_seed(0))]
    queries = torch.tensor([[1.0, 0.0]])
    _, indices = search(queries, database, k=3, backend="faiss")
    assert indices.tolist() == [[0, 1, 2]]


def test_real_data_style_duplicates_with_mean_subtraction():
    # a text database where some sentences ("Thank you.") occur many times
    queries, database, targets = _pair(n=120, dim=16, noise=0.5, seed=4)
    database[40:60] = database[7]
    prepared_db = prepare_embeddings(database)
    prepared_q = prepare_embeddings(queries)
    _, i_torch = search(prepared_q, prepared_db, k=25, chunk_size=8, backend="torch")
    _, i_faiss = search(prepared_q, prepared_db, k=25, backend="faiss")
    assert torch.equal(i_torch, i_faiss)
    hits = i_torch[(i_torch == 7).any(dim=1)]
    for row in hits.tolist():  # the block of duplicates follows index 7 in order
        start = row.index(7)
        assert row[start : start + 21] == [7, *range(40, 60)][: len(row) - start]


def test_search_fp16_inputs_score_in_float32():
    queries, database, _ = _pair(n=100, dim=16, seed=5)
    s16, i16 = search(queries.half(), database.half(), k=5, chunk_size=9, backend="torch")
    s32, i32 = search(queries.half().float(), database.half().float(), k=5, backend="faiss")
    assert s16.dtype == torch.float32
    assert torch.equal(i16, i32)
    assert torch.allclose(s16, s32, atol=1e-4)
    bf = search(queries.bfloat16(), database.bfloat16(), k=5, backend="torch")[0]
    assert bf.dtype == torch.float32


def test_search_accepts_numpy():
    queries, database, _ = _pair(n=30, dim=8, seed=6)
    _, i_np = search(queries.numpy(), database.numpy(), k=3)
    assert torch.equal(i_np, search(queries, database, k=3)[1])


# --- ranks, recall, MRR ----------------------------------------------------------


def test_recall_and_mrr_match_brute_force():
    queries, database, targets = _pair(n=250, dim=24, noise=1.0, seed=7)
    q, d = mean_subtract(queries), mean_subtract(database)
    ranks = _reference_ranks(q, d, targets)
    metrics = retrieval_metrics(queries, database, targets, ks=(1, 5, 10), chunk_size=16)
    for k in (1, 5, 10):
        expected = (ranks <= k).double().mean().item()
        assert metrics[f"R@{k}"] == pytest.approx(expected)
        assert recall_at_k(queries, database, targets, k=k) == pytest.approx(expected)
    assert metrics["MRR"] == pytest.approx((1.0 / ranks.double()).mean().item())
    assert 0.05 < metrics["R@1"] < metrics["R@10"] < 1.0
    assert metrics["n_query"] == 250 and metrics["n_search"] == 250


def test_ranks_match_brute_force_with_ties_at_any_chunking():
    queries, database = _integer_embeddings(80, 40, dim=4, seed=8)
    targets = torch.randint(0, 80, (40,), generator=torch.Generator().manual_seed(8))
    expected = _reference_ranks(queries, database, targets)
    for chunk_size, query_chunk_size in [(1, 1), (3, 7), (1000, 1000)]:
        ranks = target_ranks(queries, database, targets, chunk_size, query_chunk_size)
        assert torch.equal(ranks, expected)


def test_recall_agrees_with_search():
    queries, database = _integer_embeddings(60, 30, dim=4, seed=9)
    targets = torch.randint(0, 60, (30,), generator=torch.Generator().manual_seed(9))
    _, indices = search(queries, database, k=5)
    hit = (indices == targets[:, None]).any(dim=1).double().mean().item()
    ranks = target_ranks(queries, database, targets)
    assert (ranks <= 5).double().mean().item() == hit


def test_duplicate_of_the_target_with_a_lower_index_wins():
    database = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    queries = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert target_ranks(queries, database, [2, 0]).tolist() == [2, 1]
    assert recall_at_k(queries, database, [2, 0], mean_subtract=False) == 0.5


def test_database_larger_than_one_chunk():
    queries, database, targets = _pair(n=150, dim=8, noise=0.6, seed=10)
    whole = retrieval_metrics(queries, database, targets, chunk_size=10_000)
    chunked = retrieval_metrics(queries, database, targets, chunk_size=7, query_chunk_size=11)
    assert whole == chunked


def test_fp16_inputs_give_the_float32_result():
    queries, database, targets = _pair(n=150, dim=16, seed=11)
    q16, d16 = queries.half(), database.half()
    assert retrieval_metrics(q16, d16, targets) == retrieval_metrics(
        q16.float(), d16.float(), targets
    )


def test_recall_is_perfect_for_identical_sides():
    x = torch.randn(40, 8)
    assert recall_at_k(x, x, torch.arange(40)) == 1.0
    assert recall_at_k(x, x, list(range(40)), k=40) == 1.0


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "queries, database, targets, message",
    [
        (torch.randn(3, 4), torch.randn(5, 6), [0, 1, 2], "same dimension"),
        (torch.randn(3, 4), torch.randn(5, 4), [0, 1, 5], "targets must index"),
        (torch.randn(3, 4), torch.randn(5, 4), [0, -1, 2], "targets must index"),
        (torch.randn(3, 4), torch.randn(5, 4), [0, 1], "one index per query"),
        (torch.randn(0, 4), torch.randn(5, 4), [], "empty"),
        (torch.randn(3, 4), torch.randn(0, 4), [0, 1, 2], "empty"),
        (torch.randn(3), torch.randn(5, 4), [0, 1, 2], "2-D"),
        (torch.full((3, 4), float("nan")), torch.randn(5, 4), [0, 1, 2], "NaN"),
        (torch.randn(3, 4), torch.full((5, 4), float("inf")), [0, 1, 2], "NaN or infinite"),
    ],
)
def test_bad_inputs_raise_value_error(queries, database, targets, message):
    with pytest.raises(ValueError, match=message):
        recall_at_k(queries, database, targets)


def test_bad_arguments_raise():
    x = torch.randn(5, 4)
    with pytest.raises(TypeError, match="integer indices"):
        recall_at_k(x, x, torch.zeros(5))
    with pytest.raises(ValueError, match="positive integer"):
        recall_at_k(x, x, torch.arange(5), k=0)
    with pytest.raises(ValueError, match="larger than the database"):
        search(x, x, k=6)
    with pytest.raises(ValueError, match="backend"):
        search(x, x, k=1, backend="annoy")
    with pytest.raises(ValueError, match="chunk_size"):
        search(x, x, k=1, chunk_size=0)
    with pytest.raises(TypeError, match="numpy"):
        search([[1.0]], x, k=1)


# --- result tables -------------------------------------------------------------------


def _paper_table_ii():
    table = RetrievalTable(title="TABLE II: EN speech -> Y text retrieval (MUST-C)")
    for model, values in [("SAMU-XLSR", (0.8703, 0.8583)), ("SENSE", (0.8701, 0.8587))]:
        for pair, value, n_query, n_search in zip(
            ("en-es", "en-fr"), values, (4417, 4643), (270_000, 280_000)
        ):
            table.add(model, pair, value, n_query=n_query, n_search=n_search)
    return table


def test_table_layout_like_the_paper():
    text = _paper_table_ii().to_markdown()
    lines = text.splitlines()
    assert lines[0] == "**TABLE II: EN speech -> Y text retrieval (MUST-C)**"
    grid = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert grid[0] == ["R@1", "en-es", "en-fr"]
    assert grid[2] == ["SAMU-XLSR", "87.03", "85.83"]
    assert grid[3] == ["SENSE", "87.01", "85.87"]
    assert grid[4] == ["# DB query", "4417", "4643"]
    assert grid[5] == ["# DB search", "270K", "280K"]
    assert len({len(line) for line in lines[2:]}) == 1  # aligned columns
    assert [format_db_size(n) for n in (957, 26_500, 13_500)] == ["957", "26.5K", "13.5K"]


def test_table_round_trips_and_collects_rows_from_several_runs(tmp_path):
    stem = tmp_path / "tables" / "table2"
    written = _paper_table_ii().save(stem)
    assert sorted(written) == [".csv", ".json", ".md"]
    assert all(p.is_file() for p in written.values())

    # a later run opens the table, adds its row (with all its metrics) and saves it
    table = RetrievalTable.open(stem.with_suffix(".json"))
    metrics = {"R@1": 0.9063, "R@5": 0.95, "MRR": 0.92, "n_query": 4417, "n_search": 270_000}
    table.add("SONAR", "en-es", metrics)
    table.save(stem)

    loaded = RetrievalTable.load(stem)
    assert loaded.models == ["SAMU-XLSR", "SENSE", "SONAR"]
    assert loaded.pairs == ["en-es", "en-fr"]
    assert loaded.shape == (3, 2)
    assert loaded.value("SONAR", "en-es", "MRR") == 0.92
    assert loaded.value("SONAR", "en-fr") is None
    assert loaded.sizes("en-fr") == (4643, 280_000)
    assert loaded.to_markdown() == (stem.parent / "table2.md").read_text()
    assert "| SONAR       | 90.63 |     - |" in loaded.to_markdown()

    rows = list(csv.reader(io.StringIO((stem.parent / "table2.csv").read_text())))
    assert len(rows) == 1 + 3 + 2 and all(len(r) == 3 for r in rows)
    assert rows[-1] == ["# DB search", "270000", "280000"]
    assert json.loads((stem.parent / "table2.json").read_text())["metric"] == "R@1"


def test_table_groups_and_metrics_from_retrieval():
    queries, database, targets = _pair(n=60, dim=8, seed=12)
    table = RetrievalTable(metric="MRR")
    table.add("SENSE", "it-en", retrieval_metrics(queries, database, targets), group="MTEDx")
    table.add("SENSE", "lb-en", retrieval_metrics(queries, database, targets), group="FLEURS")
    lines = table.to_markdown().splitlines()
    assert lines[0].split("|")[1].strip() == "MRR"
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["", "MTEDx", "FLEURS"]
    assert table.sizes("it-en") == (60, 60)


def test_table_rejects_inconsistent_or_bad_rows(tmp_path):
    table = _paper_table_ii()
    with pytest.raises(ValueError, match="n_search of pair 'en-es'"):
        table.add("SONAR", "en-es", 0.9, n_search=1000)
    with pytest.raises(ValueError, match="fraction"):
        table.add("SONAR", "en-es", 90.63)
    with pytest.raises(ValueError, match="model"):
        table.add("", "en-es", 0.5)
    with pytest.raises(FileNotFoundError):
        RetrievalTable.load(tmp_path / "missing")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a retrieval table"):
        RetrievalTable.load(tmp_path / "other.json")


@pytest.mark.cuda
def test_gpu_tensors_give_the_cpu_result():
    import sense.retrieval as retrieval

    queries, database = _integer_embeddings(300, 50, dim=6, seed=13)
    targets = torch.randint(0, 300, (50,), generator=torch.Generator().manual_seed(13))
    cpu = search(queries, database, k=10, chunk_size=32, backend="torch")
    gpu = search(queries.cuda(), database.cuda(), k=10, chunk_size=32)  # auto: torch on GPU
    assert gpu[1].device.type == "cuda"
    assert torch.equal(gpu[1].cpu(), cpu[1])
    ranks = target_ranks(queries.cuda(), database.cuda(), targets.cuda(), chunk_size=32)
    assert torch.equal(ranks.cpu(), target_ranks(queries, database, targets))
    if retrieval._faiss_available():
        faiss = search(queries.cuda(), database.cuda(), 10, backend="faiss")
        assert torch.equal(faiss[1].cpu(), cpu[1])


def test_auto_backend_falls_back_to_torch_without_faiss(monkeypatch):
    import sense.retrieval as retrieval

    queries, database, _ = _pair(n=40, dim=8, seed=14)
    expected = search(queries, database, k=4, backend="faiss")[1]
    monkeypatch.setattr(retrieval, "_faiss_available", lambda: False)
    assert torch.equal(search(queries, database, k=4)[1], expected)
    with pytest.raises(ImportError, match="faiss-cpu"):
        search(queries, database, k=4, backend="faiss")
