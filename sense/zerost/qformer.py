"""Q-Formers: a fixed set of learned queries reading a variable-length speech sequence.

ZeroST (section 3, "Q-Formers") compares three bridges between the speech
encoder and NLLB, each mapping ``[B, T, D]`` frames with their relative
lengths to ``[B, q, D]`` query outputs, ``q`` the number of queries:

* :class:`QSimple`: no transformer layer, one attention ``softmax(W Kᵀ) K``
  of the learned queries ``W`` over the frames ``K``;
* :class:`QLite`: a small bidirectional transformer decoder (4 layers, 768-d,
  4 heads, FFN 3072 in the paper);
* :class:`QNLLB`: the NLLB decoder's architecture (``M2M100DecoderLayer``)
  with bidirectional self-attention, initialised from the NLLB encoder's
  self-attention.

:func:`build_qformer` picks one by name (``"simple"``, ``"lite"``, ``"nllb"``),
so a recipe switches with one YAML line. Every variant ignores padded frames.

Example
-------
>>> qformer = build_qformer("lite", dim=16, num_queries=4, num_layers=1, num_heads=2, ffn_dim=32)
>>> qformer(torch.randn(2, 9, 16), torch.tensor([1.0, 0.5])).shape
torch.Size([2, 4, 16])
"""

from __future__ import annotations

import os

import torch
from torch import nn

from sense.dataio import abs_lengths

#: Paper settings (section 3).
DEFAULT_NUM_QUERIES = 256
LITE_LAYERS = 4
LITE_DIM = 768
LITE_HEADS = 4
LITE_FFN = 3072
#: Standard deviation of the learned queries at initialisation.
QUERY_INIT_STD = 0.02


def frame_mask(frames: torch.Tensor, frame_lens: torch.Tensor | None) -> torch.Tensor:
    """``[B, T]`` True on real frames (all True when ``frame_lens`` is None).

    Example
    -------
    >>> frame_mask(torch.zeros(2, 4, 1), torch.tensor([1.0, 0.5])).int().tolist()
    [[1, 1, 1, 1], [1, 1, 0, 0]]
    """
    batch, time = frames.shape[:2]
    if frame_lens is None:
        return torch.ones(batch, time, dtype=torch.bool, device=frames.device)
    counts = abs_lengths(frame_lens, time).clamp(min=1)
    return torch.arange(time, device=frames.device)[None] < counts[:, None]


class _Queries(nn.Module):
    """``num_queries`` learned vectors of size ``dim``, expanded over the batch.

    Every variant keeps its constructor's arguments in ``settings`` (and its
    :data:`QFORMERS` name in ``name``), so that an export can rebuild it.
    """

    name: str
    settings: dict

    def __init__(self, num_queries: int, dim: int):
        super().__init__()
        if num_queries < 1:
            raise ValueError(f"num_queries must be positive, got {num_queries}")
        self.num_queries, self.dim = int(num_queries), int(dim)
        self.queries = nn.Parameter(torch.randn(self.num_queries, self.dim) * QUERY_INIT_STD)

    def expand(self, batch: int) -> torch.Tensor:
        return self.queries.unsqueeze(0).expand(batch, -1, -1)


class QSimple(_Queries):
    """``Q = softmax(W Kᵀ) K``: learned queries ``W`` attend once to the frames ``K``.

    As the paper writes it: no scaling, no projection, ``V = K``.

    Parameters
    ----------
    dim : int
        Width of the frames and of the output.
    num_queries : int
        Rows of ``W``.

    Example
    -------
    >>> QSimple(8, num_queries=3)(torch.randn(2, 5, 8), torch.tensor([1.0, 0.4])).shape
    torch.Size([2, 3, 8])
    """

    name = "simple"

    def __init__(self, dim: int, num_queries: int = DEFAULT_NUM_QUERIES):
        super().__init__(num_queries, dim)
        self.output_dim = self.dim
        self.settings = {"dim": self.dim, "num_queries": self.num_queries}

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor | None = None):
        """``[B, T, dim]`` frames -> ``[B, num_queries, dim]``."""
        scores = torch.einsum("qd,btd->bqt", self.queries, frames)
        scores = scores.masked_fill(~frame_mask(frames, frame_lens)[:, None], float("-inf"))
        return torch.softmax(scores.float(), dim=-1).to(frames.dtype) @ frames


