"""Padding of duration-filled batches on Common Voice's clip durations (numpy, no GPU).

Every utterance of a batch is padded to the batch's longest, so the encoder
computes ``longest x count`` frames for ``sum`` real ones. For each source of
durations and each per-GPU budget this measures, on the real
:class:`sense.samplers.BalancedDurationBatchSampler` (one epoch's global batch
list, before the DDP split):

* **padded fraction**: padding frames / all padded frames, in w2v-BERT 2.0
  encoder frames (:meth:`sense.features.W2VBertFbank.output_frames` of each
  clip's 16 kHz samples), the frames computed per real frame, ``1 / (1 -
  padded fraction)``, and per second of real audio (about 50 when unpadded);
* **budget fill**: padded audio / (batches x budget), and **budget per real
  second** (batches x budget / real audio), the GPU time per second of audio
  relative to batches that are full and unpadded (1.00);
* **steps** per epoch on ``world_size`` GPUs (batches // world_size);
* **pair repeat**: of the pairs of clips that share a batch in epoch 0, the
  share that share one again in epoch 1 (every clip once per epoch, ``alpha =
  1``): the randomness a sort costs. Random batches give about batch size /
  clips; batches that are the same every epoch give 1.

side by side with what a user would otherwise run under the same budget:
random batches (shuffled, each filled to the budget in that order) and
SpeechBrain's ``DynamicBatchSampler`` (duration buckets, batch size per bucket
``budget // bucket boundary``), with its ``num_buckets`` boundaries and with
boundaries at the data's duration quantiles. The sampler is measured as a
function of its sort window (``sort_window_batches``; ``None``: the whole
drawn epoch).

Sources of durations: ``clip_durations.tsv`` files (a Common Voice release's
per-locale ``clip, duration[ms]`` table, or a release root holding
``<locale>/clip_durations.tsv``, as the demo writes it) and a synthetic
Common Voice-like distribution, :func:`cv_like_durations`.

Example
-------
>>> d = cv_like_durations(1000, seed=0)
>>> bool(d.min() >= CV_MIN_S and d.max() <= CV_CAP_S), round(float(d.mean()), 1)
(True, 5.0)
"""

from __future__ import annotations

import csv
import glob
import os
import time
from collections.abc import Sequence

import numpy as np

#: Per-GPU budgets (seconds of padded audio per forward pass): the recipe's
#: ``batch_seconds: 1200`` (``per_gpu``) in recipes/CommonVoice/SENSE/hparams/train_sense.yaml,
#: and the 320 s batch of the H200 training benchmark (docs/benchmarks/h200-train-real-320s.md).
BUDGETS = {"recipe (train_sense.yaml)": 1200.0, "H200 benchmark batch": 320.0}
#: GPUs of the paper's run ("20 minutes of audio per batch" on 32 GPUs).
WORLD_SIZE = 32
#: Sort windows of the sampler, in batches; None: the whole drawn epoch.
WINDOWS: tuple[int | None, ...] = (1, 10, 50, 200, None)
#: Buckets of SpeechBrain's DynamicBatchSampler (its num_buckets, and quantile boundaries).
SB_NUM_BUCKETS = 200
SB_QUANTILE_BUCKETS = 50
SAMPLE_RATE = 16_000
#: Common Voice-like durations: mean clip length of Common Voice 11.0 English
#: (``avgDurationSecs`` 5.159 in the release's stats), log-normal with the spread
#: of two real ``clip_durations.tsv`` files (log-sd 0.32 and 0.35), between the web
#: recorder's 1 s minimum and a 10 s cap (its maximum was 10 s, 15 s today).
CV_MEAN_S = 5.159
CV_LOG_SD = 0.33
CV_MIN_S = 1.0
CV_CAP_S = 10.0
SYNTHETIC_CLIPS = 200_000
SEED = 0


