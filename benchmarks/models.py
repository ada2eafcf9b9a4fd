"""Randomly initialised students and teachers of a given size, and synthetic batches.

No checkpoint can be downloaded here, and throughput does not depend on the
weights' values, so the benchmarks build the real classes
(``Wav2Vec2BertModel``, ``XLMRobertaModel``) from their configurations,
randomly initialised, and save them in the hub layout: both training steps
then load the *same folder* through their own ``from_pretrained`` path.

Sizes
-----
``tiny``   student and teacher of hidden size 32, 2 layers (the smoke test).
``small``  hidden 256, 4 layers, 4 heads, FFN 1024, for both (runs on a CPU).
``real``   w2v-BERT 2.0 = ``Wav2Vec2BertConfig()`` defaults (hidden 1024,
           24 Conformer layers, 16 heads, FFN 4096, depthwise kernel 31,
           relative-key positions 64/8, ~580M parameters) and BGE-M3 =
           XLM-RoBERTa-large (hidden 1024, 24 layers, 16 heads, FFN 4096,
           vocabulary 250,002, 8,194 positions, ~567M parameters). Built only
           when a GPU is present.

Every size keeps the real w2v-BERT 2.0 architecture details (kernel 31,
relative-key attention, 160-dim stacked fbank input); only widths and depths
shrink. LayerDrop and SpecAugment are off in the saved configurations so that
both steps do the same, deterministic amount of work.

The teacher's tokenizer is an ``XLMRobertaTokenizer`` over a sentencepiece
model trained on the fly on a small multilingual sample. For the real size,
the model keeps BGE-M3's 250,002-row embedding table regardless: the
vocabulary size changes only the embedding lookup and the memory the table
takes, not the compute per token. Sentences tokenise into somewhat more
pieces with a small vocabulary than with BGE-M3's, which makes the teacher a
little more expensive here than in reality (stated in the report).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from sense.testing.tiny import DEFAULT_TEXTS, train_sentencepiece

SAMPLE_RATE = 16000
TOKENIZER_VOCAB = 400
#: Transcript tokens per second of speech: about 2.7 words/s (read and TED
#: speech) at about 1.3 XLM-R pieces per word in European languages.
TOKENS_PER_SECOND = 3.5


@dataclass(frozen=True)
class Size:
    """Student and teacher dimensions of one benchmark configuration.

    ``None`` for a student field keeps the ``Wav2Vec2BertConfig()`` default.
    """

    name: str
    student: dict = field(default_factory=dict)
    teacher: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


SIZES = {
    "tiny": Size(
        "tiny",
        student=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
        ),
        teacher=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=514,
        ),
    ),
    "small": Size(
        "small",
        student=dict(
            hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024
        ),
        teacher=dict(
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=1024,
            max_position_embeddings=514,
        ),
    ),
    "real": Size(
        "real",
        student={},  # Wav2Vec2BertConfig() defaults: w2v-BERT 2.0
        teacher=dict(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=8194,
            vocab_size=250002,
        ),  # XLM-RoBERTa-large: BGE-M3
    ),
}


def student_config(size: Size):
    """The ``Wav2Vec2BertConfig`` of a size (real defaults, overridden widths).

    Example
    -------
    >>> c = student_config(SIZES["real"])
    >>> c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size
    (1024, 24, 16, 4096)
    """
    from transformers import Wav2Vec2BertConfig

    overrides = dict(size.student)
    if "hidden_size" in overrides:
        overrides.setdefault("output_hidden_size", overrides["hidden_size"])
    config = Wav2Vec2BertConfig(
        **overrides,
        layerdrop=0.0,
        mask_time_prob=0.0,
        apply_spec_augment=False,
        add_adapter=False,
        vocab_size=None,
    )
    config.architectures = ["Wav2Vec2BertModel"]
    return config


def build_student(path: str, size: Size, seed: int = 0) -> str:
    """Save a randomly initialised ``Wav2Vec2BertModel`` of ``size`` with its feature extractor."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertModel

    os.makedirs(path, exist_ok=True)
    torch.manual_seed(seed)
    Wav2Vec2BertModel(student_config(size)).save_pretrained(path)
    SeamlessM4TFeatureExtractor().save_pretrained(path)
    return path


