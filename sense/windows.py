"""Cutting long recordings into windows, and pooling across windows.

A SENSE model is trained on utterances of a few seconds. A longer recording
(a talk, a podcast) is cut into windows before it is encoded:

* ``"fixed"``: windows of ``window`` seconds, spread evenly so that the first
  starts at 0, the last ends at the end of the recording, and consecutive
  windows overlap by at least ``overlap`` seconds;
* ``"silence"``: consecutive windows without overlap, each cut at the quietest
  point (lowest short-term energy) of the second half of a ``window``-long
  stretch, so that cuts fall in pauses rather than inside words.

A recording no longer than ``max_duration`` seconds stays in one piece.

Each window can be embedded on its own (search over a long recording, with a
time span per hit), or the windows can be pooled back into one vector for the
whole recording: :class:`PoolAccumulator` combines the attention pooling of
the windows exactly as if one softmax had run over all their frames (each
frame of an overlap counted once, in the window where it is farther from the
edge).

Example
-------
>>> spans = plan_windows(16000 * 50, 16000, max_duration=30, window=20, overlap=4)
>>> [(s / 16000, e / 16000) for s, e in spans]
[(0.0, 20.0), (15.0, 35.0), (30.0, 50.0)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SPLIT_MODES = ("fixed", "silence")
# Short-term energy for silence detection: 25 ms frames every 10 ms.
ENERGY_FRAME = 0.025
ENERGY_HOP = 0.010


def check_durations(max_duration: float, window: float, overlap: float) -> None:
    """Raise ``ValueError`` unless ``window, max_duration > 0`` and ``0 <= overlap < window``.

    Example
    -------
    >>> check_durations(30.0, 20.0, 4.0)
    """
    if window <= 0 or max_duration <= 0:
        raise ValueError(
            f"window and max_duration must be positive, got {window} and {max_duration}"
        )
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must lie in [0, window={window}), got {overlap}")


def plan_windows(
    num_samples: int,
    sample_rate: int,
    max_duration: float,
    window: float,
    overlap: float = 0.0,
) -> list[tuple[int, int]]:
    """Fixed-length windows ``(start, end)`` in samples covering a recording.

    Parameters
    ----------
    num_samples : int
        Length of the recording.
    sample_rate : int
        Samples per second.
    max_duration : float
        A recording no longer than this (seconds) is one window.
    window : float
        Window length in seconds (every window has this length).
    overlap : float
        Minimum overlap of consecutive windows in seconds; the windows are
        spread evenly, so the real overlap is between ``overlap`` and
        ``overlap`` plus one hop.

    Returns
    -------
    list of (int, int)
        Sample spans, sorted, the first starting at 0 and the last ending at
        ``num_samples``.

    Example
    -------
    >>> plan_windows(100, 10, max_duration=6, window=4, overlap=1)
    [(0, 40), (30, 70), (60, 100)]
    """
    check_durations(max_duration, window, overlap)
    if num_samples <= 0:
        raise ValueError(f"cannot cut an empty recording ({num_samples} samples)")
    win = max(1, int(round(window * sample_rate)))
    if num_samples <= int(round(max_duration * sample_rate)) or num_samples <= win:
        return [(0, num_samples)]
    hop = max(1, win - int(round(overlap * sample_rate)))
    count = math.ceil((num_samples - win) / hop) + 1
    starts = [round(i * (num_samples - win) / (count - 1)) for i in range(count)]
    return [(s, s + win) for s in starts]


def frame_energy(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Short-term log energy [F] of a 1-D waveform (25 ms frames, 10 ms hop).

    Example
    -------
    >>> frame_energy(torch.zeros(16000), 16000).shape
    torch.Size([98])
    """
    frame = max(1, int(round(ENERGY_FRAME * sample_rate)))
    hop = max(1, int(round(ENERGY_HOP * sample_rate)))
    wav = wav.float()
    if wav.numel() < frame:
        wav = torch.nn.functional.pad(wav, (0, frame - wav.numel()))
    frames = wav.unfold(0, frame, hop)
    return torch.log(frames.pow(2).mean(-1) + 1e-10)


