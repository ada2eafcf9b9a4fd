"""sense.windows on hand-made cases: the edges of every rule (survivors of make mutation).

Silence cuts run at 100 samples a second (the 25 ms frames are round(2.5) = 2 samples,
one every sample, centred one sample in), on a waveform of +-1 whose quiet spots are set
by hand, so the energy of each frame and the cut of each window are known.
"""

import math

import numpy as np
import pytest
import torch

from sense.windows import (
    PoolAccumulator,
    check_durations,
    frame_energy,
    frame_times,
    plan_silence_windows,
    plan_windows,
    split_waveform,
)


@pytest.mark.parametrize(
    "max_duration, window, overlap",
    [(30, 0.5, 0), (0.5, 20, 4), (1e-3, 1e-3, 0), (30, 20, 19.99)],
)
def test_check_durations_accepts(max_duration, window, overlap):
    check_durations(max_duration, window, overlap)


@pytest.mark.parametrize(
    "max_duration, window, overlap, words",
    [
        (30, 0, 0, "window and max_duration must be positive, got 0 and 30"),
        (0, 20, 0, "window and max_duration must be positive, got 20 and 0"),
        (30, -1, 0, "must be positive"),
        (-1, 20, 0, "must be positive"),
        (30, 20, 20, r"overlap must lie in \[0, window=20\), got 20"),
        (30, 20, -0.5, r"overlap must lie in \[0, window=20\), got -0.5"),
    ],
)
def test_check_durations_refuses(max_duration, window, overlap, words):
    with pytest.raises(ValueError, match=words):
        check_durations(max_duration, window, overlap)


# ---------------------------------------------------------------------------
# Fixed windows
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, spans",
    [
        # hop 4 - 2 = 2 s: ceil(8 / 2) + 1 = 5 windows spread over 12 s
        ((120, 10, 6, 4, 2), [(0, 40), (20, 60), (40, 80), (60, 100), (80, 120)]),
        ((120, 10, 6, 4), [(0, 40), (40, 80), (80, 120)]),  # no overlap by default
        ((130, 10, 6, 4, 1), [(0, 40), (30, 70), (60, 100), (90, 130)]),
        ((6, 10, 0.4, 0.3, 0.2), [(0, 3), (1, 4), (2, 5), (3, 6)]),  # a hop of 1 sample
        ((5, 10, 0.1, 0.01), [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),  # windows of 1 sample
        ((30, 1, 30, 20, 4), [(0, 30)]),  # exactly max_duration: one piece
        ((20, 1, 10, 20, 4), [(0, 20)]),  # exactly one window long: one piece
        ((1, 16000, 30, 20), [(0, 1)]),
        ((47, 10, 3, 2, 0.5), [(0, 20), (14, 34), (27, 47)]),  # ceil(27 / 15) + 1 = 3
    ],
)
def test_plan_windows_by_hand(args, spans):
    assert plan_windows(*args) == spans


@pytest.mark.parametrize("num_samples", [0, -5])
def test_plan_windows_refuses_an_empty_recording(num_samples):
    with pytest.raises(
        ValueError, match=rf"cannot cut an empty recording \({num_samples} samples\)"
    ):
        plan_windows(num_samples, 16000, 30, 20)


def test_split_waveform_passes_the_overlap_and_the_mode():
    wav = torch.zeros(120)
    assert split_waveform(wav, 10, 6, 4) == [(0, 40), (40, 80), (80, 120)]
    assert split_waveform(wav, 10, 6, 4, overlap=2) == plan_windows(120, 10, 6, 4, 2)
    assert split_waveform(wav, 10, 6, 4, mode="silence") == plan_silence_windows(wav, 10, 6, 4)
    with pytest.raises(ValueError, match="unknown window split 'x'"):
        split_waveform(wav, 10, 6, 4, mode="x")


# ---------------------------------------------------------------------------
# Energy
# ---------------------------------------------------------------------------


