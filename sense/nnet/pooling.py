"""Masked attentive pooling of frame-level features into one utterance vector.

SENSE and SAMU-XLSR turn the encoder's frames into one vector with attention
pooling: a linear layer scores every frame, a softmax over the *real* frames
turns the scores into weights, and the weighted sum is the utterance vector.
SAMU-XLSR then applies a linear projection and ``tanh``.

Padding is masked out before the softmax, so an utterance's embedding does
not depend on which other utterances share its batch (SpeechBrain's SENSE
recipe's ``AttentionPooling`` gives padded frames weight).

``batch_norm=True`` standardises the pooled vector across utterances before
the projection.  A *randomly initialised* encoder pools every utterance to
nearly the same vector: a common offset, with the differences between
utterances a small remainder.  A cosine loss gives that offset no consistent
gradient (orthogonal to each output, and averaging out over centred targets),
so training from scratch crawls (the ``make demo`` student stayed at a cosine
distance of 0.98 for six epochs).  Removing the offset makes the differences
all the projection sees.  The paper's head, on a pre-trained encoder, has no
such layer; SENSE leaves it off.
"""

from __future__ import annotations

import torch
from torch import nn

from sense.dataio import check_lengths, length_mask

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
BATCH_NORM_MOMENTUM = 0.1
BATCH_NORM_EPS = 1e-5


class BatchStandardization(nn.Module):
    """Standardise vectors [B,D] over the batch, with running statistics for inference.

    What ``nn.BatchNorm1d(D, affine=False)`` computes, with two differences that
    matter for distillation recipes:

    - a training batch of one vector uses the running statistics instead of
      failing;
    - it is not a torch batch-norm class, so SpeechBrain's DDP wrapping does not
      turn it into ``SyncBatchNorm``.  ``SyncBatchNorm`` fails on CPU (gloo) and
      would deadlock when one rank, holding a single utterance, skips its
      collective.  Each rank uses its own batch; DDP broadcasts rank 0's running
      statistics.

    Example
    -------
    >>> norm = BatchStandardization(4)
    >>> out = norm(torch.randn(8, 4) * 3 + 5)
    >>> bool(out.mean(0).abs().max() < 1e-5), int(norm.num_batches_tracked)
    (True, 1)
    """

    def __init__(
        self, dim: int, momentum: float = BATCH_NORM_MOMENTUM, eps: float = BATCH_NORM_EPS
    ):
        super().__init__()
        self.dim, self.momentum, self.eps = dim, momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B,D] -> [B,D]."""
        from_batch = self.training and x.shape[0] > 1
        if from_batch:
            self.num_batches_tracked += 1
        return nn.functional.batch_norm(
            x.float(),
            self.running_mean,
            self.running_var,
            training=from_batch,
            momentum=self.momentum,
            eps=self.eps,
        ).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, momentum={self.momentum}, eps={self.eps}"


class AttentivePooling(nn.Module):
    """Attention pooling over the real frames, with optional projection.

    Parameters
    ----------
    input_dim : int
        Size ``D`` of the frame features.
    output_dim : int, optional
        When given, a linear projection ``D -> output_dim`` follows the pooling
        (SAMU-XLSR projects to the teacher's dimension).
    activation : str or nn.Module, optional
        Applied after the projection (or after pooling when there is none):
        ``"tanh"`` for SAMU-XLSR, ``None`` for SENSE.
    batch_norm : bool
        Standardise the pooled vector across the batch (running statistics at
        inference; a training batch of one utterance uses them too) before the
        projection.  For encoders trained from scratch.

    Example
    -------
    >>> pool = AttentivePooling(32, output_dim=16, activation="tanh")
    >>> emb, logits = pool(torch.randn(2, 50, 32), torch.tensor([1.0, 0.6]))
    >>> emb.shape, logits.shape
    (torch.Size([2, 16]), torch.Size([2, 50]))
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int | None = None,
        activation: str | nn.Module | None = None,
        batch_norm: bool = False,
    ):
        super().__init__()
        if input_dim <= 0:
            raise ValueError(f"input_dim must be positive, got {input_dim}")
        self.input_dim = input_dim
        self.output_dim = output_dim or input_dim
        self.attention = nn.Linear(input_dim, 1)
        self.norm = BatchStandardization(input_dim) if batch_norm else None
        self.projection = nn.Linear(input_dim, output_dim) if output_dim else None
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}"
                )
            activation = ACTIVATIONS[activation]()
        self.activation = activation

    def attend(self, frames: torch.Tensor, lens: torch.Tensor | None = None):
        """Attention-pool ``frames`` [B,T,D] with relative ``lens`` [B] in (0, 1].

        The first half of :meth:`forward`; :meth:`head` is the second. Paths
        that pool otherwise (a long recording pooled exactly over its windows,
        see :class:`sense.windows.PoolAccumulator`) apply :meth:`head` to
        their pooled vector, so no path skips a part of the head.

        Returns
        -------
        pooled : torch.Tensor
            [B, D] attention-weighted mean of the real frames.
        logits : torch.Tensor
            [B, T] float32 attention logits; padded frames hold ``-inf``.

        Example
        -------
        >>> pool = AttentivePooling(8)
        >>> pooled, logits = pool.attend(torch.randn(2, 5, 8), torch.tensor([1.0, 0.4]))
        >>> pooled.shape, bool(logits[1, 2:].isinf().all())
        (torch.Size([2, 8]), True)
        """
        if frames.dim() != 3 or frames.shape[-1] != self.input_dim:
            raise ValueError(f"frames must be [B,T,{self.input_dim}], got {tuple(frames.shape)}")
        batch, time, _ = frames.shape
        if lens is None:
            lens = torch.ones(batch, device=frames.device)
        check_lengths(lens, batch)
        mask = length_mask(lens, time)
        logits = self.attention(frames).squeeze(-1).float()
        logits = logits.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        pooled = torch.bmm(weights.unsqueeze(1).to(frames.dtype), frames).squeeze(1)
        return pooled, logits

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Normalisation, projection and activation of pooled vectors [B,D] -> [B,output_dim].

        Example
        -------
        >>> pool = AttentivePooling(8, output_dim=4, activation="tanh")
        >>> pool.head(torch.randn(3, 8)).shape
        torch.Size([3, 4])
        """
        if pooled.dim() != 2 or pooled.shape[-1] != self.input_dim:
            raise ValueError(f"pooled must be [B,{self.input_dim}], got {tuple(pooled.shape)}")
        emb = pooled
        if self.norm is not None:
            emb = self.norm(emb)
        if self.projection is not None:
            emb = self.projection(emb.to(self.projection.weight.dtype))
        if self.activation is not None:
            emb = self.activation(emb)
        return emb

    def forward(self, frames: torch.Tensor, lens: torch.Tensor | None = None):
        """Pool ``frames`` [B,T,D] with relative ``lens`` [B] in (0, 1]: :meth:`attend`, then :meth:`head`.

        Returns
        -------
        emb : torch.Tensor
            [B, output_dim] utterance embeddings.
        logits : torch.Tensor
            [B, T] attention logits; padded frames hold ``-inf``.
        """
        pooled, logits = self.attend(frames, lens)
        return self.head(pooled), logits

    @staticmethod
    def weights(logits: torch.Tensor) -> torch.Tensor:
        """Attention weights [B,T] (summing to 1 over real frames) from ``logits``.

        Example
        -------
        >>> AttentivePooling.weights(torch.tensor([[0.0, 0.0, float("-inf")]]))
        tensor([[0.5000, 0.5000, 0.0000]])
        """
        return torch.softmax(logits, dim=-1)
