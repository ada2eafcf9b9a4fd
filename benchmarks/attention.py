"""w2v-BERT 2.0's relative-key attention: transformers' eager path against sdpa and flex.

``sdpa`` is the path as it runs (on a CPU in inference from
``REGIONAL_MIN_FRAMES`` frames on: the regional split) and ``sdpa-gathered``
the same path with the split off (the whole ``[B, H, T, T]`` bias gathered).

Two measurements, every path in the same process, in alternation:

* memory of one real-size Conformer layer (hidden 1024, 16 heads of 64) at
  ``LAYER_FRAMES`` frames: the largest attention intermediate counted
  analytically (eager: the ``[T, T, d]`` distance embeddings; sdpa: the
  ``[B, H, T, T]`` bias; flex: the ``[B, H, T, 73]`` table) and the measured
  peak (CUDA: exact; CPU: the resident-set high-water mark, an
  approximation, see :mod:`benchmarks.common`);
* real-time factor of a randomly initialised real-size w2v-BERT 2.0
  (transformers' default ``Wav2Vec2BertConfig``, 580M parameters,
  ``inference_mode``) on ``RTF_SECONDS`` seconds of one utterance, from its
  fbank features (the front-end is the same for every path), in fp32 and, on
  a CPU with bf16 instructions, under bf16 autocast. Each row has the wall
  time and the CPU time of the process: ``cpu_rtf`` (CPU seconds per audio
  second and thread) is what the same threads give on an idle machine, and
  what to read where other jobs share the cores.

Example
-------
>>> largest_intermediate_bytes("sdpa", frames=250, heads=16, head_dim=64)
4000000
"""

from __future__ import annotations

import contextlib
import math

import torch

from benchmarks.common import alternate, timed
from benchmarks.flops import FRAMES_PER_SECOND, w2v_bert_forward_flops_per_frame
from sense.lobes.attention import (
    BAND_BLOCK,
    EAGER,
    FLEX,
    HF_IMPLEMENTATION,
    REGIONAL_MIN_FRAMES,
    SDPA,
    regional_from,
    use_attention,
)

#: sdpa with the CPU regional split off: the whole bias gathered.
GATHERED = "sdpa-gathered"
PATHS = (EAGER, GATHERED, SDPA, FLEX)

#: The issue's three lengths, and 60 s: sdpa's CPU split runs from 1,000 frames on.
LAYER_FRAMES = (250, 750, 1500, 3000)
RTF_SECONDS = (10, 30, 60)
#: eager's [T, T, 64] distance tensor is 2.3 GB a layer at 60 s: not timed beyond this.
EAGER_MAX_SECONDS = 30
FEATURE_DIM = 160
#: The FFN's product at 30 s, ``[1500, 1024] @ [1024, 4096]``: the ceiling of the matmul rate.
GEMM_SHAPE = (1500, 1024, 4096)
GEMM_CALLS = 10
FP32_BYTES = 4


