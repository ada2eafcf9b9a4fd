"""A decoder-only LLM that reads text tokens and audio tokens: the dual encoder's tower.

Seed 003, section 2.2: the LLM's embedding table is extended by the ``K``
audio tokens; the first ``t`` ids stay text, ids ``t .. t + K - 1`` are audio
token ``0 .. K - 1``. The same transformer then encodes a speech utterance
(its audio tokens) and a sentence (its text tokens); each is mean-pooled over
its real positions. A prefix names the modality (and, optionally, the
language) of each input, as in the paper's appendix A.2.

The paper initialises the whole embedding table randomly (the default here);
``keep_text_embeddings=True`` keeps the LLM's text rows and draws only the new
audio rows. ``lora_rank > 0`` trains LoRA adapters (``peft``) instead of the
whole transformer, with the embedding table fully trainable.

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_llm
>>> llm = LLMEncoder(build_tiny_llm(tempfile.mkdtemp()), num_audio_tokens=8)
>>> seqs = llm.audio_inputs([torch.tensor([0, 7, 3])]) + llm.text_inputs(["le chat"])
>>> ids, mask = llm.collate(seqs)
>>> llm(ids, mask).shape
torch.Size([2, 32])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: What the prefix of each input names: nothing, its modality, or modality and language.
PREFIXES = ("none", "modality", "language")
#: Longest input in tokens (prefix included) unless set.
DEFAULT_MAX_TOKENS = 512
#: Standard deviation of a fresh embedding row when the config has no ``initializer_range``.
DEFAULT_INIT_STD = 0.02


def extend_vocabulary(backbone, num_audio_tokens: int, keep_text_embeddings: bool = False) -> int:
    """Add ``num_audio_tokens`` rows to a transformers model's input embeddings.

    Parameters
    ----------
    backbone : transformers.PreTrainedModel
        The LLM (its ``config.vocab_size`` follows the new size).
    num_audio_tokens : int
        ``K``, the rows added after the ``t`` text rows.
    keep_text_embeddings : bool
        Keep the pre-trained text rows; by default the whole table is drawn
        anew (the paper), from ``N(0, initializer_range)``.

    Returns
    -------
    int
        ``t``, the number of text ids (the first audio id).

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoModel
    >>> from sense.demo.tiny import build_tiny_llm
    >>> m = AutoModel.from_pretrained(build_tiny_llm(tempfile.mkdtemp()))
    >>> t = extend_vocabulary(m, 10)
    >>> m.get_input_embeddings().num_embeddings - t
    10
    """
    if num_audio_tokens < 1:
        raise ValueError(f"num_audio_tokens must be positive, got {num_audio_tokens}")
    num_text = backbone.get_input_embeddings().num_embeddings
    backbone.resize_token_embeddings(num_text + num_audio_tokens, mean_resizing=False)
    std = getattr(backbone.config, "initializer_range", DEFAULT_INIT_STD)
    weight = backbone.get_input_embeddings().weight
    with torch.no_grad():
        rows = weight[num_text:] if keep_text_embeddings else weight
        rows.normal_(0.0, std)
    return num_text


def _apply_lora(backbone, rank: int, alpha: float | None, dropout: float):
    """Wrap the backbone with LoRA adapters on every linear layer; embeddings stay trainable."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:  # pragma: no cover - peft is in the `dual` extra
        raise ImportError("lora_rank > 0 needs peft: pip install peft") from err
    embed_name = next(
        name
        for name, module in backbone.named_modules()
        if module is backbone.get_input_embeddings()
    )
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        lora_dropout=dropout,
        target_modules="all-linear",
        modules_to_save=[embed_name.split(".")[-1]],
    )
    return get_peft_model(backbone, config)


