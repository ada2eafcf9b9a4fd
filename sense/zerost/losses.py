"""ZeroST's knowledge-distillation losses (paper, Eq. 1-5).

The Q-Former's outputs ``Q`` (``[q, d]``) learn from the frozen NLLB text
encoder's token embeddings ``T`` (``[m, d]``) of the transcript. Both go
through ``L2Norm(Proj(·))``, ``Proj`` a linear map followed by tanh (Eq. 1),
so dot products are cosines. Then

* fine-grained (Eq. 2-3, ColBERT's max-sim): ``Σ_i (1 - max_j Q[i]·T[j])``,
  summed over the queries as in the paper (or averaged), padding tokens
  never chosen;
* global (Eq. 4-5): ``1 - q·t``, with ``q`` and ``t`` the means of ``Q`` and
  of the real tokens of ``T``, each through the same ``Proj`` and ``L2Norm``;
* ``L_KD = β (L_Global + L_Fine)``, ``β = 10`` in the paper; averaged over the batch.

``projection`` says what ``Proj`` is: ``"shared"``, one layer for both sides
(the paper: "the same operations"); ``"separate"``, a layer per side; or
``"none"``, only ``L2Norm``: the queries then learn the NLLB encoder's space
itself, and no trainable map can make the two sides agree by mapping both
to one vector (a learned ``Proj`` can).

Example
-------
>>> loss = ZeroSTKDLoss(query_dim=8, text_dim=6, proj_dim=4)
>>> value, parts = loss(torch.randn(2, 3, 8), torch.randn(2, 5, 6), torch.tensor([1.0, 0.6]))
>>> value.shape, sorted(parts)
(torch.Size([]), ['fine', 'global'])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sense.dataio import abs_lengths
from sense.losses import cosine_distance

#: Paper's loss scale.
DEFAULT_BETA = 10.0
REDUCTIONS = ("sum", "mean")
PROJECTIONS = ("shared", "separate", "none")


def token_mask(tokens: torch.Tensor, token_lens: torch.Tensor | None) -> torch.Tensor:
    """``[B, m]`` True on real tokens of a padded ``[B, m, d]`` batch (relative lengths)."""
    batch, length = tokens.shape[:2]
    if token_lens is None:
        return torch.ones(batch, length, dtype=torch.bool, device=tokens.device)
    counts = abs_lengths(token_lens, length)
    return torch.arange(length, device=tokens.device)[None] < counts[:, None]


def fine_grained_kd(
    queries: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, reduction: str = "sum"
) -> torch.Tensor:
    """``Σ_i (1 - max_j Q[i]·T[j])`` of each utterance (Eq. 2), on normalised vectors.

    Parameters
    ----------
    queries : torch.Tensor
        ``[B, q, d]`` L2-normalised query outputs.
    tokens : torch.Tensor
        ``[B, m, d]`` L2-normalised token embeddings, padded.
    mask : torch.Tensor
        ``[B, m]`` True on real tokens.
    reduction : {"sum", "mean"}
        Over the queries: the paper's sum, or the mean (a loss in [0, 2]).

    Returns
    -------
    torch.Tensor
        ``[B]`` per-utterance losses.

    Example
    -------
    >>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> t = torch.tensor([[[1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]])
    >>> fine_grained_kd(q, t, torch.tensor([[True, True, False]]))  # 2nd query: best is 0
    tensor([1.])
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    sims = torch.einsum("bqd,bmd->bqm", queries.float(), tokens.float())
    best = sims.masked_fill(~mask[:, None], float("-inf")).amax(dim=-1)  # [B, q]
    per_query = 1.0 - best
    return per_query.sum(dim=1) if reduction == "sum" else per_query.mean(dim=1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``[B, m, d]`` on the rows ``mask`` ``[B, m]`` keeps: ``[B, d]``.

    Example
    -------
    >>> masked_mean(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[True, True, False]]))
    tensor([[2.]])
    """
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class KDProjection(nn.Module):
    """``L2Norm(tanh(Linear(x)))`` (Eq. 1 and 4).

    Example
    -------
    >>> KDProjection(8, 4)(torch.randn(2, 3, 8)).norm(dim=-1).allclose(torch.ones(2, 3))
    True
    """

    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.tanh(self.linear(x)).float(), dim=-1)


class L2Norm(nn.Module):
    """``x / ||x||`` over the last dimension (the ``"none"`` projection)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=-1)


class ZeroSTKDLoss(nn.Module):
    """``β (L_Global + L_Fine)`` after ``L2Norm(Proj(·))`` of both sides.

    Parameters
    ----------
    query_dim : int
        Width of the Q-Former outputs.
    text_dim : int
        Width of the NLLB encoder's token embeddings.
    proj_dim : int, optional
        Width of the shared space (default ``text_dim``).
    beta : float
        Loss scale (paper: 10).
    reduction : {"sum", "mean"}
        Of the fine-grained loss over the queries (paper: sum).
    projection : {"separate", "shared", "none"}
        ``Proj`` of each side (see the module docstring); ``"shared"`` and
        ``"none"`` need ``query_dim == text_dim``.
    """

    def __init__(
        self,
        query_dim: int,
        text_dim: int,
        proj_dim: int | None = None,
        beta: float = DEFAULT_BETA,
        reduction: str = "sum",
        projection: str = "separate",
    ):
        super().__init__()
        proj_dim = int(proj_dim or text_dim)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        if projection != "separate" and query_dim != text_dim:
            raise ValueError(
                f"a {projection!r} projection needs queries as wide as the tokens, "
                f"got {query_dim} and {text_dim}"
            )
        if projection == "none":
            self.query_proj = self.text_proj = L2Norm()
        elif projection == "shared":
            self.query_proj = self.text_proj = KDProjection(query_dim, proj_dim)
        else:
            self.query_proj = KDProjection(query_dim, proj_dim)
            self.text_proj = KDProjection(text_dim, proj_dim)
        self.projection = projection
        self.beta, self.reduction = float(beta), reduction

    def forward(
        self, queries: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch-mean KD loss and its two parts (``{"fine", "global"}``, unscaled, detached).

        Parameters
        ----------
        queries : torch.Tensor
            ``[B, q, query_dim]`` Q-Former outputs.
        tokens : torch.Tensor
            ``[B, m, text_dim]`` teacher token embeddings, padded.
        token_lens : torch.Tensor, optional
            ``[B]`` relative lengths of ``tokens``.
        """
        mask = token_mask(tokens, token_lens)
        fine = fine_grained_kd(
            self.query_proj(queries), self.text_proj(tokens), mask, self.reduction
        )
        glob = cosine_distance(
            self.query_proj(queries.mean(dim=1)),
            self.text_proj(masked_mean(tokens, mask)),
            reduction="none",
        )
        loss = self.beta * (fine + glob).mean()
        return loss, {"fine": fine.detach().mean(), "global": glob.detach().mean()}


__all__ = [
    "PROJECTIONS",
    "KDProjection",
    "L2Norm",
    "ZeroSTKDLoss",
    "fine_grained_kd",
    "masked_mean",
    "token_mask",
]
