"""How a speech encoder trains and runs: one object for the switches that travel together.

:class:`EncoderOptions` groups what :class:`sense.lobes.speech.HFSpeechEncoder`
is told beyond its weights and its output: what is frozen, how attention
runs, activation checkpointing, and the transformers config overrides of
regularisation (LayerDrop, SpecAugment, dropouts). A recipe's YAML builds it
with ``!new:`` under the encoder (``hparams/models/w2v_bert_2.yaml``); a
model folder writes ``options: !new:sense.lobes.options.EncoderOptions`` with
``freeze: true``.

Example
-------
>>> options = EncoderOptions(freeze=True, layerdrop=0.1)
>>> options.freeze, options.config_overrides()
(True, {'layerdrop': 0.1, 'apply_spec_augment': False})
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar

from sense.lobes.attention import SDPA, check_attention

__all__ = ["EncoderOptions", "LENGTH_BUCKET"]

#: Frames (0.64 s of w2v-BERT) to a multiple of which compiled layers' inputs
#: are padded: up to 30 s, at most 47 shapes; the padding averages 16 frames a
#: row (6% at Common Voice's mean of 5.2 s, 3% at 10 s).
LENGTH_BUCKET = 32


@dataclass(frozen=True)
class EncoderOptions:
    """Training-time switches of a speech encoder (none changes what it computes in eval mode).

    Parameters
    ----------
    freeze : bool
        Keep the whole encoder fixed: no gradients, always in eval mode (also
        after the parent module's ``.train()``), forward under ``no_grad``.
    freeze_feature_projection : bool
        Fix the input stage only: the feature projection of w2v-BERT 2.0, the
        convolutional feature encoder of wav2vec2.
    gradient_checkpointing : bool
        Recompute each layer's activations in backward instead of storing them
        (transformers' activation checkpointing, non-reentrant; training only).
    compile_layers : bool
        Compile each encoder layer with ``torch.compile`` (inductor); the
        outputs and gradients stay those of the uncompiled layers. Not with
        ``gradient_checkpointing`` (torch 2.11's inductor fails on the two
        together under dropout).
    length_bucket : int
        With ``compile_layers``, w2v-BERT's frames are padded (and masked) up to
        a multiple of ``length_bucket``, so that duration-batched training
        compiles a layer once per bucket instead of once per batch length;
        the padding is cut from the output. ``0`` pads nothing.
    attention : {"sdpa", "flex", "eager"}
        How self-attention runs (see :mod:`sense.lobes.attention`). ``"sdpa"``:
        w2v-BERT's relative-key bias gathered from a ``[B, H, T, 73]`` table,
        then PyTorch's SDPA; wav2vec2 with transformers' SDPA. ``"flex"``:
        flex attention with the bias in a ``score_mod`` (training on GPU only).
        ``"eager"``: transformers' eager attention. All give the same
        outputs; the parameters do not change.
    layerdrop : float, optional
        Override the config's LayerDrop probability (active in training only;
        under DDP, skipped layers need ``find_unused_parameters``).
    apply_spec_augment : bool
        Mask spans of the projected features in training (SpecAugment as
        transformers implements it, driven by ``mask_*``).
    mask_time_prob, mask_time_length, mask_feature_prob, mask_feature_length : optional
        Override the config's SpecAugment settings; ``None`` keeps them.
    hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout : float, optional
        Override the config's dropout probabilities; ``None`` keeps them.

    Example
    -------
    >>> EncoderOptions(attention="eager").with_switches(freeze=True).freeze
    True
    >>> EncoderOptions(attention="flash")
    Traceback (most recent call last):
    ...
    ValueError: attention must be one of eager, sdpa, flex, got 'flash'
    """

    freeze: bool = False
    freeze_feature_projection: bool = False
    gradient_checkpointing: bool = False
    compile_layers: bool = False
    length_bucket: int = LENGTH_BUCKET
    attention: str = SDPA
    layerdrop: float | None = None
    apply_spec_augment: bool = False
    mask_time_prob: float | None = None
    mask_time_length: int | None = None
    mask_feature_prob: float | None = None
    mask_feature_length: int | None = None
    hidden_dropout: float | None = None
    attention_dropout: float | None = None
    activation_dropout: float | None = None
    feat_proj_dropout: float | None = None

    #: Fields that override the transformers config of the same name.
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = (
        "layerdrop",
        "apply_spec_augment",
        "mask_time_prob",
        "mask_time_length",
        "mask_feature_prob",
        "mask_feature_length",
        "hidden_dropout",
        "attention_dropout",
        "activation_dropout",
        "feat_proj_dropout",
    )

    def __post_init__(self):
        check_attention(self.attention)
        if self.compile_layers and self.gradient_checkpointing:
            raise ValueError(
                "compile_layers and gradient_checkpointing cannot be combined: with dropout, "
                "torch 2.11's inductor fails on checkpointed compiled layers (BackendCompilerFailed)"
                "; turn one of them off (docs/benchmarks.md, 'Compiled encoder layers')"
            )
        if isinstance(self.length_bucket, bool) or not (
            isinstance(self.length_bucket, int) and self.length_bucket >= 0
        ):
            raise ValueError(
                f"length_bucket must be a whole number of frames >= 0, got {self.length_bucket!r}"
            )

    def config_overrides(self) -> dict:
        """``{config attribute: value}`` to set on the model's config (``None`` keeps it).

        Example
        -------
        >>> EncoderOptions(apply_spec_augment=True, mask_time_prob=0.05).config_overrides()
        {'apply_spec_augment': True, 'mask_time_prob': 0.05}
        """
        values = {name: getattr(self, name) for name in self.CONFIG_FIELDS}
        return {name: value for name, value in values.items() if value is not None}

    def with_switches(self, **switches) -> EncoderOptions:
        """A copy with some fields changed; an unknown name is a ``TypeError`` naming the fields.

        Example
        -------
        >>> EncoderOptions().with_switches(gradient_checkpointing=True).gradient_checkpointing
        True
        """
        names = [f.name for f in fields(self)]
        unknown = sorted(set(switches) - set(names))
        if unknown:
            raise TypeError(
                f"unknown encoder option(s) {', '.join(unknown)}; the options are {', '.join(names)}"
            )
        return replace(self, **switches)
