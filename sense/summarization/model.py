"""A seq2seq model that reads sentence vectors instead of tokens.

:class:`EmbeddingProjection` maps sentence vectors ``[B, N, D]`` to the
seq2seq width ``[B, N, W]`` (a linear layer and a GELU; the GELU alone when
``D == W``, as the paper does for SAMU-XLSR's 768-d vectors and BARThez).
:class:`Seq2SeqSummarizer` wraps any ``AutoModelForSeq2SeqLM`` (BARThez in
the paper) with its tokenizer: its encoder takes the projected vectors as
``inputs_embeds``, its decoder writes the summary, and ``generate`` runs
transformers' beam search.

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_bart
>>> seq2seq = Seq2SeqSummarizer(build_tiny_bart(tempfile.mkdtemp()))
>>> projection = EmbeddingProjection(512, seq2seq.width)
>>> x = projection(torch.randn(2, 5, 512))
>>> mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
>>> labels = seq2seq.labels(["le chat dort", "un jeune médecin"])
>>> seq2seq(x, mask, labels).shape[:2] == labels.shape
True
>>> len(seq2seq.generate(x, mask, num_beams=2, max_new_tokens=4))
2
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Label value the cross-entropy ignores (transformers' convention).
IGNORE_INDEX = -100
DEFAULT_MAX_TARGET_TOKENS = 128
DEFAULT_NUM_BEAMS = 4
DEFAULT_MAX_NEW_TOKENS = 128


class EmbeddingProjection(nn.Module):
    """Sentence vectors to the seq2seq width: ``GELU(Linear(x))``, or ``GELU(x)``.

    Parameters
    ----------
    input_dim : int
        Size ``D`` of the sentence vectors.
    output_dim : int
        Width ``W`` of the seq2seq model (``d_model``; 768 for BARThez).
    project_equal : bool
        Keep the linear layer when ``D == W`` (the paper drops it).

    Example
    -------
    >>> EmbeddingProjection(1024, 768)(torch.randn(2, 3, 1024)).shape
    torch.Size([2, 3, 768])
    >>> EmbeddingProjection(768, 768).linear is None
    True
    """

    def __init__(self, input_dim: int, output_dim: int, project_equal: bool = False):
        super().__init__()
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        needed = self.input_dim != self.output_dim or project_equal
        self.linear = nn.Linear(self.input_dim, self.output_dim) if needed else None
        self.activation = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D]`` -> ``[..., W]``."""
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim}-dim sentence vectors, got {x.shape[-1]}")
        return self.activation(self.linear(x) if self.linear is not None else x)


class Seq2SeqSummarizer(nn.Module):
    """A pre-trained ``AutoModelForSeq2SeqLM`` and its tokenizer, fed with vectors.

    Parameters
    ----------
    source : str
        Hub id (``"moussaKam/barthez"``) or folder saved with ``save_pretrained``
        holding the model and its tokenizer.
    max_target_tokens : int
        Reference summaries are cut to this many tokens for training.
    dropout : float, optional
        Replace the model's dropout (``config.dropout``) when given.

    Attributes
    ----------
    model : transformers.PreTrainedModel
    tokenizer : transformers.PreTrainedTokenizerBase
    """

    def __init__(
        self,
        source: str,
        max_target_tokens: int = DEFAULT_MAX_TARGET_TOKENS,
        dropout: float | None = None,
    ):
        super().__init__()
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.source = str(source)
        kwargs = {} if dropout is None else {"dropout": float(dropout)}
        self.model = AutoModelForSeq2SeqLM.from_pretrained(self.source, **kwargs)
        if not self.model.config.is_encoder_decoder:
            raise ValueError(f"{source}: not an encoder-decoder model")
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        self.max_target_tokens = int(max_target_tokens)

    @property
    def width(self) -> int:
        """Width of the encoder's input vectors (``d_model``)."""
        config = self.model.config
        return int(getattr(config, "d_model", None) or config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def labels(self, summaries: Sequence[str]) -> torch.Tensor:
        """Token ids ``[B, L]`` of the summaries, padding set to :data:`IGNORE_INDEX`."""
        batch = self.tokenizer(
            text_target=list(summaries),
            max_length=self.max_target_tokens,
            truncation=True,
            padding=True,
            return_tensors="pt",
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        return labels.to(self.device)

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Next-token logits ``[B, L, V]`` of the summaries (teacher forcing).

        Parameters
        ----------
        inputs_embeds : torch.Tensor
            ``[B, N, W]`` projected sentence vectors.
        attention_mask : torch.Tensor
            ``[B, N]``, 1 on real sentences.
        labels : torch.Tensor
            ``[B, L]`` from :meth:`labels`; the decoder inputs are these
            shifted right, as transformers builds them.
        """
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels)
        return out.logits

    @torch.no_grad()
    def generate(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        num_beams: int = DEFAULT_NUM_BEAMS,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        **kwargs,
    ) -> list[str]:
        """Summaries of a batch with transformers' ``generate`` (beam search)."""
        ids = self.model.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            num_beams=int(num_beams),
            max_new_tokens=int(max_new_tokens),
            **kwargs,
        )
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def save_pretrained(self, folder: str) -> None:
        """Model and tokenizer in the hub layout (loadable as ``source``)."""
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
