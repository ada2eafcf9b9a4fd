import pytest
import torch

from sense.losses import CosineDistanceLoss, InfoNCELoss, cosine_distance, info_nce


def test_cosine_distance_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    b = torch.tensor([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    assert torch.allclose(cosine_distance(a, b, reduction="none"), torch.tensor([0.0, 2.0, 1.0]))
    assert torch.isclose(cosine_distance(a, b), torch.tensor(1.0))
    assert torch.isclose(cosine_distance(a, b, scale=3.0, reduction="sum"), torch.tensor(9.0))
    assert torch.isclose(CosineDistanceLoss(scale=2.0)(a, b), torch.tensor(2.0))


def test_cosine_distance_gradient_moves_student_toward_teacher():
    student = torch.randn(4, 8, requires_grad=True)
    teacher = torch.randn(4, 8)
    before = cosine_distance(student, teacher)
    before.backward()
    with torch.no_grad():
        stepped = student - 0.1 * student.grad
    assert cosine_distance(stepped, teacher) < before


def test_info_nce_prefers_matching_rows():
    x = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    matched = info_nce(x, x)
    shuffled = info_nce(x, x.roll(1, dims=0))
    assert matched < shuffled
    assert torch.isclose(InfoNCELoss(0.05)(x, x), matched)
    # symmetric: swapping the views gives the same loss
    y = torch.randn(6, 16)
    assert torch.isclose(info_nce(x, y), info_nce(y, x), atol=1e-6)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        cosine_distance(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError):
        info_nce(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        cosine_distance(torch.ones(2, 3), torch.ones(2, 3), reduction="max")
