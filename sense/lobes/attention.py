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
  (``T²`` memory, no ``T² d`` tensor, one ``QKᵀ`` product). CPU inference on
  :data:`REGIONAL_MIN_FRAMES` frames or more runs :func:`regional_attention`
  instead: beyond the clamp the bias is one value per row on each side, so
  the two far regions are plain causal flash attention over shifted keys and
  only a band of ``L + R + 1`` keys reads the table (``T`` memory);
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

import contextlib
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
#: Queries per block of the band of :func:`regional_attention`.
BAND_BLOCK = 32
#: Frames from which CPU inference splits the attention into regions: below,
#: the gathered bias is faster (docs/benchmarks/cpu-attention.md).
REGIONAL_MIN_FRAMES = 1000


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


def key_padding(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``[B, 1, 1, S]`` additive key mask (0 or ``-inf``) of a layer's padding mask.

    ``mask`` is transformers' ``[B, 1, T, S]`` (or ``[B, 1, 1, S]``) mask, boolean
    (True attends) or additive; padding hides keys only, so the first query row
    holds it for every row.

    Example
    -------
    >>> key_padding(torch.tensor([[[[True, True, False]]]]), torch.float32)
    tensor([[[[0., 0., -inf]]]])
    """
    if mask is None:
        return None
    row = mask[:, :, :1, :]
    hidden = ~row if row.dtype == torch.bool else row < 0
    return torch.zeros(row.shape, dtype=dtype, device=row.device).masked_fill_(
        hidden, float("-inf")
    )


def _far(query, key, value, mask, keys: slice, counts, backwards: bool = False):
    """Causal attention of row ``r`` over keys ``0..r`` (``r..`` ``backwards``), by torch's CPU flash kernel.

    ``query`` is scaled, ``mask`` the whole ``[B, 1, 1, T]`` key mask (``keys``
    its part here) and ``counts`` ``[B, rows]`` how many keys each row may see:
    a row with none gets a ``-inf`` log-sum-exp (the kernel's is 0). Returns the
    float32 ``[B, H, rows, d]`` output and ``[B, H, rows]`` log-sum-exp.
    """
    mask = None if mask is None else mask[..., keys]
    if backwards:
        query, key, value = (t.flip(2) for t in (query, key, value))
        mask = None if mask is None else mask.flip(-1)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, True, attn_mask=mask, scale=1.0
    )
    if backwards:
        out, lse = out.flip(2), lse.flip(2)
    return out.float(), lse.masked_fill(counts[:, None, :] == 0, float("-inf"))


def _skew(table: torch.Tensor, window: int) -> torch.Tensor:
    """``[..., BAND_BLOCK, window]`` view placing row ``r``'s ``width`` entries at columns ``r..r + width - 1``.

    ``table`` is ``[..., BAND_BLOCK, width]``; every other column reads ``-inf``.
    Rows padded to ``window + 1`` and read back, flattened, in rows of
    ``window`` shift each row one column further than the one above
    (Transformer-XL's relative shift), without an index tensor (and with
    views ``torch.compile`` traces).

    Example
    -------
    >>> _skew(torch.tensor([[1.0, 2.0]]).expand(BAND_BLOCK, 2), BAND_BLOCK + 1)[:2, :4]
    tensor([[1., 2., -inf, -inf],
            [-inf, 1., 2., -inf]])
    """
    rows, width = table.shape[-2:]
    padded = torch.nn.functional.pad(table, (0, window + 1 - width), value=float("-inf"))
    return padded.flatten(-2)[..., : rows * window].view(*padded.shape[:-2], rows, window)


def _band(query, key, value, table, mask, left: int, right: int):
    """Attention of each query ``i`` over keys ``i - left .. i + right`` with the relative bias.

    ``query`` is scaled, ``table`` is :func:`distance_table`'s (float32). Queries go in
    blocks of :data:`BAND_BLOCK`; each block reads one window of
    ``BAND_BLOCK + left + right`` keys (a strided view): two batched products
    of ``T x (BAND_BLOCK + left + right)``. Returns the ``[B, H, T, d]`` output
    and the float32 ``[B, H, T]`` log-sum-exp of the band's logits (``-inf``
    where no key is left).
    """
    batch, heads, length, dim = query.shape
    blocks = -(-length // BAND_BLOCK)
    padded = blocks * BAND_BLOCK
    window = BAND_BLOCK + left + right
    pad = (0, 0, left, padded - length + right)
    keys = torch.nn.functional.pad(key, pad).unfold(2, window, BAND_BLOCK)  # [B, H, n, d, W]
    values = torch.nn.functional.pad(value, pad).unfold(2, window, BAND_BLOCK)
    blocked = torch.nn.functional.pad(query, (0, 0, 0, padded - length))
    scores = torch.matmul(blocked.view(batch, heads, blocks, BAND_BLOCK, dim), keys).float()
    table = torch.nn.functional.pad(table, (0, 0, 0, padded - length))
    scores.add_(_skew(table.view(batch, heads, blocks, BAND_BLOCK, -1), window))
    # keys before the start, after the end or in the padding
    keyed = (
        torch.zeros(1, 1, length, device=query.device) if mask is None else mask[:, :, 0, :].float()
    )
    keyed = torch.nn.functional.pad(keyed, (left, padded - length + right), value=float("-inf"))
    scores.add_(keyed.unfold(-1, window, BAND_BLOCK)[:, :, :, None, :])
    top = scores.amax(dim=-1, keepdim=True).clamp_(min=torch.finfo(torch.float32).min)
    weights = scores.sub_(top).exp_()
    total = weights.sum(dim=-1, keepdim=True)
    out = torch.matmul(
        weights.to(value.dtype), values.transpose(-1, -2)
    )  # [B, H, n, BAND_BLOCK, d]
    out = out.float().div_(total.clamp_(min=torch.finfo(torch.float32).tiny))
    lse = (top + total.log()).view(batch, heads, padded)[:, :, :length]
    return out.view(batch, heads, padded, dim)[:, :, :length], lse


def regional_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    embeddings: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    left: int,
    right: int,
) -> torch.Tensor:
    """Relative-key attention as three softmaxes merged by their log-sum-exps (CPU inference).

    The bias of key ``j`` for query ``i`` is ``q_i · E[0]`` for every ``j < i - left``
    and ``q_i · E[-1]`` for every ``j > i + right``: both far regions are plain
    causal attention over keys shifted by one embedding (torch's CPU flash kernel,
    ``T`` memory); only the band of ``left + right + 1`` keys reads the table.
    No ``[T, T]`` tensor exists. Forward only (the kernel's log-sum-exp has no
    gradient).

    Parameters
    ----------
    query, key, value : torch.Tensor
        ``[B, H, T, d]``.
    embeddings : torch.Tensor
        ``[left + right + 1, d]`` distance embeddings, nearest-left first.
    mask : torch.Tensor, optional
        ``[B, 1, 1, T]`` additive key mask (:func:`key_padding`).

    Returns
    -------
    torch.Tensor
        ``[B, H, T, d]``.

    Example
    -------
    >>> q, k, v = torch.randn(3, 1, 2, 9, 4).unbind(0)
    >>> e = torch.randn(4, 4)
    >>> bias = (q @ e.T).gather(-1, distance_index(9, 2, 1).expand(1, 2, 9, 9)) * 0.5
    >>> reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.5)
    >>> torch.allclose(regional_attention(q, k, v, e, None, 0.5, left=2, right=1), reference, atol=1e-6)
    True
    """
    length = query.shape[-2]
    query = query * scale
    embeddings = embeddings.to(query.dtype)
    table = torch.matmul(query, embeddings.transpose(0, 1)).float()
    out, lse = _band(query, key, value, table, mask, left, right)
    valid = torch.ones(1, length, device=query.device)
    if mask is not None:
        valid = (mask[:, 0, 0, :] == 0).float()
    seen = valid.cumsum(-1)  # [B, T]: keys to attend up to j
    parts = [(slice(None), out.float(), lse)]
    near = max(length - left - 1, 0)  # query i > left has far-left keys j <= i - left - 1
    if near:
        rows, keys = slice(length - near, None), slice(0, near)
        shifted = key[:, :, keys] + embeddings[0]
        counts = seen[:, :near]
        parts.append(
            (rows, *_far(query[:, :, rows], shifted, value[:, :, keys], mask, keys, counts))
        )
    far = max(length - right - 1, 0)  # query i < far has far-right keys j >= i + right + 1
    if far:
        rows, keys = slice(0, far), slice(right + 1, None)
        shifted = key[:, :, keys] + embeddings[-1]
        counts = seen[:, -1:] - seen[:, right:-1]
        parts.append(
            (rows, *_far(query[:, :, rows], shifted, value[:, :, keys], mask, keys, counts, True))
        )
    total = lse.clone()
    for rows, _, part_lse in parts[1:]:
        total[:, :, rows] = torch.logaddexp(total[:, :, rows], part_lse)
    total.clamp_(min=torch.finfo(torch.float32).min)
    merged = torch.zeros_like(parts[0][1])
    for rows, part_out, part_lse in parts:
        merged[:, :, rows] += part_out * torch.exp(part_lse - total[:, :, rows])[..., None]
    return merged.to(value.dtype)


def _add_mask(bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Add the padding ``mask`` (boolean: True attends; or additive float) to ``bias`` in place."""
    if mask is None:
        return bias
    if mask.dtype == torch.bool:
        return bias.masked_fill_(~mask, torch.finfo(bias.dtype).min)
    return bias.add_(mask.to(bias.dtype))


