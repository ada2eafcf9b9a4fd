"""sense.retrieval: what mutation testing (make mutation) found unpinned: input checks,
preparation against float64, the backend choice, duplicate groups and ties by hand."""

import sys

import numpy as np
import pytest
import torch

from sense import retrieval
from sense.retrieval import (
    _find_duplicates,
    _resolve_backend,
    mean_subtract,
    prepare_embeddings,
    retrieval_metrics,
    search,
    target_ranks,
)


@pytest.mark.parametrize(
    "x, shown",
    [([[1.0, 2.0]], "list"), (torch.ones(3), r"\(3,\)"), (torch.ones(0, 2), r"\(0, 2\)")],
)
def test_mean_subtract_refuses_what_is_not_a_non_empty_matrix(x, shown):
    """The message names the type, or the shape of a tensor."""
    with pytest.raises(ValueError, match=rf"non-empty \[N, D\] tensor, got {shown}"):
        mean_subtract(x)


def test_mean_subtract_of_one_row_and_of_no_dimension():
    """One row is its own mean: the zero vector. Rows of no dimension stay so."""
    assert mean_subtract(torch.tensor([[3.0, 4.0]])).tolist() == [[0.0, 0.0]]
    assert mean_subtract(torch.ones(2, 0)).shape == (2, 0)


# ---------------------------------------------------------------------------
# Input checks, preparation, backend choice, duplicate groups, ties
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, error, words",
    [
        (torch.ones(3, 0), ValueError, r"embeddings is empty \(shape \(3, 0\)\)"),
        (torch.ones(0, 3), ValueError, r"embeddings is empty \(shape \(0, 3\)\)"),
        (torch.ones(2, 2, dtype=torch.bool), TypeError, "embeddings must hold real numbers"),
        (torch.ones(2, 2, dtype=torch.complex64), TypeError, "embeddings must hold real numbers"),
        (
            torch.tensor([[1.0, float("nan")], [1.0, 2.0], [float("inf"), float("-inf")]]),
            ValueError,
            r"embeddings has 2 row\(s\) with NaN or infinite values",
        ),
    ],
)
def test_prepare_embeddings_refuses_naming_the_input(x, error, words):
    with pytest.raises(error, match=words):
        prepare_embeddings(x)


def test_search_and_ranks_name_the_side_they_refuse():
    good = torch.eye(3)
    with pytest.raises(ValueError, match=r"^queries is empty"):
        search(torch.ones(0, 3), good, k=1)
    with pytest.raises(ValueError, match=r"^database is empty"):
        target_ranks(good, torch.ones(0, 3), [0, 0, 0])
    with pytest.raises(ValueError, match=r"^queries has 1 row"):
        target_ranks(torch.tensor([[float("nan"), 0.0, 0.0]]), good, [0])
    with pytest.raises(ValueError, match=r"^database has 1 row"):
        target_ranks(
            good, torch.tensor([[0.0, 0.0, float("inf")], [1.0, 0, 0], [0, 1.0, 0]]), [0, 1, 2]
        )


def test_prepare_embeddings_is_the_float64_centred_cosine_by_default():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).half()
    x64 = x.double()
    centred = x64 - x64.mean(0)
    expected = centred / centred.norm(dim=1, keepdim=True)
    got = prepare_embeddings(x)
    assert got.dtype == torch.float32 and got.shape == (5, 3)
    torch.testing.assert_close(got.double(), expected, atol=1e-6, rtol=0)
    plain = prepare_embeddings(x, mean_subtract=False).double()
    torch.testing.assert_close(plain, x64 / x64.norm(dim=1, keepdim=True), atol=1e-6, rtol=0)
    one = prepare_embeddings(torch.tensor([[3.0], [-1.0]]), mean_subtract=False)
    assert one.tolist() == [[1.0], [-1.0]]  # [N, 1] is a matrix too
    assert mean_subtract(torch.ones(2, 2, dtype=torch.float16)).dtype == torch.float32
    assert mean_subtract(torch.ones(2, 2, dtype=torch.float64)).dtype == torch.float64


def test_targets_from_numpy_and_any_integer_dtype_but_not_bool_or_float():
    q = torch.eye(3)
    expected = target_ranks(q, q, [2, 0, 1]).tolist()
    assert target_ranks(q, q, np.array([2, 0, 1])).tolist() == expected
    assert target_ranks(q, q, torch.tensor([2, 0, 1], dtype=torch.int32)).tolist() == expected
    assert target_ranks(q, q, torch.tensor([2, 0, 1], dtype=torch.uint8)).tolist() == expected
    for bad in (torch.tensor([True, False, True]), torch.tensor([0.0, 1.0, 2.0])):
        with pytest.raises(TypeError, match="targets must hold integer indices"):
            target_ranks(q, q, bad)


