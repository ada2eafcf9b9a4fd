"""Peak device memory of one training step against the seconds of audio in the batch.

What a ``batch_seconds`` budget holds on one GPU: a real-size w2v-BERT 2.0
student (randomly initialised) with the SENSE head, bf16 autocast, Adam and
Adadelta, one forward, backward and optimizer step on utterances of
``UTTERANCE_SECONDS`` each, with and without activation checkpointing. GPU only.
"""

from __future__ import annotations

import os
import tempfile

import torch

from benchmarks.models import SIZES, build_student
from sense.lobes.speech import HFSpeechEncoder
from sense.losses import CosineDistanceLoss
from sense.nnet.pooling import AttentivePooling

UTTERANCE_SECONDS = 15.0
SAMPLE_RATE = 16000
GIB = 2.0**30


def step_peak(encoder, pooling, seconds: float, device: torch.device) -> float:
    """Peak GiB allocated by one training step on ``seconds`` of audio (None when out of memory)."""
    n = max(1, round(seconds / UTTERANCE_SECONDS))
    wavs = 0.1 * torch.randn(n, int(UTTERANCE_SECONDS * SAMPLE_RATE), device=device)
    target = torch.nn.functional.normalize(
        torch.randn(n, pooling.output_dim, device=device), dim=-1
    )
    opts = [
        torch.optim.Adam(encoder.parameters(), 1e-5),
        torch.optim.Adadelta(pooling.parameters()),
    ]
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            emb, _ = pooling(*encoder(wavs))
        CosineDistanceLoss()(emb.float(), target).backward()
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / GIB
    except torch.OutOfMemoryError:
        return None
    finally:
        del opts
        torch.cuda.empty_cache()


def run(device: torch.device, budgets=(150, 300, 600, 1200)) -> dict:
    if device.type != "cuda":
        raise RuntimeError("the memory benchmark needs a GPU")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        student = build_student(os.path.join(work, "student"), SIZES["real"])
        for checkpointing in (False, True):
            encoder = HFSpeechEncoder(student, gradient_checkpointing=checkpointing).to(device)
            pooling = AttentivePooling(encoder.output_dim).to(device)
            encoder.train()
            for seconds in budgets:
                peak = step_peak(encoder, pooling, seconds, device)
                rows.append(
                    {
                        "checkpointing": checkpointing,
                        "seconds": seconds,
                        "peak_gib": None if peak is None else round(peak, 1),
                    }
                )
                print(rows[-1], flush=True)
            del encoder, pooling
            torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory / GIB
    return {"device_gib": round(total, 1), "utterance_seconds": UTTERANCE_SECONDS, "rows": rows}
