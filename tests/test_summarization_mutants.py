"""sense.summarization.metrics: values that mutation testing (make mutation) found unpinned."""

import pytest

from sense.summarization.metrics import rouge_l


def test_rouge_l_is_the_mean_over_the_summaries():
    """An exact summary (F = 1), a disjoint one (0) and "le chat dort" against
    "le chat dort bien" (LCS 3: P = 1, R = 3/4, F = 6/7): the mean is (1 + 0 + 6/7) / 3."""
    got = rouge_l(
        ["le chat dort", "un chien", "le chat dort"],
        ["le chat dort", "trois oiseaux", "le chat dort bien"],
    )
    assert got == pytest.approx((1 + 0 + 6 / 7) / 3)


def test_rouge_l_refuses_an_empty_list():
    with pytest.raises(ValueError, match="no summaries to score"):
        rouge_l([], [])