@functools.cache
def _compiled_flex_attention(device_type: str):
    """flex attention compiled for ``device_type``; static shapes on a CPU.

    torch 2.11's C++ code for flex with a dynamic length does not compile
    (``CppCompileError``, after a second length); with static shapes each
    length compiles on its own (at most ``recompile_limit`` of them).
    """
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False if device_type == "cpu" else None)


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


def _regional(query: torch.Tensor, training: bool) -> bool:
    """Whether :func:`regional_attention` runs: CPU, no gradient, at least :data:`REGIONAL_MIN_FRAMES`."""
    return (
        query.device.type == "cpu"
        and not training
        and not (torch.is_grad_enabled() and query.requires_grad)
        and query.shape[-2] >= REGIONAL_MIN_FRAMES
    )


@contextlib.contextmanager
def regional_from(frames: float):
    """Inside the block, CPU inference splits the attention from ``frames`` frames on.

    ``regional_from(0)`` always splits, ``regional_from(math.inf)`` never
    (tests and the benchmark compare both).

    Example
    -------
    >>> with regional_from(0):
    ...     _regional(torch.zeros(1, 1, 5, 4), training=False)
    True
    >>> REGIONAL_MIN_FRAMES
    1000
    """
    global REGIONAL_MIN_FRAMES
    saved, REGIONAL_MIN_FRAMES = REGIONAL_MIN_FRAMES, frames
    try:
        yield
    finally:
        REGIONAL_MIN_FRAMES = saved


class SdpaRelativeKeyAttention(_RelativeKeyAttention):
    """Relative keys gathered into a ``[B, H, T, T]`` bias, then SDPA.

    CPU inference from :data:`REGIONAL_MIN_FRAMES` frames on runs
    :func:`regional_attention` instead: the same output, no ``T²`` tensor.
    """

    def attend(self, query, key, value, attention_mask):
        if _regional(query, self.training):
            return regional_attention(
                query,
                key,
                value,
                self.distance_embedding.weight,
                key_padding(attention_mask, query.dtype),
                self.scaling,
                self.left_max_position_embeddings,
                self.right_max_position_embeddings,
            )
        bias = _add_mask(relative_key_bias(self, query), attention_mask)
        dropout = self.dropout.p if self.training else 0.0
        return torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=bias, dropout_p=dropout, scale=self.scaling
        )


class FlexRelativeKeyAttention(_RelativeKeyAttention):
    """Relative keys read from the distance table inside flex attention's ``score_mod``.

    On a CPU it is compiled with static shapes, once per length (torch
    2.11's C++ code for a dynamic length does not compile): fine for a few
    lengths, but ``"sdpa"`` is the CPU path (faster in bf16, no compilation).
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

        return _compiled_flex_attention(query.device.type)(
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
