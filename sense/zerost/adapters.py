"""Bottleneck adapters (Houlsby et al., 2019) inserted into a frozen encoder with hooks.

ZeroST freezes the speech encoder and trains two adapters per layer, one
after self-attention and one after the feed-forward block. ``peft`` offers
no bottleneck adapter, so :class:`EncoderAdapters` adds them with forward
hooks on the layers' own sub-modules: the transformers model is left
untouched (its weights still load and save as usual), and the adapters are
ordinary sub-modules of this module, saved in its state dict.

Adapters are grouped in *stages*: the NLL step adds a new stage in sequence
with the KD step's (:meth:`EncoderAdapters.add_stage`), each hooked site
applying every stage in order.

Example
-------
>>> adapter = BottleneckAdapter(8, 2)
>>> x = torch.randn(3, 8)
>>> torch.equal(adapter(x), x)  # starts as the identity
True
"""

from __future__ import annotations

import torch
from torch import nn

#: Hooked sub-modules of one encoder layer: (after self-attention, after the FFN).
ADAPTER_SITES = {
    "whisper": ("self_attn", "fc2"),
    "wav2vec2": ("attention", "feed_forward"),
    "wav2vec2-bert": ("self_attn", "ffn2"),
}
#: Paper of the adapters: bottleneck 64 at width 1024 is a usual choice.
DEFAULT_BOTTLENECK = 64


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))``; ``up`` starts at zero, so the adapter starts as the identity.

    Parameters
    ----------
    dim : int
        Width of the hidden states it adapts.
    bottleneck : int
        Width of the down-projection.

    Example
    -------
    >>> BottleneckAdapter(16, 4)(torch.randn(2, 5, 16)).shape
    torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, bottleneck: int = DEFAULT_BOTTLENECK):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def adapter_sites(layers, model_type: str) -> list[nn.Module]:
    """The sub-modules whose outputs get an adapter: two per layer, in order.

    Raises
    ------
    ValueError
        A model type without known sites.
    """
    if model_type not in ADAPTER_SITES:
        raise ValueError(
            f"no adapter sites known for model type {model_type!r}; "
            f"supported: {', '.join(sorted(ADAPTER_SITES))}"
        )
    return [getattr(layer, name) for layer in layers for name in ADAPTER_SITES[model_type]]


class EncoderAdapters(nn.Module):
    """Stages of bottleneck adapters applied by forward hooks to ``sites``.

    Parameters
    ----------
    sites : list of nn.Module
        Modules whose output (a tensor, or a tuple whose first item is the
        hidden states) each adapter transforms; see :func:`adapter_sites`.
    dim : int
        Width of the hidden states.
    bottleneck : int
    stages : sequence of str
        Names of the stages to create now (e.g. ``["kd"]``).

    Example
    -------
    >>> layer = nn.Linear(4, 4)
    >>> adapters = EncoderAdapters([layer], dim=4, bottleneck=2, stages=["kd"])
    >>> adapters.add_stage("nll")
    >>> list(adapters.stages), len(list(adapters.parameters()))
    (['kd', 'nll'], 8)
    """

    def __init__(self, sites, dim: int, bottleneck: int = DEFAULT_BOTTLENECK, stages=("kd",)):
        super().__init__()
        self.dim, self.bottleneck, self.num_sites = int(dim), int(bottleneck), len(sites)
        self.stages = nn.ModuleDict()
        for stage in stages:
            self.add_stage(stage)
        # the hooks hold the sites; the sites do not become sub-modules of this module
        self._handles = [site.register_forward_hook(self._hook(i)) for i, site in enumerate(sites)]

    def add_stage(self, name: str) -> None:
        """Append a stage of identity-initialised adapters, applied after the earlier ones."""
        if name in self.stages:
            raise ValueError(f"adapter stage {name!r} exists already")
        self.stages[name] = nn.ModuleList(
            BottleneckAdapter(self.dim, self.bottleneck) for _ in range(self.num_sites)
        )

    def set_trainable(self, stages) -> None:
        """Train the named stages only; the others are frozen."""
        unknown = set(stages) - set(self.stages)
        if unknown:
            raise ValueError(f"unknown adapter stages {sorted(unknown)}; have {list(self.stages)}")
        for name, stage in self.stages.items():
            stage.requires_grad_(name in stages)

    def _hook(self, index: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            for stage in self.stages.values():
                hidden = stage[index](hidden)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook

    def remove(self) -> None:
        """Detach the hooks (the encoder runs without adapters afterwards)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


__all__ = ["ADAPTER_SITES", "BottleneckAdapter", "EncoderAdapters", "adapter_sites"]
