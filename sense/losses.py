"""Distillation losses between speech embeddings and teacher text embeddings.

SENSE (and SAMU-XLSR) train the student to point in the direction of the
teacher's embedding of the transcript: the loss is the cosine distance. A
symmetric in-batch contrastive loss (InfoNCE) is offered as an alternative
that also pushes apart the embeddings of different sentences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_pair(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"student and teacher must both be [B,D] with the same shape, "
            f"got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )


def cosine_distance(
    student: torch.Tensor, teacher: torch.Tensor, scale: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """``scale * (1 - cos(student, teacher))``, the SENSE / SAMU-XLSR loss.

    Parameters
    ----------
    student, teacher : torch.Tensor
        [B, D] embeddings (need not be normalised).
    scale : float
        Multiplies the loss (a larger scale speeds up the pooling head's
        learning when it shares an optimizer step with a small encoder rate).
    reduction : str
        ``"mean"``, ``"sum"`` or ``"none"`` ([B] per-utterance distances).

    Example
    -------
    >>> cosine_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    tensor(1.)
    """
    _check_pair(student, teacher)
    dist = scale * (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1))
    if reduction == "none":
        return dist
    if reduction == "sum":
        return dist.sum()
    if reduction == "mean":
        return dist.mean()
    raise ValueError(f"unknown reduction {reduction!r}")


def info_nce(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 0.05
) -> torch.Tensor:
    """Symmetric in-batch contrastive loss (InfoNCE) between two views.

    Row ``i`` of ``student`` should match row ``i`` of ``teacher`` and no other
    row; both directions (speech->text and text->speech) are averaged.

    Example
    -------
    >>> x = torch.eye(3)
    >>> bool(info_nce(x, x) < info_nce(x, x.roll(1, dims=0)))
    True
    """
    _check_pair(student, teacher)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float(), dim=-1)
    logits = s @ t.T / temperature
    labels = torch.arange(s.shape[0], device=s.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class CosineDistanceLoss(nn.Module):
    """Module form of :func:`cosine_distance`, for HyperPyYAML configs.

    Example
    -------
    >>> CosineDistanceLoss(scale=2.0)(torch.ones(1, 3), -torch.ones(1, 3))
    tensor(4.)
    """

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, student, teacher):
        return cosine_distance(student, teacher, scale=self.scale)


class InfoNCELoss(nn.Module):
    """Module form of :func:`info_nce`, for HyperPyYAML configs.

    Example
    -------
    >>> float(InfoNCELoss(temperature=1.0)(torch.eye(2), torch.eye(2))) < 1.0
    True
    """

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, student, teacher):
        return info_nce(student, teacher, temperature=self.temperature)
