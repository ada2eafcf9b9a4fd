"""sense.analysis.attention on hand-computed cases (survivors of make mutation)."""

import math

import numpy as np
import pytest

from sense.analysis.attention import (
    EdgeMass,
    NonSpeechMass,
    WordScore,
    WordStats,
    edge_mass,
    frequent_words,
    nonspeech_mass,
    normalize_word,
    position_curve,
    softmax,
    word_class_stats,
    word_scores,
)


def test_softmax_is_float64_flat_and_shift_safe():
    assert softmax([[0.0, 0.0], [0.0, 0.0]]).tolist() == [0.25] * 4
    assert softmax([1000.0, 1000.0]).tolist() == [0.5, 0.5]  # no overflow
    w = softmax(np.array([0.0, 2.0**-10], dtype=np.float32))
    assert w.dtype == np.float64
    assert w[1] == pytest.approx(1 / (1 + math.exp(-(2.0**-10))), rel=1e-12)  # not float32


@pytest.mark.parametrize(
    "logits, words", [([], "logits: no frames"), ([0.0, np.inf], "logits: non-finite")]
)
def test_softmax_names_what_it_refuses(logits, words):
    with pytest.raises(ValueError, match=f"^{words}"):
        softmax(logits)


def test_position_curve_band_is_z_standard_errors_per_point():
    rows = [[0.0, 1.0], [2.0, 7.0], [4.0, 4.0]]  # two frames each: the grid's two points
    c = position_curve(rows, grid_size=2, z=1.96)
    assert c.mean.tolist() == [2.0, 4.0] and c.std.tolist() == [2.0, 3.0] and c.count == 3
    half = 1.96 * np.array([2.0, 3.0]) / math.sqrt(3)
    np.testing.assert_allclose(c.low, [2.0, 4.0] - half, rtol=1e-14)
    np.testing.assert_allclose(c.high, [2.0, 4.0] + half, rtol=1e-14)
    two = position_curve(rows[:2], grid_size=2, z=1.0)
    np.testing.assert_allclose(two.std, [math.sqrt(2.0), math.sqrt(18.0)], rtol=1e-14)
    np.testing.assert_allclose(two.high, [1.0 + 1.0, 4.0 + 3.0], rtol=1e-14)
    one = position_curve([[0.1234567, 2.0]], grid_size=2)
    assert one.std.tolist() == [0.0, 0.0] and one.low.tolist() == one.high.tolist() == [
        0.1234567,
        2.0,
    ]
    assert one.to_dict() == {
        "count": 1,
        "grid": [0.0, 1.0],
        "mean": [0.123457, 2.0],
        "low": [0.123457, 2.0],
        "high": [0.123457, 2.0],
        "std": [0.0, 0.0],
    }


def test_edge_mass_fields_and_a_share_capped_at_one():
    m = edge_mass([[0.0, 0.0], [0.0, math.log(3.0), 0.0, 0.0]], frames=3, edge="last")
    assert m == EdgeMass(
        edge="last",
        frames=3,
        mass=pytest.approx((1.0 + 5 / 6) / 2),
        frame_share=1.0,  # 3 frames of 3 on average
        mean_frame_share=pytest.approx((1.0 + 0.75) / 2),
        mean_frames=3.0,
        utterances=2,
    )
    assert m.to_dict()["frame_share"] == 1.0 and m.to_dict()["edge"] == "last"
    assert edge_mass([[0.0, 0.0]], frames=5).frame_share == 1.0