def plan_silence_windows(
    wav: torch.Tensor, sample_rate: int, max_duration: float, window: float
) -> list[tuple[int, int]]:
    """Consecutive windows ``(start, end)`` cut at the quietest points.

    Each cut is placed at the frame of lowest energy in the second half of a
    ``window``-long stretch (and never so late that the remainder would be
    shorter than half a window), so every window lasts between ``window / 2``
    and ``window`` seconds.

    Example
    -------
    >>> wav = torch.randn(16000 * 10)
    >>> wav[16000 * 3 : 16000 * 4] = 0  # a pause from 3 s to 4 s
    >>> spans = plan_silence_windows(wav, 16000, max_duration=5, window=5)
    >>> 3.0 <= spans[0][1] / 16000 <= 4.0
    True
    """
    check_durations(max_duration, window, 0.0)
    num_samples = int(wav.shape[-1])
    if num_samples <= 0:
        raise ValueError("cannot cut an empty recording")
    win = max(2, int(round(window * sample_rate)))
    if num_samples <= int(round(max_duration * sample_rate)) or num_samples <= win:
        return [(0, num_samples)]
    energy = frame_energy(wav, sample_rate)
    frame = max(1, int(round(ENERGY_FRAME * sample_rate)))
    hop = max(1, int(round(ENERGY_HOP * sample_rate)))
    centres = torch.arange(energy.numel()) * hop + frame // 2
    spans, start = [], 0
    while num_samples - start > win:
        lo = start + win // 2
        hi = min(start + win, num_samples - win // 2)
        inside = (centres >= lo) & (centres <= hi)
        if inside.any():
            candidates = torch.nonzero(inside).squeeze(1)
            cut = int(centres[candidates[torch.argmin(energy[candidates])]])
        else:
            cut = hi
        spans.append((start, cut))
        start = cut
    spans.append((start, num_samples))
    return spans


def split_waveform(
    wav: torch.Tensor,
    sample_rate: int,
    max_duration: float,
    window: float,
    overlap: float = 0.0,
    mode: str = "fixed",
) -> list[tuple[int, int]]:
    """Window spans of a 1-D waveform with ``mode`` ``"fixed"`` or ``"silence"``.

    Example
    -------
    >>> split_waveform(torch.zeros(16000), 16000, max_duration=30, window=20)
    [(0, 16000)]
    """
    if mode == "fixed":
        return plan_windows(int(wav.shape[-1]), sample_rate, max_duration, window, overlap)
    if mode == "silence":
        return plan_silence_windows(wav, sample_rate, max_duration, window)
    raise ValueError(f"unknown window split {mode!r}; use one of {SPLIT_MODES}")


def own_ranges(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The part of each window that no closer window claims (overlaps split in half).

    The ranges tile ``[spans[0][0], spans[-1][1])`` without overlap, so every
    sample is counted once when windows are pooled together.

    Example
    -------
    >>> own_ranges([(0, 40), (30, 70), (60, 100)])
    [(0, 35), (35, 65), (65, 100)]
    """
    ranges = []
    for i, (start, end) in enumerate(spans):
        lo = start if i == 0 else (start + spans[i - 1][1]) // 2
        hi = end if i == len(spans) - 1 else (spans[i + 1][0] + end) // 2
        ranges.append((max(lo, start), min(hi, end)))
    return ranges


def frame_times(start: int, end: int, num_frames: int, sample_rate: int) -> torch.Tensor:
    """Centre time in seconds [num_frames] of frames spread evenly over ``[start, end)``.

    Example
    -------
    >>> frame_times(0, 16000, 4, 16000)
    tensor([0.1250, 0.3750, 0.6250, 0.8750])
    """
    step = (end - start) / max(num_frames, 1)
    centres = start + (torch.arange(num_frames, dtype=torch.float64) + 0.5) * step
    return (centres / sample_rate).float()


@dataclass
class PoolAccumulator:
    """Attention pooling accumulated over pieces, as one softmax over all of them.

    For each piece, :meth:`add` takes the frames ``[n, D]`` and their
    attention logits ``[n]``; :attr:`pooled` is then
    ``sum_t softmax(logits)_t frames_t`` over every frame added, computed
    with a running maximum so that nothing overflows and memory stays
    ``O(D)`` however long the recording.

    Example
    -------
    >>> acc = PoolAccumulator()
    >>> x, l = torch.randn(10, 4), torch.randn(10)
    >>> acc.add(x[:6], l[:6]); acc.add(x[6:], l[6:])
    >>> torch.allclose(acc.pooled, torch.softmax(l, 0) @ x, atol=1e-6)
    True
    """

    max_logit: torch.Tensor | None = None
    weight_sum: torch.Tensor | None = None
    weighted: torch.Tensor | None = None

    def add(self, frames: torch.Tensor, logits: torch.Tensor) -> None:
        """Add ``frames`` [n, D] with their ``logits`` [n] (n may be 0)."""
        if frames.shape[0] == 0:
            return
        frames, logits = frames.double(), logits.double()
        peak = logits.max()
        if self.max_logit is None:
            new_max = peak
        else:
            new_max = torch.maximum(self.max_logit, peak)
        weights = torch.exp(logits - new_max)
        weight_sum = weights.sum()
        weighted = weights @ frames
        if self.max_logit is not None:
            scale = torch.exp(self.max_logit - new_max)
            weight_sum = weight_sum + self.weight_sum * scale
            weighted = weighted + self.weighted * scale
        self.max_logit, self.weight_sum, self.weighted = new_max, weight_sum, weighted

    @property
    def pooled(self) -> torch.Tensor:
        """The pooled vector [D] (float32)."""
        if self.weighted is None:
            raise ValueError("nothing was added to the pooling")
        return (self.weighted / self.weight_sum).float()