class LLMEncoder(nn.Module):
    """An LLM from transformers as a speech and text encoder: ids -> mean-pooled states.

    Parameters
    ----------
    source : str
        Hub id or folder of a decoder-only LLM and its tokenizer (``AutoModel``,
        ``AutoTokenizer``).
    num_audio_tokens : int
        ``K``, the audio vocabulary.
    num_text_tokens : int, optional
        ``t`` of an already extended model (a trained dual encoder): its table
        must hold ``t + K`` rows. ``None``: ``source`` is a text LLM, extended here.
    keep_text_embeddings : bool
        When extending: keep the text rows (default: all rows drawn anew).
    prefix : {"none", "modality", "language"}
        Text put before every input: nothing, ``"[speech]"`` / ``"[text]"``,
        or ``"[<lang> speech]"`` / ``"[<lang> text]"``.
    max_tokens : int
        Inputs are cut to this many tokens (prefix included).
    lora_rank, lora_alpha, lora_dropout
        LoRA adapters (``peft``) when ``lora_rank > 0``.

    Attributes
    ----------
    num_text_tokens : int
        ``t``: audio token ``a`` has id ``t + a``.
    output_dim : int
        Size of the pooled states (the LLM's hidden size).
    """

    def __init__(
        self,
        source: str,
        num_audio_tokens: int,
        num_text_tokens: int | None = None,
        keep_text_embeddings: bool = False,
        prefix: str = "modality",
        max_tokens: int = DEFAULT_MAX_TOKENS,
        lora_rank: int = 0,
        lora_alpha: float | None = None,
        lora_dropout: float = 0.0,
    ):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if prefix not in PREFIXES:
            raise ValueError(f"prefix must be one of {PREFIXES}, got {prefix!r}")
        self.source = str(source)
        self.prefix = prefix
        self.max_tokens = int(max_tokens)
        self.num_audio_tokens = int(num_audio_tokens)
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        backbone = AutoModel.from_pretrained(self.source)
        table = backbone.get_input_embeddings().num_embeddings
        if num_text_tokens is None:
            self.num_text_tokens = extend_vocabulary(
                backbone, self.num_audio_tokens, keep_text_embeddings
            )
        else:
            if table != num_text_tokens + num_audio_tokens:
                raise ValueError(
                    f"{self.source}: the embedding table has {table} rows, not "
                    f"{num_text_tokens} text + {num_audio_tokens} audio tokens"
                )
            self.num_text_tokens = int(num_text_tokens)
        self.output_dim = int(backbone.config.hidden_size)
        self.lora = lora_rank > 0
        self.backbone = (
            _apply_lora(backbone, lora_rank, lora_alpha, lora_dropout) if self.lora else backbone
        )
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)

    # -- inputs ------------------------------------------------------------------------

    def _prefix(self, modality: str, lang: str | None) -> list[int]:
        if self.prefix == "none":
            return []
        words = [lang, modality] if self.prefix == "language" and lang else [modality]
        return self.tokenizer(f"[{' '.join(words)}]", add_special_tokens=False)["input_ids"]

    def audio_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """Ids of audio tokens: ``t + token``.

        Raises
        ------
        ValueError
            A token outside ``[0, K)``.
        """
        tokens = torch.as_tensor(tokens).long().reshape(-1)
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.num_audio_tokens):
            raise ValueError(
                f"audio tokens must lie in [0, {self.num_audio_tokens}), got "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        return tokens + self.num_text_tokens

    def audio_inputs(
        self, token_seqs: Sequence[torch.Tensor], langs: Sequence[str | None] | None = None
    ) -> list[list[int]]:
        """Input ids of utterances given as audio-token sequences (prefix, then audio ids)."""
        langs = langs or [None] * len(token_seqs)
        return [
            (self._prefix("speech", lang) + self.audio_ids(t).tolist())[: self.max_tokens]
            for t, lang in zip(token_seqs, langs)
        ]

    def text_inputs(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list[list[int]]:
        """Input ids of sentences (prefix, then the LLM tokenizer's ids)."""
        langs = langs or [None] * len(texts)
        return [
            (self._prefix("text", lang) + self.tokenizer(text)["input_ids"])[: self.max_tokens]
            for text, lang in zip(texts, langs)
        ]

    def collate(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids ``[B, L]`` and attention mask ``[B, L]`` (1 on real positions)."""
        if not sequences or any(len(s) == 0 for s in sequences):
            raise ValueError("cannot encode an empty input (no tokens and no prefix)")
        longest = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(sequences), longest, dtype=torch.long)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
            mask[i, : len(seq)] = 1
        return ids, mask

    # -- encoding ----------------------------------------------------------------------

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over real positions: ``[B, L] -> [B, H]``."""
        states = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.to(states.dtype)[..., None]
        return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def merged_backbone(self):
        """The transformers model to save: LoRA adapters merged into the weights."""
        if self.lora:
            import copy

            return copy.deepcopy(self.backbone).merge_and_unload()
        return self.backbone

    def save_pretrained(self, path: str) -> None:
        """Save the (merged) backbone and the tokenizer in the hub layout."""
        self.merged_backbone().save_pretrained(path)
        self.tokenizer.save_pretrained(path)