@pytest.mark.parametrize("k", [True, 0, 1.0, "1"])
def test_k_must_be_a_positive_integer_not_a_bool(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        search(torch.eye(3), torch.eye(3), k=k)
    with pytest.raises(ValueError, match="every k in ks must be a positive integer"):
        retrieval_metrics(torch.eye(3), torch.eye(3), [0, 1, 2], ks=(1, k))


def test_auto_backend_is_torch_but_for_large_cpu_searches(monkeypatch):
    asked = []
    monkeypatch.setattr(retrieval, "_faster_cpu_backend", lambda dim: asked.append(dim) or "probe")
    cpu = torch.device("cpu")
    work = retrieval.PROBE_WORK
    assert _resolve_backend("torch", cpu, (10**6, 10**6, 1024)) == "torch"
    assert _resolve_backend("faiss", cpu, (1, 1, 1)) == "faiss"
    assert _resolve_backend("auto", cpu, (1, work - 1, 1)) == "torch"
    assert _resolve_backend("auto", torch.device("cuda"), (1, work, 1)) == "torch"
    assert asked == []
    assert _resolve_backend("auto", cpu, (1, work, 1)) == "probe"  # from PROBE_WORK on
    assert _resolve_backend("auto", cpu, (work // 64, 4, 16)) == "probe"
    assert asked == [1, 16]
    monkeypatch.setattr(retrieval, "_faiss_available", lambda: False)
    assert _resolve_backend("auto", cpu, (1, work, 1)) == "torch"
    with pytest.raises(ImportError, match="backend='faiss' needs faiss"):
        _resolve_backend("faiss", cpu, (1, 1, 1))
    with pytest.raises(ValueError, match="backend must be one of"):
        _resolve_backend("numpy", cpu, (1, 1, 1))


def test_faiss_unavailable_when_it_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    assert retrieval._faiss_available() is False


def test_duplicate_groups_by_hand():
    x = torch.tensor(
        [[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [0.0, 5.0], [3.0, 4.0], [1.0, 2.0], [-0.0, 5.0]]
    )
    dup = _find_duplicates(x)
    assert dup.first.tolist() == [0, 1, 3]  # -0.0 == 0.0: rows 3 and 6 are one group
    assert dup.inverse.tolist() == [0, 1, 0, 2, 1, 0, 2]
    assert dup.counts.tolist() == [3, 2, 2]
    assert dup.offsets.tolist() == [0, 3, 5, 7]
    assert dup.members.tolist() == [0, 2, 5, 1, 4, 3, 6]
    assert dup.before.tolist() == [0, 0, 1, 0, 1, 2, 1]
    pair = _find_duplicates(torch.tensor([[1.0], [2.0], [1.0]]))  # one pair
    assert pair.first.tolist() == [0, 1] and pair.counts.tolist() == [2, 1]
    assert _find_duplicates(torch.eye(4)) is None


def _reference_topk(queries, database, k):
    """numpy: scores in float64 of the float32 inputs, stable sort (lower index first)."""
    scores = queries.double().numpy() @ database.double().numpy().T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order


@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("chunk_size", [4, 1000])
@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_distinct_rows_tied_at_the_kth_place_go_lowest_index_first(k, chunk_size, backend):
    """Queries are unit axes; many distinct rows share each score (only other axes differ)."""
    gen = torch.Generator().manual_seed(k)
    n, dim = 3000, 4  # enough for torch.topk to return tied entries out of index order
    database = torch.randn(n, dim, generator=gen)
    database[:, 0] = torch.tensor([0.5, 0.25, 1.0, 0.75])[torch.randint(0, 4, (n,), generator=gen)]
    database[1234, 0] = 3.0  # one best row, then ties: the k-th place is tied, the first not
    queries = torch.zeros(3, dim)
    queries[:, 0] = torch.tensor([1.0, 2.0, 0.5])
    _, index = search(queries, database, k=k, chunk_size=chunk_size, backend=backend)
    assert index.tolist() == _reference_topk(queries, database, k).tolist()
    ranks = target_ranks(queries, database, [5, 17, 2999], chunk_size=chunk_size)
    full = _reference_topk(queries, database, n)
    assert ranks.tolist() == [
        int(np.flatnonzero(full[i] == t)[0]) + 1 for i, t in enumerate([5, 17, 2999])
    ]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("chunk_size", [2, 1000])
def test_search_refuses_a_non_finite_database_found_while_scoring(backend, chunk_size):
    database = torch.eye(5, 3)
    database[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"^database has 1 row\(s\) with NaN or infinite values"):
        search(torch.ones(2, 3), database, k=1, chunk_size=chunk_size, backend=backend)


def test_ks_one_int_or_a_non_empty_sequence():
    x = torch.eye(4)
    assert set(retrieval_metrics(x, x, torch.arange(4), ks=3)) == {
        "R@3",
        "MRR",
        "n_query",
        "n_search",
    }
    for bad in ((), [], {1}):
        with pytest.raises(ValueError, match="ks must be a non-empty sequence"):
            retrieval_metrics(x, x, torch.arange(4), ks=bad)


def test_find_duplicates_reads_no_values_and_names_the_database():
    find = getattr(retrieval, "find_duplicates", None)
    if find is None:  # the public wrapper is newer than some checkouts
        pytest.skip("sense.retrieval.find_duplicates not there")
    nan = float("nan")
    groups = find(torch.tensor([[1.0, nan], [2.0, 0.0], [2.0, 0.0]]))  # not checked finite
    assert groups.first.tolist() == [0, 1] and groups.inverse.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"^database is empty"):
        find(torch.ones(0, 2))
