"""Teacher cache: sentences per second of the new build path against the old one.

* **before**: what the recipe did until now: the teacher built with no device,
  so XLM-RoBERTa ran in float32 on the host, inside the main process.
* **now**: :func:`sense.distill.build_teacher_cache`'s path: the teacher
  (:class:`sense.lobes.text.TeacherSpec`) on the run's device, in its dtype
  (float16 for BGE-M3 on a GPU), length-sorted batches, written to the cache.
  Under DDP each rank does this for its share; one process is measured here.

Both build a real :class:`sense.teacher_cache.TeacherCache` from the same
transcripts (about 12 words, Common Voice's typical length), with a randomly
initialised teacher of the given size (``real``: BGE-M3's XLM-RoBERTa-large).
The before path runs on fewer sentences when it would take minutes.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import synchronize
from benchmarks.models import SIZES, _vocabulary, build_teacher
from sense.lobes.text import SentenceEncoder, TeacherSpec
from sense.teacher_cache import TeacherCache

WORDS_MEAN, WORDS_SPREAD = 12, 6
BATCH_SIZE = 128


def transcripts(n: int, seed: int = 0) -> dict[str, str]:
    """``n`` transcripts of 6-18 words of the multilingual sample."""
    rng = np.random.default_rng(seed)
    words = _vocabulary()
    lengths = rng.integers(WORDS_MEAN - WORDS_SPREAD, WORDS_MEAN + WORDS_SPREAD + 1, n)
    return {f"u{i:07d}": " ".join(rng.choice(words, size=k)) for i, k in enumerate(lengths)}


def _build(folder: str, items: dict, encoder, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    TeacherCache.build(folder, items, encoder, batch_size=BATCH_SIZE, progress=False)
    synchronize(device)
    return time.perf_counter() - start


def run(size: str, device: torch.device, sentences: int, old_sentences: int) -> dict:
    """Time both paths once each on the same transcripts; a JSON-able dict."""
    with tempfile.TemporaryDirectory() as work:
        teacher = build_teacher(os.path.join(work, "teacher"), SIZES[size])
        spec = TeacherSpec(teacher, kind="hf", pooling="cls", dtype="float16")
        items = transcripts(sentences)
        old_items = dict(list(items.items())[:old_sentences])
        old = SentenceEncoder(teacher, pooling="cls", batch_size=BATCH_SIZE)  # CPU, float32
        _build(
            os.path.join(work, "warm-old"), dict(list(items.items())[:8]), old, torch.device("cpu")
        )
        old_s = _build(os.path.join(work, "old"), old_items, old, torch.device("cpu"))
        del old
        new = spec.load(device)
        _build(os.path.join(work, "warm-new"), dict(list(items.items())[:8]), new, device)
        new_s = _build(os.path.join(work, "new"), items, new, device)
    precision = "float16" if device.type == "cuda" else "float32"
    out = {
        "size": size,
        "machine_device": device.type,
        "old": {
            "device": "cpu",
            "precision": "float32",
            "sentences": len(old_items),
            "seconds": round(old_s, 2),
            "per_second": round(len(old_items) / old_s, 1),
        },
        "new": {
            "device": device.type,
            "precision": precision,
            "sentences": len(items),
            "seconds": round(new_s, 2),
            "per_second": round(len(items) / new_s, 1),
        },
    }
    out["ratio"] = round(out["new"]["per_second"] / out["old"]["per_second"], 2)
    return out