class QLite(_Queries):
    """A bidirectional transformer decoder (pre-norm) over learned queries.

    Parameters
    ----------
    dim : int
        Width of the frames it reads (and of its layers).
    num_queries : int
    num_layers, num_heads, ffn_dim : int
        Paper: 4 layers, 4 heads, FFN 3072 at width 768.
    output_dim : int, optional
        Width of the output (a linear map when it differs from ``dim``, e.g.
        to NLLB's 1024); default ``dim``.
    dropout : float

    Example
    -------
    >>> q = QLite(16, num_queries=4, num_layers=1, num_heads=2, ffn_dim=32, output_dim=8)
    >>> q(torch.randn(2, 6, 16), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 4, 8])
    """

    name = "lite"

    def __init__(
        self,
        dim: int = LITE_DIM,
        num_queries: int = DEFAULT_NUM_QUERIES,
        num_layers: int = LITE_LAYERS,
        num_heads: int = LITE_HEADS,
        ffn_dim: int = LITE_FFN,
        output_dim: int | None = None,
        dropout: float = 0.1,
    ):
        super().__init__(num_queries, dim)
        layer = nn.TransformerDecoderLayer(
            dim, num_heads, ffn_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, num_layers, norm=nn.LayerNorm(dim))
        self.output_dim = int(output_dim or dim)
        self.out = nn.Identity() if self.output_dim == dim else nn.Linear(dim, self.output_dim)
        self.settings = {
            "dim": self.dim,
            "num_queries": self.num_queries,
            "num_layers": int(num_layers),
            "num_heads": int(num_heads),
            "ffn_dim": int(ffn_dim),
            "output_dim": self.output_dim,
            "dropout": float(dropout),
        }

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor | None = None):
        """``[B, T, dim]`` frames -> ``[B, num_queries, output_dim]``."""
        padding = ~frame_mask(frames, frame_lens)
        hidden = self.layers(
            self.expand(frames.shape[0]),
            frames,
            memory_key_padding_mask=padding,
            tgt_is_causal=False,
        )
        return self.out(hidden)