def build_teacher(path: str, size: Size, seed: int = 0) -> str:
    """Save a randomly initialised BGE-M3-like ``XLMRobertaModel`` of ``size`` and its tokenizer."""
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "sentencepiece.bpe.model"), "wb") as f:
        f.write(train_sentencepiece(DEFAULT_TEXTS, vocab_size=TOKENIZER_VOCAB))
    dims = dict(size.teacher)
    max_positions = dims.pop("max_position_embeddings", 514)
    tokenizer = XLMRobertaTokenizer.from_pretrained(path, model_max_length=max_positions - 2)
    tokenizer.save_pretrained(path)
    vocab_size = dims.pop("vocab_size", None) or len(tokenizer)
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_positions,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **dims,
    )
    config.architectures = ["XLMRobertaModel"]
    torch.manual_seed(seed)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(path)
    return path


@dataclass
class SyntheticBatch:
    """Utterances of synthetic audio with transcripts of matching length.

    The audio is a sum of a few harmonics with random pitch under noise, so
    the front-end does real work on non-trivial spectra; the transcripts are
    words of the multilingual sample, about 2.5 words per second of audio.
    """

    ids: list[str]
    wavs: list[torch.Tensor]
    transcripts: list[str]

    @property
    def durations(self) -> list[float]:
        return [len(w) / SAMPLE_RATE for w in self.wavs]

    @property
    def audio_seconds(self) -> float:
        return float(sum(self.durations))

    def describe(self) -> dict:
        return {
            "utterances": len(self.wavs),
            "audio_seconds": round(self.audio_seconds, 3),
            "durations_s": [round(d, 3) for d in self.durations],
            "words": [len(t.split()) for t in self.transcripts],
        }

    def fit_transcripts(
        self, count_tokens, tokens_per_second: float = TOKENS_PER_SECOND, seed: int = 0
    ) -> None:
        """Redraw the transcripts so each has about ``tokens_per_second`` teacher tokens per second.

        The tokenizer trained on a small sample cuts words into more pieces
        than BGE-M3's does; matching the *token* count, not the word count,
        keeps the teacher's work per second of speech realistic.
        ``count_tokens(text) -> int`` counts the pieces (without special tokens).
        """
        rng = np.random.default_rng(seed)
        words = _vocabulary()
        texts = []
        for seconds in self.durations:
            target = max(1, int(round(tokens_per_second * seconds)))
            chosen = [str(rng.choice(words))]
            while count_tokens(" ".join(chosen)) < target:
                chosen.append(str(rng.choice(words)))
            texts.append(" ".join(chosen))
        self.transcripts = texts


def _vocabulary() -> list[str]:
    return sorted({w for t in DEFAULT_TEXTS for w in t.split() if w.isalpha()})


def synthetic_batch(
    num: int = 8, min_s: float = 2.0, max_s: float = 6.0, seed: int = 0
) -> SyntheticBatch:
    """``num`` utterances evenly spread over ``[min_s, max_s]`` seconds.

    Example
    -------
    >>> b = synthetic_batch(3, 1.0, 2.0)
    >>> [round(d, 2) for d in b.durations], len(b.transcripts)
    ([1.0, 1.5, 2.0], 3)
    """
    rng = np.random.default_rng(seed)
    words = _vocabulary()
    lengths = np.linspace(min_s, max_s, num) if num > 1 else np.array([max_s])
    ids, wavs, texts = [], [], []
    for i, seconds in enumerate(lengths):
        n = int(round(seconds * SAMPLE_RATE))
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.uniform(90, 250)
        wav = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 6))
        wav = 0.1 * wav * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)
        wavs.append(torch.from_numpy(wav.astype(np.float32)))
        n_words = max(1, int(round(2.5 * seconds)))
        texts.append(" ".join(rng.choice(words, size=n_words)))
        ids.append(f"utt{i:03d}")
    return SyntheticBatch(ids, wavs, texts)


def pad(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad to ``[B, T]`` with SpeechBrain relative lengths."""
    longest = max(len(w) for w in wavs)
    out = torch.zeros(len(wavs), longest)
    for i, w in enumerate(wavs):
        out[i, : len(w)] = w
    return out, torch.tensor([len(w) / longest for w in wavs])
