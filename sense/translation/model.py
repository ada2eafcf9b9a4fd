"""Pre-trained text decoders fed with speech frames: mBART-50 and NLLB.

Speech translation in the SENSE paper (appendix B3) joins a speech encoder
and the decoder of mBART through a feed-forward projection: the decoder
attends to the projected speech frames instead of the text encoder's output,
which is never used. :class:`FrameProjection` is that bridge;
:class:`Seq2SeqDecoder` loads the decoder of a transformers encoder-decoder
(``MBartForConditionalGeneration`` for ``facebook/mbart-large-50``,
``M2M100ForConditionalGeneration`` for ``facebook/nllb-200-distilled-600M``)
with its tokenizer, builds teacher-forcing targets that start with the target
language token, and decodes with transformers' own ``generate`` (beam search
or greedy) on precomputed encoder outputs.

The text encoder's layers are dropped once the model is loaded
(``encoder_layers = 0``): they take no memory during training, and an
exported model does not carry them.

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_mbart
>>> decoder = Seq2SeqDecoder(build_tiny_mbart(tempfile.mkdtemp()), target_lang="en_XX").eval()
>>> memory = torch.randn(2, 7, decoder.d_model)
>>> len(decoder.generate(memory, torch.tensor([1.0, 0.6]), beam_size=2, max_new_tokens=4))
2
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import torch
from torch import nn

from sense.dataio import abs_lengths

logger = logging.getLogger(__name__)

MBART = "mbart"
M2M100 = "m2m_100"
SUPPORTED_MODEL_TYPES = (MBART, M2M100)
#: Label id ignored by the loss (padding of the targets).
IGNORE_INDEX = -100
#: Generated tokens per encoder frame at most (w2v-BERT frames are 20 ms:
#: 0.25 is 12.5 tokens a second, far above speech rate), and the floor.
DEFAULT_MAX_DECODE_RATIO = 0.25
DEFAULT_MIN_DECODE_TOKENS = 10


def _model_class(model_type: str):
    if model_type == MBART:
        from transformers import MBartForConditionalGeneration

        return MBartForConditionalGeneration
    if model_type == M2M100:
        from transformers import M2M100ForConditionalGeneration

        return M2M100ForConditionalGeneration
    raise ValueError(
        f"Seq2SeqDecoder: model_type {model_type!r} is not supported; "
        f"supported types: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


class FrameProjection(nn.Module):
    """Feed-forward bridge from speech frames to the decoder's width.

    ``Linear -> GELU -> dropout -> Linear -> LayerNorm``: the layer norm puts
    the projected frames on the scale of the text encoder outputs the
    decoder's cross-attention was pre-trained on.

    Parameters
    ----------
    input_dim : int
        Width of the speech encoder frames.
    output_dim : int
        The decoder's ``d_model``.
    hidden_dim : int, optional
        Width of the hidden layer (default: ``output_dim``).
    dropout : float
        Dropout after the activation.

    Example
    -------
    >>> proj = FrameProjection(32, 16)
    >>> proj(torch.randn(2, 5, 32)).shape
    torch.Size([2, 5, 16])
    """

    def __init__(
        self, input_dim: int, output_dim: int, hidden_dim: int | None = None, dropout: float = 0.1
    ):
        super().__init__()
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.hidden_dim = int(hidden_dim or output_dim)
        self.dropout_p = float(dropout)
        self.net = nn.Sequential(
            nn.Linear(self.input_dim, self.hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(self.hidden_dim, self.output_dim),
            nn.LayerNorm(self.output_dim),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, input_dim]`` -> ``[B, T, output_dim]``."""
        return self.net(frames)


