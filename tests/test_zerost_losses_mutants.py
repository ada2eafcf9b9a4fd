"""sense.zerost.losses: values that mutation testing (make mutation) found unpinned."""

import torch

from sense.zerost.losses import fine_grained_kd, masked_mean


def test_fine_grained_kd_mean_is_the_sum_over_the_queries_count():
    """Two queries e1, e2 against tokens e1 and (padded) e2: the best similarities are
    1 (e1) and 0 (e2 only meets e1; the padded e2 is masked): sum 1, mean 1/2."""
    queries = torch.eye(2)[None]
    tokens = torch.eye(2)[None]
    mask = torch.tensor([[True, False]])
    assert fine_grained_kd(queries, tokens, mask, reduction="sum").tolist() == [1.0]
    assert fine_grained_kd(queries, tokens, mask, reduction="mean").tolist() == [0.5]


def test_masked_mean_of_a_single_kept_row_is_that_row():
    x = torch.tensor([[[4.0], [100.0]]])
    assert masked_mean(x, torch.tensor([[True, False]])).tolist() == [[4.0]]


def test_the_loss_records_its_projection():
    """``projection`` is kept as given (what a run's log and a reader of the module see)."""
    from sense.zerost.losses import ZeroSTKDLoss

    for projection in ("shared", "separate", "none"):
        assert ZeroSTKDLoss(4, 4, projection=projection).projection == projection