def energy64(wav, frame, hop):
    w = np.asarray(wav, dtype=np.float64)
    if len(w) < frame:
        w = np.pad(w, (0, frame - len(w)))
    count = (len(w) - frame) // hop + 1
    return np.array(
        [np.log(np.mean(w[i * hop : i * hop + frame] ** 2) + 1e-10) for i in range(count)]
    )


@pytest.mark.parametrize(
    "num_samples, sample_rate, frame, hop",
    [
        (16000, 16000, 400, 160),
        (200, 16000, 400, 160),
        (399, 16000, 400, 160),
        (37, 40, 1, 1),
        (50, 100, 2, 1),
    ],
)
def test_frame_energy_is_the_log_mean_square_of_each_frame(num_samples, sample_rate, frame, hop):
    wav = torch.randn(num_samples, generator=torch.Generator().manual_seed(num_samples))
    wav[: num_samples // 3] = 0  # silence: log(1e-10)
    got = frame_energy(wav, sample_rate).double().numpy()
    np.testing.assert_allclose(got, energy64(wav.numpy(), frame, hop), rtol=1e-5, atol=1e-5)


def test_frame_energy_of_silence_and_of_a_short_piece():
    assert frame_energy(torch.zeros(1600), 16000).tolist() == pytest.approx([math.log(1e-10)] * 8)
    # 200 samples, padded to one 25 ms frame of 400
    wav = torch.ones(200)
    assert frame_energy(wav, 16000).tolist() == pytest.approx([math.log(0.5 + 1e-10)])


# ---------------------------------------------------------------------------
# Silence windows, at 100 Hz: frame i holds samples i, i+1 and is centred at i + 1
# ---------------------------------------------------------------------------


def loud(num_samples, quiet=()):
    """+-1 everywhere (energy 0), but ``level`` on the two samples of each frame centred at
    ``centre`` (energy log level^2)."""
    wav = torch.ones(num_samples)
    wav[1::2] = -1
    for centre, level in quiet:
        wav[centre - 1 : centre + 1] = level
    return wav


@pytest.mark.parametrize(
    "num_samples, quiet, spans",
    [
        # window 100: the first cut in [50, 100] (100 itself is in), the next in
        # [150, min(200, 240 - 50)]: 150 is in, 195 (after 190) is not; 40 is before 50
        (
            240,
            [(40, 0), (70, 0.1), (100, 0.01), (150, 0.001), (180, 0.1), (195, 0)],
            [(0, 100), (100, 150), (150, 240)],
        ),
        # a remainder of exactly one window stays one window
        (200, [(100, 0.01), (150, 0)], [(0, 100), (100, 200)]),
        # the quietest of several frames
        (170, [(60, 0.1), (80, 0.01), (90, 0.1)], [(0, 80), (80, 170)]),
        # all alike: the first frame of the range
        (300, [], [(0, 50), (50, 100), (100, 150), (150, 200), (200, 300)]),
    ],
)
def test_silence_windows_cut_at_the_quietest_frame_by_hand(num_samples, quiet, spans):
    assert plan_silence_windows(loud(num_samples, quiet), 100, max_duration=1, window=1) == spans


def test_silence_windows_without_a_frame_in_range_cut_at_its_end():
    # 1 kHz: 25-sample frames every 10 samples, centred at 12, 22; windows of 10 samples
    assert plan_silence_windows(torch.ones(35), 1000, max_duration=0.01, window=0.01) == [
        (0, 10),
        (10, 20),
        (20, 30),
        (30, 35),
    ]
    # windows of 2 samples (the shortest), 30 samples: cut every 2 samples but where a frame
    # centre falls in range
    spans = plan_silence_windows(torch.ones(30), 1000, max_duration=0.001, window=0.002)
    assert spans == [(i, i + 2) for i in range(0, 30, 2)]


@pytest.mark.parametrize(
    "num_samples, max_duration, window",
    [(150, 2, 1), (200, 2, 1), (100, 0.5, 1), (1, 1, 1), (50, 1, 1)],
)
def test_silence_windows_keep_a_short_recording_whole(num_samples, max_duration, window):
    wav = loud(num_samples)
    assert plan_silence_windows(wav, 100, max_duration, window) == [(0, num_samples)]


def test_silence_windows_refuse_an_empty_recording_and_bad_durations():
    with pytest.raises(ValueError, match="cannot cut an empty recording"):
        plan_silence_windows(torch.zeros(0), 100, 1, 1)
    with pytest.raises(ValueError, match="must be positive"):
        plan_silence_windows(torch.zeros(10), 100, 1, 0)


# ---------------------------------------------------------------------------
# Frame times and pooling
# ---------------------------------------------------------------------------


def test_frame_times_are_the_float64_centres():
    assert frame_times(0, 100, 1, 100).tolist() == [0.5]
    assert frame_times(100, 200, 0, 100).tolist() == []
    # 17.5 min into a recording, 3 frames over 10 samples: computed in float64, then float32
    start, end = 2**24 + 1, 2**24 + 11
    expected = [np.float32((start + (i + 0.5) * 10 / 3) / 16000) for i in range(3)]
    assert frame_times(start, end, 3, 16000).tolist() == [float(e) for e in expected]


def test_pool_accumulator_single_frames_and_empty_pieces():
    x, logits = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    acc = PoolAccumulator()
    acc.add(x[:0], logits[:0])  # nothing
    acc.add(x[:1], logits[:1])
    assert torch.allclose(acc.pooled, x[0].float())
    for i in range(1, 5):
        acc.add(x[i : i + 1], logits[i : i + 1])
    weights = torch.softmax(logits, 0)
    assert torch.allclose(acc.pooled, (weights @ x).float(), atol=1e-7)
    none = PoolAccumulator()
    none.add(torch.zeros(2, 0), torch.zeros(2))  # frames of no dimension
    assert none.pooled.shape == (0,)
    with pytest.raises(ValueError, match="nothing was added"):
        _ = PoolAccumulator().pooled


def test_frame_energy_of_one_sample_at_100_hz():
    # frames of 2 samples every sample: one sample padded to one frame, on its right
    assert frame_energy(torch.ones(1), 100).tolist() == pytest.approx([math.log(0.5 + 1e-10)])


def test_silence_windows_with_one_sample_frames():
    """40 Hz: frames of round(1.0) = 1 sample, centred on it (1 // 2 = 0)."""
    wav = loud(100)
    wav[30] = 0.0
    wav[60] = 0.0
    assert plan_silence_windows(wav, 40, max_duration=1, window=1) == [(0, 30), (30, 60), (60, 100)]


def test_silence_windows_with_odd_frames_and_odd_windows():
    # 120 Hz: frames of 3 samples centred one sample in; the quietest centred at hi = 120
    wav = loud(300, [(90, 0.1)])
    wav[119:122] = 0.0
    assert plan_silence_windows(wav, 120, max_duration=1, window=1) == [
        (0, 120),
        (120, 180),
        (180, 300),
    ]
    # windows of 101 samples: lo = start + 50 and hi = 170 - 50 are in the range
    wav = loud(170, [(50, 0.0), (80, 0.1), (110, 0.1), (120, 0.0)])
    assert plan_silence_windows(wav, 100, max_duration=1, window=1.01) == [
        (0, 50),
        (50, 120),
        (120, 170),
    ]


def test_pool_accumulator_when_a_later_piece_holds_the_maximum():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]], dtype=torch.float64)
    logits = torch.tensor([0.0, 1.0, 3.0, 2.0], dtype=torch.float64)
    acc = PoolAccumulator()
    for part in (slice(0, 1), slice(1, 2), slice(2, 4)):
        acc.add(x[part], logits[part])
    expected = (torch.exp(logits) / torch.exp(logits).sum()) @ x
    assert torch.allclose(acc.pooled, expected.float(), atol=1e-7)