def _nllb_config(source: str, num_layers: int | None):
    """The NLLB checkpoint's config, with ``num_layers`` decoder layers if given."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(os.fspath(source))
    if config.model_type != "m2m_100":
        raise ValueError(f"QNLLB: {source!r} is a {config.model_type!r} model, not NLLB (m2m_100)")
    if num_layers is not None:
        config.decoder_layers = int(num_layers)
    return config


class QNLLB(_Queries):
    """The NLLB decoder's layers with bidirectional self-attention, over learned queries.

    ``M2M100DecoderLayer`` blocks (pre-norm self-attention, cross-attention
    to the frames, FFN) and the decoder's final layer norm. Self-attention is
    not causal, and layer ``i``'s self-attention (and its layer norm) starts
    from the NLLB encoder's layer ``i`` where that layer exists and the shapes
    agree; the rest starts from random values, as in the paper.

    Parameters
    ----------
    source : str
        Hub id or folder of the NLLB checkpoint (``M2M100ForConditionalGeneration``).
    num_queries : int
    num_layers : int, optional
        Layers (default: the checkpoint's decoder depth).
    init_from_encoder : bool
        Copy the encoder's self-attention weights (``False``: config only).

    Attributes
    ----------
    dim, output_dim : int
        NLLB's ``d_model``: the input frames must already have this width.
    initialised_layers : int
        How many layers took the encoder's self-attention.
    config : transformers.M2M100Config
        The checkpoint's config with ``num_layers`` decoder layers (what an
        export saves, so that the Q-Former is rebuilt without the checkpoint).

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_nllb
    >>> q = QNLLB(build_tiny_nllb(tempfile.mkdtemp()), num_queries=4)
    >>> q(torch.randn(2, 6, q.dim), torch.tensor([1.0, 0.5])).shape, q.initialised_layers
    (torch.Size([2, 4, 32]), 1)
    """

    name = "nllb"

    def __init__(
        self,
        source: str,
        num_queries: int = DEFAULT_NUM_QUERIES,
        num_layers: int | None = None,
        init_from_encoder: bool = True,
    ):
        from transformers.models.m2m_100.modeling_m2m_100 import M2M100DecoderLayer

        config = _nllb_config(source, num_layers)
        super().__init__(num_queries, config.d_model)
        self.source = os.fspath(source)
        self.output_dim = self.dim
        self.layers = nn.ModuleList(
            M2M100DecoderLayer(config, layer_idx=i) for i in range(config.decoder_layers)
        )
        for layer in self.layers:
            layer.self_attn.is_causal = False  # bidirectional over the queries
        self.layer_norm = nn.LayerNorm(self.dim)
        self.initialised_layers = self._init_from_encoder() if init_from_encoder else 0
        self.config = config
        self.settings = {
            "source": self.source,
            "num_queries": self.num_queries,
            "num_layers": int(config.decoder_layers),
            "init_from_encoder": bool(init_from_encoder),
        }

    def _init_from_encoder(self) -> int:
        from transformers import M2M100ForConditionalGeneration

        encoder = M2M100ForConditionalGeneration.from_pretrained(self.source).get_encoder()
        copied = 0
        for mine, theirs in zip(self.layers, encoder.layers):
            pairs = (
                (mine.self_attn, theirs.self_attn),
                (mine.self_attn_layer_norm, theirs.self_attn_layer_norm),
            )
            state = [(m, t.state_dict()) for m, t in pairs]
            if all(v.shape == m.state_dict()[k].shape for m, s in state for k, v in s.items()):
                for m, s in state:
                    m.load_state_dict(s)
                copied += 1
        return copied

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor | None = None):
        """``[B, T, d_model]`` frames -> ``[B, num_queries, d_model]``."""
        keep = frame_mask(frames, frame_lens)
        # additive cross-attention mask [B, 1, 1, T]: 0 on frames, -inf-like on padding
        cross = torch.zeros(keep.shape, dtype=frames.dtype, device=frames.device)
        cross = cross.masked_fill(~keep, torch.finfo(frames.dtype).min)[:, None, None]
        hidden = self.expand(frames.shape[0])
        for layer in self.layers:
            hidden = layer(
                hidden,
                attention_mask=None,
                encoder_hidden_states=frames,
                encoder_attention_mask=cross,
                use_cache=False,
            )
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return self.layer_norm(hidden)


QFORMERS = {"simple": QSimple, "lite": QLite, "nllb": QNLLB}


def build_qformer(
    name: str,
    dim: int | None = None,
    num_queries: int = DEFAULT_NUM_QUERIES,
    output_dim: int | None = None,
    source: str | None = None,
    num_layers: int | None = None,
    **settings,
) -> nn.Module:
    """A Q-Former by name: ``"simple"`` (Q-Simple), ``"lite"`` (Q-Lite), ``"nllb"`` (Q-NLLB).

    One signature for the three, so a recipe switches with one YAML line.

    Parameters
    ----------
    name : str
    dim : int, optional
        Width of the frames it reads (Q-Simple, Q-Lite); Q-NLLB reads NLLB's
        ``d_model`` (a different ``dim`` is an error).
    num_queries : int
    output_dim : int, optional
        Width the decoder reads: Q-Lite maps to it; Q-Simple and Q-NLLB
        must already have it.
    source : str, optional
        The NLLB checkpoint: Q-NLLB's architecture and initialisation (the
        others do not read it).
    num_layers : int, optional
        Depth of Q-Lite (default 4) or Q-NLLB (default: NLLB's decoder).
    **settings
        The variant's other arguments (``num_heads``, ``ffn_dim``, ``dropout``,
        ``init_from_encoder``).

    Example
    -------
    >>> build_qformer("simple", dim=8, num_queries=2)(torch.randn(1, 3, 8)).shape
    torch.Size([1, 2, 8])
    >>> build_qformer("lite", dim=8, num_queries=2, output_dim=4, num_layers=1,
    ...               num_heads=2, ffn_dim=16).output_dim
    4
    """
    if name not in QFORMERS:
        raise ValueError(f"unknown Q-Former {name!r}; choose one of {sorted(QFORMERS)}")
    if name == "nllb":
        if source is None:
            raise ValueError("Q-Former 'nllb' needs source (the NLLB checkpoint)")
        qformer = QNLLB(source, num_queries=num_queries, num_layers=num_layers, **settings)
        if dim is not None and int(dim) != qformer.dim:
            raise ValueError(f"Q-NLLB reads NLLB's width {qformer.dim}, not dim={dim}")
    else:
        if dim is None:
            raise ValueError(f"Q-Former {name!r} needs dim (the width of the frames it reads)")
        if name == "lite":
            depth = LITE_LAYERS if num_layers is None else num_layers
            qformer = QLite(dim, num_queries, num_layers=depth, output_dim=output_dim, **settings)
        else:
            qformer = QSimple(dim, num_queries=num_queries, **settings)
    if output_dim is not None and int(output_dim) != qformer.output_dim:
        raise ValueError(
            f"Q-Former {name!r} gives {qformer.output_dim}-dim outputs, not output_dim={output_dim}"
        )
    return qformer


__all__ = ["QFORMERS", "QLite", "QNLLB", "QSimple", "build_qformer", "frame_mask"]