class Seq2SeqDecoder(nn.Module):
    """The decoder of an mBART-50 or NLLB checkpoint, attending to given frames.

    Parameters
    ----------
    source : str
        Hub id or local folder of a ``MBartForConditionalGeneration`` or
        ``M2M100ForConditionalGeneration`` checkpoint with its tokenizer.
    target_lang : str
        Language token the output starts with (``"en_XX"`` for mBART-50,
        ``"eng_Latn"`` for NLLB); it is forced at decoding.
    save_path : str, optional
        Cache directory for hub downloads.
    freeze : bool
        Keep the decoder fixed (no gradients, eval mode).
    dropout, attention_dropout : float, optional
        Override the config's dropout; ``None`` keeps it.

    Attributes
    ----------
    d_model : int
        Width the decoder's cross-attention expects.
    tokenizer
        The checkpoint's tokenizer.
    """

    def __init__(
        self,
        source: str,
        target_lang: str = "en_XX",
        save_path: str | None = None,
        freeze: bool = False,
        dropout: float | None = None,
        attention_dropout: float | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoTokenizer

        self.source = os.fspath(source)
        self.freeze = freeze
        try:
            config = AutoConfig.from_pretrained(self.source, cache_dir=save_path)
            self.tokenizer = AutoTokenizer.from_pretrained(self.source, cache_dir=save_path)
        except (OSError, ValueError) as err:
            raise OSError(f"Seq2SeqDecoder: cannot load {self.source!r}: {err}") from err
        self.model_type = config.model_type
        model_class = _model_class(self.model_type)
        for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            if value is not None:
                setattr(config, name, value)
        self.model = model_class.from_pretrained(self.source, config=config, cache_dir=save_path)
        # the text encoder is never used: drop its layers (a saved copy has none)
        self.model.get_encoder().layers = nn.ModuleList()
        self.model.config.encoder_layers = 0
        self.d_model = int(config.d_model)
        self.max_positions = int(config.max_position_embeddings)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.eos_id = int(self.tokenizer.eos_token_id)
        self.start_id = int(config.decoder_start_token_id or self.eos_id)
        self.set_target_lang(target_lang)
        if freeze:
            self.model.requires_grad_(False)
        self.train(self.training)

    def language_id(self, lang: str) -> int:
        """Token id of the language code ``lang`` (``"en_XX"``, ``"eng_Latn"``)."""
        lang_id = self.tokenizer.convert_tokens_to_ids(lang)
        if lang_id is None or lang_id == self.tokenizer.unk_token_id:
            raise ValueError(
                f"Seq2SeqDecoder: {lang!r} is not a language token of {self.source!r} "
                "(mBART-50 uses codes like 'en_XX', NLLB like 'eng_Latn')"
            )
        return int(lang_id)

    def set_target_lang(self, target_lang: str) -> None:
        """Make ``target_lang`` the language token every output starts with."""
        self.target_lang, self.lang_id = target_lang, self.language_id(target_lang)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    # -- targets -----------------------------------------------------------------------

    def target_ids(self, text: str, lang: str | None = None) -> torch.Tensor:
        """``[language token, text tokens..., </s>]`` (LongTensor), as the model is trained.

        ``lang``: the language code of ``text`` (default: the target language).
        """
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        lang_id = self.lang_id if lang is None else self.language_id(lang)
        ids = [lang_id, *ids[: self.max_positions - 2], self.eos_id]
        return torch.tensor(ids, dtype=torch.long)

    def teacher_forcing(
        self, tokens: torch.Tensor, token_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs and labels from padded targets.

        Parameters
        ----------
        tokens : torch.Tensor
            ``[B, L]`` target ids of :meth:`target_ids`, padded with anything.
        token_lens : torch.Tensor
            ``[B]`` relative lengths.

        Returns
        -------
        inputs : torch.Tensor
            ``[B, L]`` the decoder start token, then the targets shifted right.
        labels : torch.Tensor
            ``[B, L]`` the targets, :data:`IGNORE_INDEX` on padding.
        """
        counts = abs_lengths(token_lens, tokens.shape[1])
        pad = torch.arange(tokens.shape[1], device=tokens.device)[None] >= counts[:, None]
        labels = tokens.masked_fill(pad, IGNORE_INDEX)
        start = torch.full_like(tokens[:, :1], self.start_id)
        inputs = torch.cat([start, tokens[:, :-1].masked_fill(pad[:, 1:], self.pad_id)], dim=1)
        return inputs, labels

    # -- forward and decoding ----------------------------------------------------------

    @staticmethod
    def memory_mask(memory: torch.Tensor, memory_lens: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` 1 on real frames, 0 on padding."""
        counts = abs_lengths(memory_lens, memory.shape[1])
        return (torch.arange(memory.shape[1], device=memory.device)[None] < counts[:, None]).long()

    def forward(
        self, memory: torch.Tensor, memory_lens: torch.Tensor, decoder_input_ids: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[B, L, V]`` of the next token at each position (teacher forcing).

        Parameters
        ----------
        memory : torch.Tensor
            ``[B, T, d_model]`` projected speech frames.
        memory_lens : torch.Tensor
            ``[B]`` relative lengths of the frames.
        decoder_input_ids : torch.Tensor
            ``[B, L]`` from :meth:`teacher_forcing`.
        """
        from transformers.modeling_outputs import BaseModelOutput

        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=memory),
            attention_mask=self.memory_mask(memory, memory_lens),
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        return out.logits

    def max_new_tokens(self, num_frames: int, ratio: float, minimum: int) -> int:
        """Longest output allowed for ``num_frames`` frames (within the position table)."""
        wanted = max(minimum, math.ceil(ratio * num_frames))
        return min(wanted, self.max_positions - 2)

    @torch.no_grad()
    def generate(
        self,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        beam_size: int = 5,
        length_penalty: float = 1.0,
        max_decode_ratio: float = DEFAULT_MAX_DECODE_RATIO,
        min_decode_tokens: int = DEFAULT_MIN_DECODE_TOKENS,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Translate: transformers' ``generate`` on the frames, one string per utterance.

        Parameters
        ----------
        memory, memory_lens
            Projected frames ``[B, T, d_model]`` and their relative lengths.
        beam_size : int
            1: greedy search; more: beam search.
        length_penalty : float
            Exponent of the length normalisation of beam scores (1: divide
            the log-probability by the length).
        max_decode_ratio, min_decode_tokens : float, int
            Output tokens allowed per input frame, and at least this many.
        max_new_tokens : int, optional
            Fixed maximum instead of the ratio.
        """
        ids = self.generate_ids(
            memory,
            memory_lens,
            beam_size,
            length_penalty,
            max_new_tokens
            or self.max_new_tokens(memory.shape[1], max_decode_ratio, min_decode_tokens),
        )
        return self.decode(ids)

    @torch.no_grad()
    def generate_ids(
        self,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        beam_size: int,
        length_penalty: float,
        max_new_tokens: int,
        min_new_tokens: int = 0,
    ) -> torch.Tensor:
        """Token ids ``[B, L]`` of :meth:`generate` (start and language tokens included).

        ``min_new_tokens``: the end token is allowed only after this many
        (fixed-length decoding, for speed measurements).
        """
        from transformers.modeling_outputs import BaseModelOutput

        return self.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=memory),
            attention_mask=self.memory_mask(memory, memory_lens),
            decoder_start_token_id=self.start_id,
            forced_bos_token_id=self.lang_id,
            num_beams=beam_size,
            do_sample=False,
            **({"length_penalty": length_penalty, "early_stopping": True} if beam_size > 1 else {}),
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_id,
        )

    def decode(self, ids: torch.Tensor | Sequence[Sequence[int]]) -> list[str]:
        """Detokenised text of each row of ids, special tokens removed."""
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]

    def extra_repr(self) -> str:
        return (
            f"source={self.source!r}, model_type={self.model_type!r}, "
            f"target_lang={self.target_lang!r}, freeze={self.freeze}"
        )


__all__ = ["FrameProjection", "Seq2SeqDecoder", "IGNORE_INDEX", "SUPPORTED_MODEL_TYPES"]
