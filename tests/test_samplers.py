import json

import numpy as np
import pytest

from sense.samplers import BalancedDurationBatchSampler, language_sampling_ratios, save_ratios

RNG = np.random.default_rng(0)
DURS = list(RNG.uniform(1.0, 8.0, size=300))
LANGS = ["ca"] * 240 + ["fr"] * 50 + ["ti"] * 10


def test_ratios_follow_eq3():
    r = language_sampling_ratios(DURS, LANGS, alpha=0.5)
    shares = {lang: r[lang]["share"] for lang in r}
    weights = {lang: q**0.5 for lang, q in shares.items()}
    for lang in r:
        assert r[lang]["probability"] == pytest.approx(weights[lang] / sum(weights.values()))
        assert r[lang]["ratio"] == pytest.approx(r[lang]["probability"] / shares[lang])
    assert r["ti"]["ratio"] > 1 > r["ca"]["ratio"]  # up-sample rare, down-sample frequent
    natural = language_sampling_ratios(DURS, LANGS, alpha=1.0)
    assert all(v["ratio"] == pytest.approx(1.0) for v in natural.values())
    with pytest.raises(ValueError):
        language_sampling_ratios(DURS, LANGS, alpha=1.5)


def test_shares_are_of_hours_not_of_utterances():
    """SAMU-XLSR Eq. 3 is over hours: 1 long clip of "a" weighs as much as 9 short ones of "b"."""
    r = language_sampling_ratios([9.0] + [1.0] * 9, ["a"] + ["b"] * 9, alpha=0.0)
    assert r["a"]["hours"] == pytest.approx(9.0 / 3600) and r["b"]["hours"] == pytest.approx(
        9.0 / 3600
    )
    assert r["a"]["share"] == pytest.approx(0.5) and r["b"]["share"] == pytest.approx(0.5)
    assert r["a"]["ratio"] == pytest.approx(1.0) and r["b"]["ratio"] == pytest.approx(1.0)
    # hand-computed, alpha 0.5: shares 0.9 / 0.1 of the hours
    r = language_sampling_ratios([9.0, 1.0, 1.0], ["a", "b", "b"], alpha=0.5)
    expected_b = (0.2**0.5 / (0.8**0.5 + 0.2**0.5)) / 0.2  # b has 2 of 11 s
    assert r["b"]["share"] == pytest.approx(2 / 11)
    assert r["b"]["ratio"] == pytest.approx(
        ((2 / 11) ** 0.5 / ((9 / 11) ** 0.5 + (2 / 11) ** 0.5)) / (2 / 11)
    )
    assert r["b"]["ratio"] != pytest.approx(expected_b)


def test_copies_of_an_upsampled_clip_go_to_different_batches():
    durations = [2.0] * 40 + [2.0] * 2
    languages = ["big"] * 40 + ["rare"] * 2
    sampler = BalancedDurationBatchSampler(
        durations, languages, max_batch_duration=20.0, alpha=0.0, num_replicas=1, rank=0
    )
    assert sampler.ratios["rare"]["ratio"] > 5  # each rare clip drawn many times per epoch
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert all(len(set(b)) == len(b) for b in batches), batches
        drawn = sorted(i for b in batches for i in b if i >= 40)
        assert len(drawn) > 10  # the copies are all there


def test_batches_respect_the_padded_duration_budget():
    s = BalancedDurationBatchSampler(DURS, LANGS, max_batch_duration=20.0, alpha=1.0)
    batches = list(s)
    for b in batches:
        assert len(b) == 1 or max(DURS[i] for i in b) * len(b) <= 20.0
    # alpha = 1: every utterance exactly once
    assert sorted(i for b in batches for i in b) == list(range(len(DURS)))


def test_rebalancing_changes_language_counts():
    s = BalancedDurationBatchSampler(DURS, LANGS, max_batch_duration=30.0, alpha=0.0)
    counts = s.language_counts()
    # alpha = 0: every language gets about the same amount of audio
    hours = {lang: sum(DURS[i] for b in s for i in b if LANGS[i] == lang) for lang in counts}
    assert max(hours.values()) / min(hours.values()) < 1.5
    assert counts["ti"] > 10 and counts["ca"] < 240


def test_epochs_are_reproducible_and_differ():
    a = BalancedDurationBatchSampler(DURS, LANGS, 20.0, seed=3)
    b = BalancedDurationBatchSampler(DURS, LANGS, 20.0, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first


def test_ranks_get_disjoint_equal_shares():
    ranks = [
        BalancedDurationBatchSampler(DURS, LANGS, 20.0, alpha=1.0, num_replicas=3, rank=r)
        for r in range(3)
    ]
    shares = [list(r) for r in ranks]
    assert len({len(s) for s in shares}) == 1
    seen = [i for s in shares for b in s for i in b]
    assert len(seen) == len(set(seen))  # alpha = 1: no utterance on two ranks
    with pytest.raises(ValueError):
        BalancedDurationBatchSampler(DURS, LANGS, 20.0, num_replicas=2, rank=2)


def test_max_batch_size_and_ratio_file(tmp_path):
    s = BalancedDurationBatchSampler(DURS, LANGS, 1000.0, max_batch_size=4)
    assert max(len(b) for b in s) <= 4
    save_ratios(s.ratios, str(tmp_path / "r.json"))
    assert set(json.loads((tmp_path / "r.json").read_text())) == {"ca", "fr", "ti"}
