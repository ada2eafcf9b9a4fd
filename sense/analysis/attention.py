"""The numbers of section VII, from attention logits and word boundaries.

Everything here takes plain arrays: one ``[T]`` vector of attention logits per
utterance (what :meth:`sense.inference.SENSE.attention_file` returns), frame
times in seconds, words as ``(word, start_s, end_s)``. Nothing knows about a
data set or a model.

- :func:`position_curve` (Figure 2): each utterance's logits placed at their
  relative positions ``i / (T - 1)``, resampled by linear interpolation onto a
  common grid, averaged, with a confidence band.
- :func:`edge_mass`: the share of attention weight on the first (or last)
  ``n`` frames against their share of the frames (the paper: 5.25% of the
  weight on the first 5 frames, which are 0.61% of the frames).
- :func:`word_scores`, :func:`top_occurrences`, :func:`frequent_words`
  (Table IX) and :func:`word_class_stats` (content against function words):
  the attention logits summed over each word's frames.
- :func:`nonspeech_mass`: the attention weight that falls where a voice
  activity detector hears no speech.

Example
-------
>>> curve = position_curve([np.array([3.0, 0.0, 0.0, 1.0]), np.array([3.0, 0.0, 1.0])], grid_size=3)
>>> curve.mean.tolist()
[3.0, 0.0, 1.0]
>>> round(edge_mass([np.array([np.log(3.0), 0.0, 0.0, 0.0])], frames=1).mass, 3)
0.5
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Points of the relative-position grid of Figure 2 (0, 0.01, ..., 1).
DEFAULT_GRID = 101
#: Frames counted at each edge (the paper: the first five).
EDGE_FRAMES = 5
#: Half-width of the confidence band in standard errors (95%).
CONFIDENCE_Z = 1.96
#: Rows of each half of Table IX.
TOP_WORDS = 10
#: Speech probability under which a frame counts as non-speech.
VAD_THRESHOLD = 0.5
EDGES = ("first", "last")

Word = tuple[str, float, float]


def _as_logits(logits, where: str = "logits") -> np.ndarray:
    array = np.asarray(logits, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{where}: no frames")
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: non-finite attention logits")
    return array


def softmax(logits) -> np.ndarray:
    """Attention weights of one utterance from its logits [T] (sum to 1).

    Example
    -------
    >>> softmax([0.0, 0.0]).tolist()
    [0.5, 0.5]
    """
    x = _as_logits(logits)
    e = np.exp(x - x.max())
    return e / e.sum()


# ---------------------------------------------------------------------------
# Figure 2: mean logit against relative position
# ---------------------------------------------------------------------------


def relative_positions(num_frames: int) -> np.ndarray:
    """``relpos(i) = i / (T - 1)`` for ``i = 0 .. T - 1`` (``[0.]`` for one frame).

    Example
    -------
    >>> relative_positions(5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if num_frames < 1:
        raise ValueError(f"an utterance has at least one frame, got {num_frames}")
    if num_frames == 1:
        return np.zeros(1)
    return np.arange(num_frames) / (num_frames - 1)


def resample_relative(logits, grid: np.ndarray) -> np.ndarray:
    """One utterance's logits [T] at the relative positions ``grid`` [G] (linear).

    Example
    -------
    >>> resample_relative([0.0, 2.0], np.array([0.0, 0.25, 1.0])).tolist()
    [0.0, 0.5, 2.0]
    """
    x = _as_logits(logits)
    return np.interp(grid, relative_positions(x.size), x)


@dataclass
class PositionCurve:
    """Mean attention logit against relative position, with its confidence band.

    Attributes
    ----------
    grid : numpy.ndarray
        [G] relative positions in [0, 1].
    mean : numpy.ndarray
        [G] mean resampled logit over the utterances.
    low, high : numpy.ndarray
        [G] ``mean -/+ z`` standard errors (equal to ``mean`` for one utterance).
    std : numpy.ndarray
        [G] standard deviation over the utterances.
    count : int
        Number of utterances.
    """

    grid: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    std: np.ndarray
    count: int

    def to_dict(self) -> dict:
        """Lists of floats, for JSON."""
        return {
            "count": self.count,
            **{
                k: getattr(self, k).round(6).tolist()
                for k in ("grid", "mean", "low", "high", "std")
            },
        }


def position_curve(
    logit_seqs: Iterable, grid_size: int = DEFAULT_GRID, z: float = CONFIDENCE_Z
) -> PositionCurve:
    """Figure 2: every utterance resampled to ``grid_size`` relative positions, averaged.

    Parameters
    ----------
    logit_seqs : iterable of array-like
        One [T] logit vector per utterance (any lengths).
    grid_size : int
        Points of the grid ``0, 1/(G-1), ..., 1``.
    z : float
        Half-width of the band in standard errors of the mean (1.96: 95%).

    Example
    -------
    >>> c = position_curve([[0.0, 1.0], [2.0, 3.0]], grid_size=2)
    >>> c.mean.tolist(), c.count
    ([1.0, 2.0], 2)
    """
    if grid_size < 2:
        raise ValueError(f"grid_size must be at least 2, got {grid_size}")
    grid = np.linspace(0.0, 1.0, grid_size)
    rows = [resample_relative(seq, grid) for seq in logit_seqs]
    if not rows:
        raise ValueError("no utterances to average")
    stack = np.stack(rows)
    mean = stack.mean(axis=0)
    std = stack.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros_like(mean)
    half = z * std / math.sqrt(len(rows))
    return PositionCurve(grid, mean, mean - half, mean + half, std, len(rows))


# ---------------------------------------------------------------------------
# The first-frames mass
# ---------------------------------------------------------------------------


@dataclass
class EdgeMass:
    """Attention weight on the first (or last) frames against their share of frames.

    Attributes
    ----------
    edge : str
        ``"first"`` or ``"last"``.
    frames : int
        Frames counted at that edge.
    mass : float
        Mean over utterances of the attention weight on those frames.
    frame_share : float
        ``frames / mean(T)``: their share of the average number of frames
        (the paper's 0.61%).
    mean_frame_share : float
        Mean over utterances of ``min(frames, T) / T``.
    mean_frames : float
        Average number of frames per utterance.
    utterances : int
        Number of utterances.
    """

    edge: str
    frames: int
    mass: float
    frame_share: float
    mean_frame_share: float
    mean_frames: float
    utterances: int

    def to_dict(self) -> dict:
        return asdict(self)


def edge_mass(logit_seqs: Iterable, frames: int = EDGE_FRAMES, edge: str = "first") -> EdgeMass:
    """Mean attention mass of the ``frames`` first (or last) frames of each utterance.

    Example
    -------
    >>> m = edge_mass([np.log([3.0, 1.0, 1.0, 1.0]), np.log([1.0, 1.0, 2.0, 4.0])], frames=1)
    >>> round(m.mass, 4), m.frame_share
    (0.3125, 0.25)
    >>> round(edge_mass([np.log([3.0, 1.0, 1.0, 1.0]), np.log([1.0, 1.0, 2.0, 4.0])], 1, "last").mass, 4)
    0.3333
    """
    if edge not in EDGES:
        raise ValueError(f"edge must be one of {EDGES}, got {edge!r}")
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    masses, shares, lengths = [], [], []
    for seq in logit_seqs:
        weights = softmax(seq)
        part = weights[:frames] if edge == "first" else weights[-frames:]
        masses.append(float(part.sum()))
        shares.append(min(frames, weights.size) / weights.size)
        lengths.append(weights.size)
    if not masses:
        raise ValueError("no utterances")
    mean_frames = float(np.mean(lengths))
    return EdgeMass(
        edge=edge,
        frames=frames,
        mass=float(np.mean(masses)),
        frame_share=min(1.0, frames / mean_frames),
        mean_frame_share=float(np.mean(shares)),
        mean_frames=mean_frames,
        utterances=len(masses),
    )


# ---------------------------------------------------------------------------
# Table IX: attention-logit sums of words
# ---------------------------------------------------------------------------


@dataclass
class WordScore:
    """The attention logits of one word occurrence.

    Attributes
    ----------
    word : str
        The word as aligned.
    start, end : float
        Its boundaries in seconds.
    logit_sum : float
        Sum of the logits of its frames (Table IX).
    frames : int
        Number of its frames (those whose centre lies in ``[start, end)``;
        a word shorter than a frame gets the frame nearest its middle).
    mean_logit : float
        ``logit_sum / frames``.
    centred_logit : float
        Mean over its frames of the logit minus the utterance's mean logit:
        above 0, the word draws more attention than the utterance's average
        frame (this does not depend on the logits' arbitrary offset).
    weight : float
        Attention weight on its frames (one softmax over the utterance).
    utterance, lang : str
        Where it was spoken.
    word_class : str
        ``"content"`` or ``"function"`` once classified (:func:`word_class`).
    """

    word: str
    start: float
    end: float
    logit_sum: float
    frames: int
    mean_logit: float
    centred_logit: float
    weight: float
    utterance: str = ""
    lang: str = ""
    word_class: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def word_scores(
    times, logits, words: Sequence[Word], utterance: str = "", lang: str = ""
) -> list[WordScore]:
    """Sum the logits of each word's frames.

    Parameters
    ----------
    times : array-like
        [T] centre of each frame in seconds.
    logits : array-like
        [T] attention logits.
    words : sequence of (str, float, float)
        Word boundaries ``(word, start_s, end_s)``.

    Example
    -------
    >>> t = np.array([0.01, 0.03, 0.05, 0.07])
    >>> [(w.word, w.logit_sum, w.frames) for w in word_scores(t, [1.0, 2.0, -1.0, 0.5],
    ...                                                       [("le", 0.0, 0.04), ("chat", 0.04, 0.08)])]
    [('le', 3.0, 2), ('chat', -0.5, 2)]
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    x = _as_logits(logits, utterance or "logits")
    if times.size != x.size:
        raise ValueError(
            f"{utterance or 'utterance'}: {times.size} frame times for {x.size} logits"
        )
    weights = softmax(x)
    centred = x - x.mean()
    out = []
    for word, start, end in words:
        start, end = float(start), float(end)
        if end < start:
            raise ValueError(f"{utterance or 'utterance'}: word {word!r} ends before it starts")
        inside = np.flatnonzero((times >= start) & (times < end))
        if inside.size == 0:
            inside = np.array([int(np.argmin(np.abs(times - (start + end) / 2)))])
        total = float(x[inside].sum())
        out.append(
            WordScore(
                word=word,
                start=start,
                end=end,
                logit_sum=total,
                frames=int(inside.size),
                mean_logit=total / inside.size,
                centred_logit=float(centred[inside].mean()),
                weight=float(weights[inside].sum()),
                utterance=utterance,
                lang=lang,
            )
        )
    return out


def normalize_word(word: str) -> str:
    """Lower-case, punctuation stripped from both ends (``"«Bonjour,"`` -> ``"bonjour"``).

    Example
    -------
    >>> normalize_word("«L'École,»")
    "l'école"
    """
    text = unicodedata.normalize("NFC", word).casefold()
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(text[end - 1])[0] in "PS":
        end -= 1
    return text[start:end]


def top_occurrences(scores: Iterable[WordScore], n: int = TOP_WORDS) -> list[WordScore]:
    """Table IX, left: the ``n`` word occurrences with the highest logit sum.

    Example
    -------
    >>> s = word_scores([0.01, 0.03], [2.0, -1.0], [("a", 0, 0.02), ("b", 0.02, 0.04)])
    >>> [w.word for w in top_occurrences(s, n=1)]
    ['a']
    """
    return sorted(scores, key=lambda s: -s.logit_sum)[:n]


@dataclass
class WordStats:
    """Averages over the occurrences of one word (or one class of words).

    Attributes
    ----------
    word : str
        The normalised word, or the class name.
    count : int
        Occurrences.
    mean_sum : float
        Mean attention-logit sum (Table IX, right).
    mean_logit : float
        Mean logit of its frames.
    centred_logit : float
        Mean of :attr:`WordScore.centred_logit`.
    mean_frames : float
        Mean number of frames.
    """

    word: str
    count: int
    mean_sum: float
    mean_logit: float
    centred_logit: float
    mean_frames: float

    def to_dict(self) -> dict:
        return asdict(self)


def _stats(name: str, group: Sequence[WordScore]) -> WordStats:
    return WordStats(
        word=name,
        count=len(group),
        mean_sum=float(np.mean([s.logit_sum for s in group])),
        mean_logit=float(np.sum([s.logit_sum for s in group]) / np.sum([s.frames for s in group])),
        centred_logit=float(np.mean([s.centred_logit for s in group])),
        mean_frames=float(np.mean([s.frames for s in group])),
    )


def frequent_words(scores: Iterable[WordScore], n: int = TOP_WORDS) -> list[WordStats]:
    """Table IX, right: the ``n`` most frequent words and their mean logit sum.

    Words are compared after :func:`normalize_word`; ties in frequency go in
    alphabetical order.

    Example
    -------
    >>> s = word_scores([0.01, 0.03, 0.05], [1.0, -1.0, -2.0],
    ...                 [("De", 0, 0.02), ("de", 0.02, 0.04), ("chat", 0.04, 0.06)])
    >>> [(w.word, w.count, w.mean_sum) for w in frequent_words(s, n=1)]
    [('de', 2, 0.0)]
    """
    groups: dict[str, list[WordScore]] = {}
    for s in scores:
        key = normalize_word(s.word)
        if key:
            groups.setdefault(key, []).append(s)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:n]
    return [_stats(word, group) for word, group in ranked]


def word_class(word: str, function_words: Collection[str]) -> str:
    """``"function"`` when the normalised word is in ``function_words``, else ``"content"``."""
    return "function" if normalize_word(word) in function_words else "content"


def word_class_stats(
    scores: Iterable[WordScore], function_words: Collection[str]
) -> dict[str, WordStats]:
    """Content words against function words: averages over each class.

    ``function_words`` holds normalised words (:func:`normalize_word`); every
    other word counts as a content word. A class with no occurrence is left out.

    Example
    -------
    >>> s = word_scores([0.01, 0.03], [-1.0, 3.0], [("la", 0, 0.02), ("maison", 0.02, 0.04)])
    >>> {k: v.mean_sum for k, v in word_class_stats(s, {"la"}).items()}
    {'content': 3.0, 'function': -1.0}
    """
    classes: dict[str, list[WordScore]] = {"content": [], "function": []}
    for s in scores:
        if normalize_word(s.word):
            classes[word_class(s.word, function_words)].append(s)
    return {name: _stats(name, group) for name, group in classes.items() if group}


# ---------------------------------------------------------------------------
# Voice activity
# ---------------------------------------------------------------------------


@dataclass
class NonSpeechMass:
    """Attention weight on frames without speech against their share of frames.

    Attributes
    ----------
    mass : float
        Mean over utterances of the attention weight on non-speech frames.
    frame_share : float
        Mean over utterances of the share of non-speech frames.
    utterances : int
        Utterances with a voice activity curve.
    """

    mass: float
    frame_share: float
    utterances: int

    def to_dict(self) -> dict:
        return asdict(self)


def nonspeech_mass(
    items: Iterable[tuple], threshold: float = VAD_THRESHOLD
) -> NonSpeechMass | None:
    """Share of attention where the voice activity detector hears no speech.

    Parameters
    ----------
    items : iterable of (times, logits, vad_times, vad_probs)
        Per utterance: frame times [T] and logits [T]; the speech probability
        curve ``vad_probs`` at ``vad_times`` (interpolated at the frame times).
    threshold : float
        A frame whose speech probability is below this is non-speech.

    Returns
    -------
    NonSpeechMass or None
        ``None`` when no utterance was given.

    Example
    -------
    >>> m = nonspeech_mass([([0.1, 0.3], [0.0, 0.0], [0.0, 0.2, 0.3], [0.0, 0.0, 1.0])])
    >>> m.mass, m.frame_share
    (0.5, 0.5)
    """
    masses, shares = [], []
    for times, logits, vad_times, vad_probs in items:
        weights = softmax(logits)
        speech = np.interp(np.asarray(times, dtype=np.float64), vad_times, vad_probs)
        silent = speech < threshold
        masses.append(float(weights[silent].sum()))
        shares.append(float(silent.mean()))
    if not masses:
        return None
    return NonSpeechMass(float(np.mean(masses)), float(np.mean(shares)), len(masses))
