"""sense.dual_encoder.tokens against float64 re-implementations (survivors of make mutation)."""

import numpy as np
import torch

from sense.dual_encoder.tokens import (
    KMEANS_PP_MIN_POINTS,
    KMEANS_PP_POINTS_PER_CENTROID,
    kmeans_plus_plus,
    nearest_centroid,
    reduce_frames,
)


def _kmeans_pp64(
    x, k, seed, min_points=KMEANS_PP_MIN_POINTS, per_centroid=KMEANS_PP_POINTS_PER_CENTROID
):
    """Greedy k-means++ (2 + ln K candidates per step, drawn by squared distance, uniform
    when every distance is 0) on at most max(min_points, per_centroid * K) rows drawn
    without replacement, distances in float64; the same draws from the same generator."""
    rng = np.random.default_rng(seed)
    sample = max(min_points, per_centroid * k)
    if sample < len(x):
        x = x[np.sort(rng.choice(len(x), sample, replace=False))]
    x64 = x.astype(np.float64)

    def dist(rows):
        return ((x64[rows][:, None, :] - x64[None, :, :]) ** 2).sum(-1)

    trials = 2 + int(np.log(k))
    chosen = [int(rng.integers(len(x)))]
    closest = dist([chosen[0]])[0]
    for _ in range(1, k):
        cum = np.cumsum(closest)
        if cum[-1] <= 0:
            cand = rng.integers(len(x), size=trials)
        else:
            cand = np.searchsorted(cum, rng.random(trials) * cum[-1], side="right")
            cand = np.minimum(cand, len(x) - 1)
        pot = np.minimum(closest[None, :], dist(cand))
        best = int(pot.sum(1).argmin())
        chosen.append(int(cand[best]))
        closest = pot[best]
    return x[chosen].astype(np.float32)


def test_kmeans_plus_plus_equals_the_float64_reference():
    """Small distances (under 1), 8 centroids (3 candidates a step), float64 input."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.05, (300, 3))
    got = kmeans_plus_plus(x, 8, seed=5)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _kmeans_pp64(x, 8, seed=5))


def test_kmeans_plus_plus_on_a_subsample_and_on_repeated_frames():
    """More frames than it looks at (a subsample, drawn without replacement), and
    frames that are all one point (every distance 0: candidates drawn uniformly)."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (KMEANS_PP_MIN_POINTS + 500, 2)).astype(np.float32)
    np.testing.assert_array_equal(kmeans_plus_plus(x, 2, seed=3), _kmeans_pp64(x, 2, seed=3))
    same = np.ones((50, 2), dtype=np.float32)
    np.testing.assert_array_equal(kmeans_plus_plus(same, 3, seed=3), _kmeans_pp64(same, 3, seed=3))


def test_nearest_centroid_is_the_brute_force_argmin():
    """Centroids of different norms, so that the |c|^2 - 2 x.c expansion matters."""
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 40, 4, generator=gen)
    centroids = torch.randn(6, 4, generator=gen) * torch.linspace(0.2, 3.0, 6)[:, None]
    expected = ((frames.double()[..., None, :] - centroids.double()) ** 2).sum(-1).argmin(-1)
    assert torch.equal(nearest_centroid(frames, centroids), expected)


def test_reduce_frames_by_three_with_padding():
    """7 frames, 5 real in the second row: means of runs of 3; the lengths carried over."""
    x = torch.arange(14.0).reshape(2, 7, 1)
    out, lens = reduce_frames(x, torch.tensor([1.0, 5 / 7]), 3)
    assert out.flatten().tolist() == [1.0, 4.0, 6.0, 8.0, 10.5, 0.0]
    assert torch.allclose(lens, torch.tensor([1.0, 2 / 3]))
    same, same_lens = reduce_frames(x, torch.tensor([1.0, 0.5]), 1)
    assert same is x and same_lens.tolist() == [1.0, 0.5]
