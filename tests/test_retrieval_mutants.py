"""sense.retrieval: input checks that mutation testing (make mutation) found unpinned."""

import pytest
import torch

from sense.retrieval import mean_subtract


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
