"""The encoder's Adam step: torch's three implementations on the student's parameters.

``for-loop`` is one parameter at a time (torch's default on a CPU),
``foreach`` the multi-tensor kernels (its default on a GPU) and ``fused`` one
fused kernel over all parameters (``fused=True``, what ``train_sense.yaml``
asks for). Each gets the student's parameters (w2v-BERT 2.0's shapes at the
given size) with the same gradients and is timed in alternation, after one
untimed step that allocates the moments. All three compute the same update:
the largest difference of the parameters after the steps is reported.

Example
-------
>>> sorted(IMPLEMENTATIONS)
['for-loop', 'foreach', 'fused']
"""

from __future__ import annotations

import torch

from benchmarks.common import alternate, pick_device
from benchmarks.models import SIZES, Size, student_config

IMPLEMENTATIONS = {
    "for-loop": {"foreach": False, "fused": False},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"fused": True},
}
LEARNING_RATE = 1e-5


def _parameters(size: Size, device) -> list[torch.Tensor]:
    from transformers import Wav2Vec2BertModel

    torch.manual_seed(0)
    model = Wav2Vec2BertModel(student_config(size)).to(device)
    return [p.detach() for p in model.parameters()]


def run(size: str | Size = "small", rounds: int = 5, device=None) -> dict:
    """Median seconds per Adam step of each implementation; a JSON-able dict."""
    size = SIZES[size] if isinstance(size, str) else size
    device = device if isinstance(device, torch.device) else pick_device(device)
    template = _parameters(size, device)
    generator = torch.Generator(device).manual_seed(1)
    grads = [torch.randn(p.shape, device=device, generator=generator) for p in template]
    systems, params = {}, {}
    for name, flags in IMPLEMENTATIONS.items():
        copies = [torch.nn.Parameter(p.clone()) for p in template]
        for copy, grad in zip(copies, grads):
            copy.grad = grad
        optimizer = torch.optim.Adam(copies, lr=LEARNING_RATE, **flags)
        systems[name], params[name] = optimizer.step, copies
    measured = alternate(systems, rounds, device, warmup=1)
    steps = rounds + 1
    difference = max(
        (a - b).abs().max().item()
        for name in ("foreach", "fused")
        for a, b in zip(params[name], params["for-loop"])
    )
    numel = sum(p.numel() for p in template)
    return {
        "size": size.name,
        "device": device.type,
        "parameters": numel,
        "tensors": len(template),
        "steps_each": steps,
        "step_median_s": {name: round(m["median_s"], 5) for name, m in measured.items()},
        "speedup_over_for_loop": {
            name: round(measured["for-loop"]["median_s"] / m["median_s"], 3)
            for name, m in measured.items()
        },
        "max_parameter_difference": difference,
    }