def largest_intermediate_bytes(
    path: str, frames: int, heads: int, head_dim: int, batch=1, device="cpu"
) -> int:
    """Bytes of the largest tensor the attention of one layer holds (fp32, analytic).

    ``sdpa`` on a CPU from ``REGIONAL_MIN_FRAMES`` frames: the band's scores,
    ``BAND_BLOCK + 72`` keys a query.
    """
    if path == EAGER:
        return max(frames * frames * head_dim, batch * heads * frames * frames) * FP32_BYTES
    if path == FLEX:
        table = batch * heads * frames * 73
        return max(table, batch * frames * heads * head_dim) * FP32_BYTES
    if path == SDPA and device == "cpu" and frames >= REGIONAL_MIN_FRAMES:
        padded = -(-frames // BAND_BLOCK) * BAND_BLOCK
        return batch * heads * padded * (BAND_BLOCK + 72) * FP32_BYTES
    return batch * heads * frames * frames * FP32_BYTES


def build_model(num_layers: int | None = None, device: str | torch.device = "cpu"):
    """A randomly initialised real-size w2v-BERT 2.0 (``num_layers`` of its 24), eval mode."""
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    config = Wav2Vec2BertConfig(add_adapter=False, vocab_size=None)
    if num_layers is not None:
        config.num_hidden_layers = num_layers
    torch.manual_seed(0)
    return Wav2Vec2BertModel(config).to(device).eval()


def switch(model, path: str) -> None:
    """Run ``model``'s attention through ``path`` (mask format and module classes)."""
    path = SDPA if path == GATHERED else path
    model.set_attn_implementation(HF_IMPLEMENTATION[path])
    use_attention(model, path)


def _split(path: str):
    """The regional split as ``path`` has it: off for ``sdpa-gathered``."""
    return regional_from(math.inf) if path == GATHERED else contextlib.nullcontext()


def precisions(device) -> tuple[str, ...]:
    """fp32, and bf16 where the device computes it natively (GPU, AVX512-BF16/AMX CPU)."""
    if device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return ("fp32", "bf16")
    return ("fp32",)


def _systems(model, features, failed: dict, precision: str = "fp32", paths=PATHS):
    def run(path):
        def call():
            switch(model, path)
            with (
                _split(path),
                torch.inference_mode(),
                torch.autocast(
                    features.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
                ),
            ):
                return model(features).last_hidden_state

        return call

    systems = {path: run(path) for path in paths if path not in failed}
    for path in list(systems):
        try:  # a path that does not run here (flex's CPU compile) is reported, not timed
            systems[path]()
        except Exception as err:  # noqa: BLE001
            failed[path] = (
                f"{type(err).__name__} at {features.shape[1]} frames: "
                + (str(err).splitlines()[0][:200])
            )
            del systems[path]
    return systems


def _row(measured: dict, failed: dict, path: str, **fields) -> dict:
    if path in failed:
        return {**fields, "path": path, "error": failed[path]}
    return {**fields, "path": path, **measured[path]}


def layer_memory(device, frames=LAYER_FRAMES, rounds: int = 1) -> list[dict]:
    """Peak memory of one real-size Conformer layer's forward, per path and length."""
    model = build_model(num_layers=1, device=device)
    config = model.config
    heads, head_dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    rows, failed = [], {}
    for length in frames:
        features = torch.randn(1, length, FEATURE_DIM, device=device)
        systems = _systems(model, features, failed)
        measured = alternate(systems, rounds, device, warmup=0, memory=True)
        for path in PATHS:
            rows.append(
                _row(
                    measured,
                    failed,
                    path,
                    frames=length,
                    largest_intermediate_bytes=largest_intermediate_bytes(
                        path, length, heads, head_dim, device=device.type
                    ),
                )
            )
    return rows


def matmul_gflops(device, precision: str = "fp32", calls: int = GEMM_CALLS) -> float:
    """Best rate of ``torch.matmul`` on :data:`GEMM_SHAPE` in ``precision``, GFLOP/s.

    Nearly all of the model's FLOPs are products of this size: a forward pass
    cannot run faster than its FLOPs at this rate.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    m, k, n = GEMM_SHAPE
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    best = min(timed(lambda: a @ b, device)[0] for _ in range(calls))
    return 2 * m * k * n / best / 1e9


def floor_rtf(config, seconds: float, gflops: float) -> float:
    """RTF of the model's forward FLOPs (73 relative-key distances) at ``gflops``.

    Example
    -------
    >>> from transformers import Wav2Vec2BertConfig
    >>> round(floor_rtf(Wav2Vec2BertConfig(), 30, gflops=190.0), 3)
    0.345
    """
    distances = config.left_max_position_embeddings + config.right_max_position_embeddings + 1
    frames = int(seconds * FRAMES_PER_SECOND)
    per_frame = w2v_bert_forward_flops_per_frame(config, frames, distances)
    return FRAMES_PER_SECOND * per_frame / (gflops * 1e9)


def real_time_factor(device, seconds=RTF_SECONDS, rounds: int = 1) -> list[dict]:
    """Seconds of compute per second of audio of the full model, per path, precision, length.

    Each row also has ``floor_rtf``: the RTF of the forward FLOPs at the
    measured :func:`matmul_gflops` of its precision.
    """
    model = build_model(device=device)
    threads = torch.get_num_threads()
    rows = []
    failed = {precision: {} for precision in precisions(device)}  # a path that fails stays out
    rates = {precision: matmul_gflops(device, precision) for precision in failed}
    for length in seconds:
        features = torch.randn(1, length * FRAMES_PER_SECOND, FEATURE_DIM, device=device)
        paths = [p for p in PATHS if p != EAGER or length <= EAGER_MAX_SECONDS]
        for precision, errors in failed.items():
            systems = _systems(model, features, errors, precision, paths)
            measured = alternate(systems, rounds, device, warmup=0)
            for path in paths:
                row = _row(measured, errors, path, seconds=length, precision=precision)
                row["matmul_gflops"] = round(rates[precision], 1)
                row["floor_rtf"] = round(floor_rtf(model.config, length, rates[precision]), 4)
                if "median_s" in row:
                    row["rtf"] = row["median_s"] / length
                    row["threads"] = threads
                    row["cpu_rtf"] = row["cpu_s"] / (threads * length)
                rows.append(row)
    return rows


def run(device, rounds: int = 1, frames=LAYER_FRAMES, seconds=RTF_SECONDS) -> dict:
    """Both measurements; ``rounds`` timed calls per path after one warm-up call.

    A path that fails (flex where inductor cannot compile it) is reported
    with its error and not run again.
    """
    return {
        "method": "cuda max_memory_allocated"
        if device.type == "cuda"
        else "CPU resident-set high-water mark (VmHWM), approximate",
        "rounds": rounds,
        "regional_min_frames": REGIONAL_MIN_FRAMES,
        "layer_memory": layer_memory(device, frames, rounds),
        "rtf": real_time_factor(device, seconds, rounds),
    }
