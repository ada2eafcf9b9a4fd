"""Compiled encoder layers against eager ones, in our training step.

Both systems are :class:`sense.distill.DistillationBrain` training steps
(``fit_batch``) with the same student weights, batches, optimizers (Adam for
the encoder, Adadelta for the pooling head), clipping and precision; the
encoder of ``compiled`` has ``EncoderOptions(compile_layers=True)``: each
layer's ``forward`` through ``torch.compile`` (inductor), its inputs padded to
a multiple of :data:`sense.lobes.options.LENGTH_BUCKET` frames.

A *pass* is one step on each of ``batches`` batches of different lengths
(utterances of 2-6 s sorted and cut into consecutive batches, as duration
batching does), so a pass crosses several length buckets. Reported: the first
pass of each system (compilation included, from an empty inductor cache),
the median of the later passes, timed in alternation, the ratio, the graphs
compiled, and the frames the buckets add.

Example
-------
>>> bucket_frames([49, 61, 74], bucket=32)
[64, 64, 96]
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import torch
from speechbrain.dataio.batch import PaddedBatch

from benchmarks.common import alternate, pick_device, timed
from benchmarks.models import SIZES, Size, build_student, build_teacher, synthetic_batch
from benchmarks.train_step import build_ours
from sense.features import W2VBertFbank
from sense.lobes.options import LENGTH_BUCKET, EncoderOptions

SYSTEMS = ("eager", "compiled")
BATCHES = 4
UTTERANCES_PER_BATCH = 4
INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"


def bucket_frames(frames: list[int], bucket: int = LENGTH_BUCKET) -> list[int]:
    """Each length rounded up to a multiple of ``bucket``."""
    return [-(-f // bucket) * bucket for f in frames]


@contextlib.contextmanager
def _cold_compiler(folder: str):
    """Compile from nothing: an empty inductor cache in ``folder``, dynamo reset."""
    before = os.environ.get(INDUCTOR_CACHE)
    os.environ[INDUCTOR_CACHE] = os.path.join(folder, "inductor")
    torch._dynamo.reset()
    try:
        yield
    finally:
        torch._dynamo.reset()
        if before is None:
            del os.environ[INDUCTOR_CACHE]
        else:
            os.environ[INDUCTOR_CACHE] = before


def _graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def run(
    size: str | Size = "small",
    rounds: int = 3,
    device: str | torch.device | None = None,
    precision: str | None = None,
    batches: int = BATCHES,
    utterances: int = UTTERANCES_PER_BATCH,
    min_seconds: float = 2.0,
    max_seconds: float = 6.0,
    workdir: str | None = None,
) -> dict:
    """Time passes of eager and compiled training steps; a JSON-able dict."""
    size = SIZES[size] if isinstance(size, str) else size
    device = device if isinstance(device, torch.device) else pick_device(device)
    precision = precision or ("bf16" if device.type == "cuda" else "fp32")
    corpus = synthetic_batch(batches * utterances, min_seconds, max_seconds)
    groups = [
        list(range(i * utterances, (i + 1) * utterances)) for i in range(batches)
    ]  # sorted by length: consecutive utterances share a batch
    with tempfile.TemporaryDirectory(prefix="sense-bench-") as own, _cold_compiler(own):
        workdir = workdir or own
        student = build_student(os.path.join(workdir, "student"), size)
        teacher = build_teacher(os.path.join(workdir, "teacher"), size)
        brains = {}
        for name in SYSTEMS:
            options = EncoderOptions(compile_layers=name == "compiled")
            brain, _, cache = build_ours(
                student, teacher, corpus, device, precision, os.path.join(workdir, name), options
            )
            brains[name] = (brain, cache)

        def one_pass(name):
            brain, cache = brains[name]

            def call():
                for group in groups:
                    rows = [
                        {
                            "id": corpus.ids[i],
                            "sig": corpus.wavs[i],
                            "teacher_emb": cache[corpus.ids[i]],
                        }
                        for i in group
                    ]
                    brain.fit_batch(PaddedBatch(rows))

            return call

        passes = {name: one_pass(name) for name in SYSTEMS}
        first = {}
        graphs = _graphs()
        for name in SYSTEMS:
            first[name], _ = timed(passes[name], device)
        compiled_graphs = _graphs() - graphs
        timed_passes = alternate(passes, rounds, device, warmup=0, memory=True)

    lengths = torch.tensor([len(w) for w in corpus.wavs])
    frames = W2VBertFbank.output_frames(lengths).tolist()
    longest = [max(frames[i] for i in group) for group in groups]
    padded = bucket_frames(longest)
    real_frames = sum(frames)
    return {
        "size": size.name,
        "device": device.type,
        "precision": precision,
        "batches": [
            {"utterances": len(g), "longest_frames": n, "bucket_frames": b}
            for g, n, b in zip(groups, longest, padded)
        ],
        "audio_seconds": round(corpus.audio_seconds, 3),
        "length_bucket": LENGTH_BUCKET,
        "frames_computed": {
            "eager": sum(n * len(g) for g, n in zip(groups, longest)),
            "compiled": sum(b * len(g) for g, b in zip(groups, padded)),
            "real": real_frames,
        },
        "compiled_graphs": compiled_graphs,
        "first_pass_s": {name: round(first[name], 3) for name in SYSTEMS},
        "pass_median_s": {name: round(timed_passes[name]["median_s"], 4) for name in SYSTEMS},
        "pass_times_s": {name: timed_passes[name]["times_s"] for name in SYSTEMS},
        "pass_cpu_s": {name: round(timed_passes[name]["cpu_s"], 4) for name in SYSTEMS},
        "step_peak_increase_mb": {
            name: None
            if timed_passes[name]["step_peak_bytes"] is None
            else round(timed_passes[name]["step_peak_bytes"] / 2**20, 1)
            for name in SYSTEMS
        },
        "speedup": round(
            timed_passes["eager"]["median_s"] / timed_passes["compiled"]["median_s"], 3
        ),
    }