def test_word_scores_frames_from_start_inclusive_to_end_exclusive():
    times = [0.0, 0.02, 0.04, 0.06]
    logits = [1.0, 2.0, -1.0, 4.0]
    words = [("a", 0.02, 0.04), ("b", 0.04, 0.04), ("c", 0.0, 0.061)]
    a, b, c = word_scores(times, logits, words)
    weights = np.exp(logits) / np.exp(logits).sum()
    assert a == WordScore("a", 0.02, 0.04, 2.0, 1, 2.0, 2.0 - 1.5, pytest.approx(weights[1]))
    # a word of no length: the frame nearest its middle
    assert (b.frames, b.logit_sum, b.start, b.end) == (1, -1.0, 0.04, 0.04)
    assert (c.frames, c.logit_sum, c.mean_logit) == (4, 6.0, 1.5)
    assert c.centred_logit == pytest.approx(0.0) and c.weight == pytest.approx(1.0)
    assert (a.utterance, a.lang, a.word_class) == ("", "", "")
    assert a.to_dict() == {
        "word": "a",
        "start": 0.02,
        "end": 0.04,
        "logit_sum": 2.0,
        "frames": 1,
        "mean_logit": 2.0,
        "centred_logit": 0.5,
        "weight": pytest.approx(weights[1]),
        "utterance": "",
        "lang": "",
        "word_class": "",
    }
    (d,) = word_scores(times, logits, [("d", 0.0, 0.05)], utterance="u1", lang="fr")
    assert (d.utterance, d.lang, d.frames, d.mean_logit) == ("u1", "fr", 3, pytest.approx(2 / 3))


def test_word_scores_errors_name_the_utterance():
    with pytest.raises(ValueError, match="^u1: no frames"):
        word_scores([], [], [], utterance="u1")
    with pytest.raises(ValueError, match="^logits: no frames"):
        word_scores([], [], [])
    with pytest.raises(ValueError, match="^u1: 2 frame times for 1 logits"):
        word_scores([0.0, 1.0], [0.0], [], utterance="u1")
    with pytest.raises(ValueError, match="^utterance: word 'x' ends before it starts"):
        word_scores([0.0], [0.0], [("x", 0.5, 0.4)])


@pytest.mark.parametrize(
    "word, normal",
    [("", ""), ("«»", ""), ("a»", "a"), ("««a»»", "a"), ("«L'École,»", "l'école"), ("$5", "5")],
)
def test_normalize_word(word, normal):
    assert normalize_word(word) == normal


def test_word_stats_average_over_occurrences():
    scores = word_scores(
        [0.01, 0.03, 0.05, 0.07, 0.09],
        [1.0, -1.0, 2.0, 4.0, 0.0],
        [("De", 0.0, 0.02), ("de,", 0.02, 0.06), ("chat", 0.06, 0.1)],
    )
    (de,) = frequent_words(scores, n=1)
    # 'De': 1 frame, sum 1; 'de,': 2 frames, sum 1; the utterance's mean logit is 1.2
    assert de == WordStats(
        word="de",
        count=2,
        mean_sum=1.0,
        mean_logit=pytest.approx(2 / 3),
        centred_logit=pytest.approx(((1.0 - 1.2) + (0.5 - 1.2)) / 2),
        mean_frames=1.5,
    )
    assert de.to_dict()["mean_frames"] == 1.5
    stats = word_class_stats(scores, {"de"})
    assert stats["function"].word == "function" and stats["function"].count == 2
    assert stats["content"] == WordStats("content", 1, 4.0, 2.0, pytest.approx(0.8), 2.0)


def test_nonspeech_mass_below_the_threshold_only():
    items = [
        ([0.0, 1.0, 2.0], [0.0, 0.0, math.log(2.0)], [0.0, 2.0], [0.3, 0.7]),  # 0.3, 0.5, 0.7
        ([0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]),  # all silent
    ]
    m = nonspeech_mass(items)
    assert m == NonSpeechMass(pytest.approx((0.25 + 1.0) / 2), pytest.approx((1 / 3 + 1.0) / 2), 2)
    assert m.to_dict() == {"mass": m.mass, "frame_share": m.frame_share, "utterances": 2}
    assert nonspeech_mass([]) is None


def test_word_scores_compare_float32_frame_times_in_float64():
    """A word starting 1e-10 s after a float32 frame time does not take that frame (numpy
    would compare a float32 array with a Python float in float32)."""
    times = np.array([0.1, 0.2], dtype=np.float32)
    start = float(np.float32(0.1)) + 1e-10
    (w,) = word_scores(times, [1.0, 2.0], [("w", start, 0.3)])
    assert (w.frames, w.logit_sum) == (1, 2.0)
