"""Relative-key self-attention of w2v-BERT 2.0 without the ``[T, T, d]`` tensor.

w2v-BERT 2.0 biases its attention logits with Shaw et al.'s relative keys:
the logit of query ``i`` and key ``j`` gains ``q_i · E[clamp(j - i, -L, R) + L]``
(``L = 64`` positions to the left, ``R = 8`` to the right). transformers builds
that bias as ``einsum(q, E[distance])`` with ``E[distance]`` of shape
``[T, T, d]``, in every layer: ``T² d`` memory and a second ``QKᵀ``-sized
product. Only ``L + R + 1`` distinct distances exist, so this module computes
the ``[B, H, T, L + R + 1]`` table ``q · Eᵀ`` once and reads the bias of
``(i, j)`` from it:

- ``"sdpa"``: the bias is gathered from the table into ``[B, H, T, T]``, the
  padding mask is added in place, and
  :func:`torch.nn.functional.scaled_dot_product_attention` does the rest
  (``T²`` memory, no ``T² d`` tensor, one ``QKᵀ`` product);
- ``"flex"``: :func:`torch.nn.attention.flex_attention.flex_attention`
  (compiled) adds the table entry in a ``score_mod`` and skips padding with
  transformers' ``BlockMask``; no ``T²`` tensor at all. In torch 2.11 its
  backward runs on GPUs only: on a CPU it is for inference;
- ``"eager"``: transformers' own eager attention, the reference.

:func:`use_attention` switches a loaded ``Wav2Vec2BertModel`` by changing the
class of its relative-key attention modules: parameters and state dict are
unchanged, so checkpoints and exported models load as before.

Example
-------
>>> import tempfile
>>> from transformers import Wav2Vec2BertModel
>>> from sense.demo.tiny import build_tiny_w2v_bert
>>> path = build_tiny_w2v_bert(tempfile.mkdtemp())
>>> model = Wav2Vec2BertModel.from_pretrained(path, attn_implementation=HF_IMPLEMENTATION["sdpa"])
>>> use_attention(model, "sdpa")
2
>>> type(model.encoder.layers[0].self_attn).__name__
'SdpaRelativeKeyAttention'
"""

from __future__ import annotations

import functools

import torch
from transformers.models.wav2vec2_bert.modeling_wav2vec2_bert import Wav2Vec2BertSelfAttention

EAGER, SDPA, FLEX = "eager", "sdpa", "flex"
ATTENTION_PATHS = (EAGER, SDPA, FLEX)
# transformers' attn_implementation of each path: it decides the mask format
# the layers receive (additive float, boolean, BlockMask) and runs the
# attention of modules this file does not replace (wav2vec2, adapters).
HF_IMPLEMENTATION = {EAGER: "eager", SDPA: "sdpa", FLEX: "flex_attention"}
RELATIVE_KEY = "relative_key"


def check_attention(path: str) -> str:
    """``path`` if it names an attention path, else a ``ValueError`` listing them.

    Example
    -------
    >>> check_attention("sdpa")
    'sdpa'
    """
    if path not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_PATHS)}, got {path!r}")
    return path


def distance_index(length: int, left: int, right: int, device=None) -> torch.Tensor:
    """``[T, T]`` row of the distance table for each (query ``i``, key ``j``).

    ``clamp(j - i, -left, right) + left``, as transformers indexes
    ``distance_embedding``.

    Example
    -------
    >>> distance_index(4, left=2, right=1)
    tensor([[2, 3, 3, 3],
            [1, 2, 3, 3],
            [0, 1, 2, 3],
            [0, 0, 1, 2]])
    """
    positions = torch.arange(length, device=device)
    distance = positions[None, :] - positions[:, None]
    return distance.clamp(-left, right) + left


def distance_table(module: Wav2Vec2BertSelfAttention, query: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, L + R + 1]``: scaled ``q · E[k]`` for each of the distances ``k``."""
    embeddings = module.distance_embedding.weight.to(query.dtype)
    return torch.matmul(query, embeddings.transpose(0, 1)) * module.scaling


def relative_key_bias(module: Wav2Vec2BertSelfAttention, query: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, T]`` relative-key bias gathered from :func:`distance_table`.

    Equals transformers' ``_apply_relative_key_position_encoding`` bias.
    """
    table = distance_table(module, query)
    batch, heads, length, _ = table.shape
    index = distance_index(
        length,
        module.left_max_position_embeddings,
        module.right_max_position_embeddings,
        query.device,
    )
    return table.gather(-1, index.expand(batch, heads, length, length))


