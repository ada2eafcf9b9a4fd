"""sense.losses against a float64 re-implementation (survivors of make mutation)."""

import math

import pytest
import torch

from sense.losses import CosineDistanceLoss, InfoNCELoss, info_nce


def _info_nce64(s, t, temperature):
    """Mean of the two cross-entropies of the cosine-similarity matrix over temperature."""
    s = s.double() / s.double().norm(dim=-1, keepdim=True)
    t = t.double() / t.double().norm(dim=-1, keepdim=True)
    logits = (s @ t.T) / temperature
    n = len(s)
    rows = -sum(logits[i, i] - torch.logsumexp(logits[i], 0) for i in range(n)) / n
    cols = -sum(logits[i, i] - torch.logsumexp(logits[:, i], 0) for i in range(n)) / n
    return float(0.5 * (rows + cols))


def test_info_nce_equals_the_float64_definition():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    for temperature in (0.05, 0.1, 1.0):
        assert math.isclose(
            float(info_nce(s, t, temperature)), _info_nce64(s, t, temperature), rel_tol=1e-4
        )
    assert math.isclose(float(InfoNCELoss()(s, t)), _info_nce64(s, t, 0.05), rel_tol=1e-4)
    assert math.isclose(float(InfoNCELoss(0.3)(s, t)), _info_nce64(s, t, 0.3), rel_tol=1e-4)


def test_a_zero_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature must be positive"):
        info_nce(torch.eye(2), torch.eye(2), temperature=0.0)


def test_cosine_distance_loss_default_scale_is_one():
    """Orthogonal rows: distance 1 each."""
    assert (
        float(CosineDistanceLoss()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]]))) == 1.0
    )