def cv_like_durations(n: int, seed: int = SEED) -> np.ndarray:
    """``n`` durations (s): log-normal (:data:`CV_MEAN_S`, :data:`CV_LOG_SD`), redrawn outside
    ``[CV_MIN_S, CV_CAP_S]``."""
    rng = np.random.default_rng(seed)
    mu = np.log(CV_MEAN_S) - CV_LOG_SD**2 / 2
    out = np.empty(0)
    while len(out) < n:
        draw = np.exp(rng.normal(mu, CV_LOG_SD, size=2 * n))
        out = np.concatenate([out, draw[(draw >= CV_MIN_S) & (draw <= CV_CAP_S)]])
    return np.round(out[:n], 3)


def read_clip_durations(path: str) -> tuple[np.ndarray, list[str]]:
    """Durations (s) and locales from a ``clip_durations.tsv`` or a release root holding them."""
    files = (
        [path]
        if os.path.isfile(path)
        else sorted(glob.glob(os.path.join(path, "*", "clip_durations.tsv")))
    )
    if not files:
        raise FileNotFoundError(f"no clip_durations.tsv at {path}")
    durations, locales = [], []
    for name in files:
        locale = os.path.basename(os.path.dirname(os.path.abspath(name)))
        with open(name, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                durations.append(int(row["duration[ms]"]) / 1000.0)
                locales.append(locale)
    return np.asarray(durations), locales


def encoder_frames(durations: np.ndarray) -> np.ndarray:
    """w2v-BERT 2.0 encoder frames of each clip (its 16 kHz samples through the front-end)."""
    import torch

    from sense.features import W2VBertFbank

    samples = torch.as_tensor(np.round(durations * SAMPLE_RATE).astype(np.int64))
    return np.maximum(W2VBertFbank.output_frames(samples).numpy(), 1)


def batch_stats(
    batches: Sequence[Sequence[int]], durations: np.ndarray, frames: np.ndarray, budget: float
) -> dict:
    """Padded fraction (frames), budget fill and budget per real second of a list of batches.

    Example
    -------
    >>> s = batch_stats([[0, 1], [2]], np.array([1.0, 2.0, 2.0]), np.array([1, 2, 2]), 4.0)
    >>> round(s["padded_fraction"], 4), s["budget_fill"], s["budget_per_real_second"]
    (0.1667, 0.75, 1.6)
    """
    padded = real = padded_s = real_s = 0.0
    for b in batches:
        f, d = frames[b], durations[b]
        padded += float(f.max()) * len(b)
        real += float(f.sum())
        padded_s += float(d.max()) * len(b)
        real_s += float(d.sum())
    fraction = 1.0 - real / padded
    return {
        "batches": len(batches),
        "steps": len(batches) // WORLD_SIZE,
        "mean_batch_size": sum(len(b) for b in batches) / len(batches),
        "padded_fraction": fraction,
        "frames_per_real_frame": 1.0 / (1.0 - fraction),
        "frames_per_real_second": padded / real_s,
        "budget_fill": padded_s / (len(batches) * budget),
        "budget_per_real_second": len(batches) * budget / real_s,
    }


def pair_repeat(first: Sequence[Sequence[int]], second: Sequence[Sequence[int]], n: int) -> float:
    """Of the pairs sharing a batch in ``first``, the share sharing one in ``second`` too.

    Each of the ``n`` items must be in exactly one batch of each epoch.

    Example
    -------
    >>> pair_repeat([[0, 1], [2, 3]], [[0, 1], [2], [3]], 4)
    0.5
    """
    ids = []
    for batches in (first, second):
        which = np.full(n, -1, dtype=np.int64)
        for k, b in enumerate(batches):
            which[np.asarray(b)] = k
        if (which < 0).any():
            raise ValueError("pair_repeat needs every item in one batch of each epoch")
        ids.append(which)
    _, together = np.unique(ids[0] * (ids[1].max() + 1) + ids[1], return_counts=True)
    _, sizes = np.unique(ids[0], return_counts=True)
    pairs = float((sizes * (sizes - 1) // 2).sum())
    return float((together * (together - 1) // 2).sum()) / pairs if pairs else 0.0


def _sense_epochs(durations, languages, budget, window):
    from sense.samplers import BalancedDurationBatchSampler

    sampler = BalancedDurationBatchSampler(
        durations,
        languages,
        max_batch_duration=budget,
        alpha=1.0,
        seed=SEED,
        num_replicas=1,
        rank=0,
        sort_window_batches=window,
    )
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    return epochs


def _random_epochs(durations, budget):
    from sense.samplers import pack_batches

    return [
        pack_batches(np.random.default_rng(SEED + e).permutation(len(durations)), durations, budget)
        for e in (0, 1)
    ]


def _speechbrain_epochs(durations, budget, boundaries=None):
    from speechbrain.dataio.sampler import DynamicBatchSampler

    kwargs = (
        {"bucket_boundaries": boundaries}
        if boundaries is not None
        else {"num_buckets": SB_NUM_BUCKETS}
    )
    return [
        list(
            DynamicBatchSampler(
                range(len(durations)),
                max_batch_length=budget,
                lengths_list=durations.tolist(),
                shuffle=True,
                batch_ordering="random",
                seed=SEED,
                epoch=e,
                **kwargs,
            )
        )
        for e in (0, 1)
    ]


def _systems(durations, languages, budget):
    quantiles = np.unique(
        np.quantile(durations, np.linspace(0, 1, SB_QUANTILE_BUCKETS + 1)[1:])
    ).tolist()
    from sense.samplers import SORT_WINDOW_BATCHES

    out = [
        (
            f"sense, sort window {'epoch' if w is None else w}"
            + (" (default)" if w == SORT_WINDOW_BATCHES else ""),
            w,
            lambda w=w: _sense_epochs(durations, languages, budget, w),
        )
        for w in WINDOWS
    ]
    out.append(
        ("random batches, filled to the budget", None, lambda: _random_epochs(durations, budget))
    )
    out.append(
        (
            f"SpeechBrain DynamicBatchSampler, num_buckets={SB_NUM_BUCKETS}",
            None,
            lambda: _speechbrain_epochs(durations, budget),
        )
    )
    out.append(
        (
            f"SpeechBrain DynamicBatchSampler, {SB_QUANTILE_BUCKETS} quantile buckets",
            None,
            lambda: _speechbrain_epochs(durations, budget, quantiles),
        )
    )
    return out


def measure(name: str, description: str, durations: np.ndarray, languages: list[str]) -> dict:
    """All systems at all budgets on one source of durations."""
    frames = encoder_frames(durations)
    source = {
        "name": name,
        "description": description,
        "clips": len(durations),
        "hours": float(durations.sum()) / 3600.0,
        "mean_s": float(durations.mean()),
        "median_s": float(np.median(durations)),
        "p90_s": float(np.quantile(durations, 0.9)),
        "max_s": float(durations.max()),
        "rows": [],
    }
    for budget_name, budget in BUDGETS.items():
        for system, window, run in _systems(durations, languages, budget):
            start = time.perf_counter()
            first, second = run()
            seconds = time.perf_counter() - start
            row = {"budget": budget_name, "budget_s": budget, "system": system, "window": window}
            row.update(batch_stats(first, durations, frames, budget))
            row["pair_repeat"] = pair_repeat(first, second, len(durations))
            row["two_epochs_s"] = seconds
            source["rows"].append(row)
    return source


def run(paths: Sequence[str] = (), synthetic_clips: int = SYNTHETIC_CLIPS) -> dict:
    """Measure each ``clip_durations.tsv`` source in ``paths`` and the synthetic one."""
    sources = []
    for path in paths:
        durations, locales = read_clip_durations(path)
        sources.append(
            measure(
                os.path.basename(os.path.dirname(os.path.abspath(path)))
                if os.path.isfile(path)
                else os.path.basename(os.path.normpath(path)),
                f"clip_durations.tsv at {path}",
                durations,
                locales,
            )
        )
    if synthetic_clips:
        durations = cv_like_durations(synthetic_clips)
        sources.append(
            measure(
                "Common Voice-like (synthetic)",
                f"log-normal, mean {CV_MEAN_S} s, log-sd {CV_LOG_SD}, within "
                f"[{CV_MIN_S}, {CV_CAP_S}] s, seed {SEED}",
                durations,
                ["xx"] * len(durations),
            )
        )
    return {"world_size": WORLD_SIZE, "budgets": BUDGETS, "sources": sources}