def _add_mask(bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Add the padding ``mask`` (boolean: True attends; or additive float) to ``bias`` in place."""
    if mask is None:
        return bias
    if mask.dtype == torch.bool:
        return bias.masked_fill_(~mask, torch.finfo(bias.dtype).min)
    return bias.add_(mask.to(bias.dtype))


@functools.cache
def _compiled_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


class _RelativeKeyAttention(Wav2Vec2BertSelfAttention):
    """transformers' relative-key self-attention with another attention kernel.

    Subclasses replace :meth:`attend`; projections and parameters are the
    parent's, so the state dict is unchanged.
    """

    def forward(self, hidden_states, attention_mask=None, relative_position_embeddings=None, **_):
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_size)
        query = self.linear_q(hidden_states).view(shape).transpose(1, 2)
        key = self.linear_k(hidden_states).view(shape).transpose(1, 2)
        value = self.linear_v(hidden_states).view(shape).transpose(1, 2)
        out = self.attend(query, key, value, attention_mask)
        return self.linear_out(out.transpose(1, 2).reshape(batch, length, -1)), None


class SdpaRelativeKeyAttention(_RelativeKeyAttention):
    """Relative keys gathered into a ``[B, H, T, T]`` bias, then SDPA."""

    def attend(self, query, key, value, attention_mask):
        bias = _add_mask(relative_key_bias(self, query), attention_mask)
        dropout = self.dropout.p if self.training else 0.0
        return torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=bias, dropout_p=dropout, scale=self.scaling
        )


class FlexRelativeKeyAttention(_RelativeKeyAttention):
    """Relative keys read from the distance table inside flex attention's ``score_mod``.

    On a CPU, torch 2.11's inductor compiles it for the tests' lengths (up to
    99 frames) but not for the real model at 250 frames and more (C++
    ``CppCompileError``: undeclared ``cur_qSplitSize``), also with a flat
    table index or a BlockMask of its own: use ``"sdpa"`` on a CPU.
    """

    def attend(self, query, key, value, attention_mask):
        if self.training and self.dropout.p > 0:
            raise ValueError("attention='flex' has no attention dropout; use 'sdpa' or set it to 0")
        if attention_mask is not None and not hasattr(attention_mask, "mask_mod"):
            raise TypeError(
                "attention='flex' needs transformers' BlockMask: load the model with "
                "attn_implementation='flex_attention'"
            )
        table = distance_table(self, query)
        left, right = self.left_max_position_embeddings, self.right_max_position_embeddings

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + table[b, h, q_idx, (kv_idx - q_idx).clamp(-left, right) + left]

        return _compiled_flex_attention()(
            query, key, value, score_mod=score_mod, block_mask=attention_mask, scale=self.scaling
        )


ATTENTION_CLASSES = {SDPA: SdpaRelativeKeyAttention, FLEX: FlexRelativeKeyAttention}


def use_attention(model: torch.nn.Module, path: str) -> int:
    """Run the relative-key attention of ``model`` through ``path``; return how many modules changed.

    ``model`` must have been loaded with ``attn_implementation=HF_IMPLEMENTATION[path]``
    (the layers' masks come in that format). ``"eager"`` restores transformers'
    class. Modules without relative keys (adapters, wav2vec2) are left to
    transformers.

    Example
    -------
    >>> import tempfile
    >>> from transformers import Wav2Vec2BertModel
    >>> from sense.demo.tiny import build_tiny_w2v_bert
    >>> model = Wav2Vec2BertModel.from_pretrained(build_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> use_attention(model, "eager"), type(model.encoder.layers[1].self_attn).__name__
    (2, 'Wav2Vec2BertSelfAttention')
    """
    new_class = ATTENTION_CLASSES.get(check_attention(path), Wav2Vec2BertSelfAttention)
    changed = 0
    for module in model.modules():
        if (
            isinstance(module, Wav2Vec2BertSelfAttention)
            and module.position_embeddings_type == RELATIVE_KEY
        ):
            module.__class__ = new_class
            changed += 1
    return changed
