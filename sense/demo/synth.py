"""Speech synthesis with espeak-ng, with word boundaries.

The espeak-ng library and its voice data come from the PyPI package
``espeakng-loader``; this module drives the library through ctypes in
synchronous mode: a callback collects the int16 samples (22.05 kHz) and the
word events, whose sample positions give where each word starts.  A word ends
where the next one starts, minus the silence in between (found from the
signal's energy); words espeak-ng speaks as one group ("in the") share the
group's span in proportion to their letters.

espeak-ng keeps one global state per process, is not thread-safe, and its
wave generator carries state from one utterance to the next that no API call
resets (the pitch flutter's phase, among others), so that in one process the
same sentence read twice gave two different waveforms.  The library therefore
runs in a small worker process (:mod:`sense.demo.espeak_worker`), one per
process using it, which synthesizes every request in a fresh fork of its
just-initialised engine, with the noise generator seeded: the same text,
voice and parameters give the same samples, byte for byte, whatever was
synthesized before.  Requests to the worker are serialised under a lock; for
parallel synthesis use processes, not threads.
"""

from __future__ import annotations

import atexit
import functools
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

SAMPLE_RATE = 22050
"""espeak-ng's output rate (Hz)."""

DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
"""Voice variants (files in ``espeak-ng-data/voices/!v``) used to vary the speaker."""

RATE_LIMITS = (80, 450)  # words per minute, espeak-ng's accepted range
PITCH_LIMITS = (0, 99)  # espeak-ng base pitch scale
RANGE_LIMITS = (0, 99)  # espeak-ng pitch range scale (0: monotone)

DEFAULT_RATE_RANGE = (135, 205)
DEFAULT_PITCH_RANGE = (30, 70)
DEFAULT_INTONATION_RANGE = (25, 85)

SILENCE_DB = -40.0
"""A 5 ms frame is silent when its RMS is this far below the utterance's loudest."""
FRAME_S = 0.005
TRAILING_PAD_S = 0.1
"""Silence kept after the last word when the trailing silence is trimmed."""

_PUNCTUATION = ".,;:!?¿¡«»\"'()"
_WORKER_SCRIPT = Path(__file__).with_name("espeak_worker.py")


class _Engine:
    """The client of this process's espeak-ng worker (see :mod:`sense.demo.espeak_worker`).

    The worker process loads the library once and synthesizes every request
    in a fresh fork of its just-initialised state, so that the audio of a
    request does not depend on what was synthesized before.
    """

    def __init__(self, library_path: str, data_path: str):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER_SCRIPT), library_path, data_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            ready = pickle.load(self.process.stdout)
        except EOFError:
            ready = ("error", f"the worker exited with status {self.process.wait()}")
        if ready[0] != "ready":
            self.close()
            raise RuntimeError(f"espeak-ng worker for {library_path}: {ready[1]}")
        if ready[1] != SAMPLE_RATE:
            self.close()
            raise RuntimeError(
                f"espeak_Initialize with data {data_path} returned {ready[1]}, "
                f"expected the sample rate {SAMPLE_RATE}"
            )

    def close(self) -> None:
        """End the worker (it exits on EOF)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def run(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int):
        """Synthesize in the worker; return (int16 samples, word events)."""
        with self.lock:
            try:
                pickle.dump((text, voice, rate, pitch, pitch_range), self.process.stdin)
                self.process.stdin.flush()
                answer = pickle.load(self.process.stdout)
            except (OSError, EOFError) as error:
                raise RuntimeError(
                    f"the espeak-ng worker died (status {self.process.poll()}) on {text!r}"
                ) from error
        if answer[0] == "ok":
            return np.frombuffer(answer[1], dtype=np.int16).copy(), answer[2]
        _, kind, message = answer
        raise (ValueError if kind == "voice" else RuntimeError)(message)


_ENGINE: _Engine | None = None
_ENGINE_INIT_LOCK = threading.Lock()


def _engine(library_path: str, data_path: str) -> _Engine:
    """The process's engine, started on first use (and again in a forked child)."""
    global _ENGINE
    with _ENGINE_INIT_LOCK:
        alive = _ENGINE is not None and _ENGINE.process.poll() is None
        if not alive or _ENGINE.pid != os.getpid():
            if _ENGINE is not None and _ENGINE.pid == os.getpid():
                _ENGINE.close()
            _ENGINE = _Engine(library_path, data_path)
        return _ENGINE


@atexit.register
def _close_engine() -> None:
    if _ENGINE is not None and _ENGINE.pid == os.getpid():
        _ENGINE.close()


class Synthesis(NamedTuple):
    """One synthesized utterance."""

    waveform: np.ndarray  # [T] float32 in [-1, 1]
    sample_rate: int
    words: list[tuple[str, float, float]]  # (word, start s, end s), in order


class VoiceParams(NamedTuple):
    """The knobs that make two readings of one sentence differ."""

    variant: str | None
    rate: int
    pitch: int
    pitch_range: int


def _frame_energy_db(waveform: np.ndarray, frame: int) -> np.ndarray:
    """RMS per frame in dB relative to the loudest frame; [ceil(T / frame)]."""
    n_frames = -(-len(waveform) // frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: len(waveform)] = waveform
    rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1)) + 1e-10
    return 20 * np.log10(rms / rms.max())


def _word_spans(text: str, events: Sequence[tuple[int, int, int]], n_samples: int):
    """Sample spans of the whitespace-separated words of ``text``.

    Each word event marks the start of the word holding its character
    position.  Words without an event belong to the group of the word before
    them (or, at the start, after them) and share its span by letter count.
    Returns ``[(word, begin sample, end sample), ...]``, one per word, in order.
    """
    tokens = []  # (start char, end char, word)
    position = 0
    for word in text.split():
        start = text.index(word, position)
        position = start + len(word)
        tokens.append((start, position, word))
    if not tokens:
        return []
    starts: list[int | None] = [None] * len(tokens)
    for char_position, _, sample in sorted(events, key=lambda e: e[2]):
        offset = char_position - 1
        for k, (begin, end, _) in enumerate(tokens):
            if begin <= offset < end:
                if starts[k] is None:
                    starts[k] = min(max(sample, 0), n_samples)
                break
    if all(s is None for s in starts):
        starts[0] = 0
    # Leading words without an event join the first group.
    first = next(k for k, s in enumerate(starts) if s is not None)
    if first:
        starts[0], starts[first] = starts[first], None
    groups = [k for k, s in enumerate(starts) if s is not None]
    for previous, k in zip(groups, groups[1:]):  # keep the starts in order
        starts[k] = max(starts[k], starts[previous])
    spans = []
    for g, head in enumerate(groups):
        tail = groups[g + 1] if g + 1 < len(groups) else len(tokens)
        begin = starts[head]
        end = starts[tail] if tail < len(tokens) else n_samples
        end = max(end, begin)
        letters = [max(1, sum(c.isalnum() for c in tokens[k][2])) for k in range(head, tail)]
        edges = begin + np.round(np.cumsum([0] + letters) / sum(letters) * (end - begin))
        for k in range(head, tail):
            spans.append((tokens[k][2], int(edges[k - head]), int(edges[k - head + 1])))
    return spans


def _tighten(spans, energy_db: np.ndarray, frame: int):
    """Move each span's edges inward past silent frames (never to nothing)."""
    voiced = energy_db > SILENCE_DB
    tightened = []
    for word, begin, end in spans:
        first, last = begin // frame, max(begin // frame, (end - 1) // frame)
        inside = np.flatnonzero(voiced[first : last + 1])
        if len(inside):
            begin = max(begin, int(first + inside[0]) * frame)
            end = min(end, int(first + inside[-1] + 1) * frame)
        tightened.append((word, int(begin), int(max(end, begin + 1))))
    return tightened


class EspeakSynthesizer:
    """Text to speech with espeak-ng, returning word boundaries.

    Parameters
    ----------
    variants : sequence of str
        Voice variants :meth:`sample_params` chooses from; each must be a file
        in ``<data>/voices/!v``.
    rate_range, pitch_range, intonation_range : (int, int)
        Inclusive ranges :meth:`sample_params` draws speed (words per minute),
        base pitch (0-99) and pitch range (0-99) from.
    data_path, library_path : str, optional
        espeak-ng data folder and shared library; default: those shipped by
        ``espeakng-loader``.

    Example
    -------
    >>> tts = EspeakSynthesizer()
    >>> wav, sr, words = tts.synthesize("Le chat dort.", "fr", variant="f2")
    >>> wav.ndim, sr, [w for w, _, _ in words]
    (1, 22050, ['Le', 'chat', 'dort'])
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        variants: Sequence[str] = DEFAULT_VARIANTS,
        rate_range: tuple[int, int] = DEFAULT_RATE_RANGE,
        pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE,
        intonation_range: tuple[int, int] = DEFAULT_INTONATION_RANGE,
        data_path: str | None = None,
        library_path: str | None = None,
    ):
        if data_path is None or library_path is None:
            try:
                import espeakng_loader
            except ImportError as error:
                raise ImportError(
                    "EspeakSynthesizer needs the espeak-ng library and data of the PyPI "
                    "package espeakng-loader: pip install 'sense[demo]'"
                ) from error
            data_path = data_path or espeakng_loader.get_data_path()
            library_path = library_path or espeakng_loader.get_library_path()
        self.data_path = str(data_path)
        self.library_path = str(library_path)
        if not (Path(self.data_path) / "phontab").is_file():
            raise FileNotFoundError(
                f"{self.data_path} is not an espeak-ng data folder (no phontab)"
            )
        available = set(available_variants(self.data_path))
        missing = [v for v in variants if v not in available]
        if missing:
            raise ValueError(f"voice variants {missing} are not in {self.data_path}/voices/!v")
        if not variants:
            raise ValueError("at least one voice variant is needed")
        for name, (low, high), (lo, hi) in (
            ("rate_range", rate_range, RATE_LIMITS),
            ("pitch_range", pitch_range, PITCH_LIMITS),
            ("intonation_range", intonation_range, RANGE_LIMITS),
        ):
            if not lo <= low <= high <= hi:
                raise ValueError(f"{name} {(low, high)} must lie within [{lo}, {hi}]")
        self.variants = tuple(variants)
        self.rate_range = tuple(rate_range)
        self.pitch_range = tuple(pitch_range)
        self.intonation_range = tuple(intonation_range)

    def config(self) -> dict:
        """Arguments that rebuild an equivalent synthesizer (e.g. in a worker process)."""
        return {
            "variants": list(self.variants),
            "rate_range": list(self.rate_range),
            "pitch_range": list(self.pitch_range),
            "intonation_range": list(self.intonation_range),
            "data_path": self.data_path,
            "library_path": self.library_path,
        }

    def sample_params(self, rng: np.random.Generator, variant: str | None = None) -> VoiceParams:
        """Draw a variant (unless given), a speed, a pitch and a pitch range.

        Example
        -------
        >>> p = EspeakSynthesizer().sample_params(np.random.default_rng(0))
        >>> 135 <= p.rate <= 205
        True
        """
        if variant is None:
            variant = self.variants[int(rng.integers(len(self.variants)))]
        return VoiceParams(
            variant=variant,
            rate=int(rng.integers(self.rate_range[0], self.rate_range[1] + 1)),
            pitch=int(rng.integers(self.pitch_range[0], self.pitch_range[1] + 1)),
            pitch_range=int(rng.integers(self.intonation_range[0], self.intonation_range[1] + 1)),
        )

    def synthesize(
        self,
        text: str,
        lang: str,
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
        variant: str | None = None,
    ) -> Synthesis:
        """Speak ``text`` with the espeak-ng voice ``lang``.

        Parameters
        ----------
        text : str
            One sentence (UTF-8 text, no markup).
        lang : str
            An espeak-ng voice name: "en", "fr", "de", "es", "it", "ru", ...
        rate : int
            Speed in words per minute (80-450).
        pitch, pitch_range : int
            Base pitch and pitch range, 0-99 (50: the voice's default).
        variant : str, optional
            A voice variant from ``voices/!v`` ("m3", "f2", ...).

        Returns
        -------
        Synthesis
            ``(waveform [T] float32 at 22050 Hz, 22050, words)`` where ``words``
            lists ``(word, start_s, end_s)`` in order, within the waveform,
            punctuation stripped.  Trailing silence beyond 0.1 s is cut.

        Example
        -------
        >>> out = EspeakSynthesizer().synthesize("Guten Morgen.", "de", rate=150)
        >>> out.waveform.dtype, len(out.words)
        (dtype('float32'), 2)
        """
        if not text.strip():
            raise ValueError("cannot synthesize empty text")
        for name, value, (lo, hi) in (
            ("rate", rate, RATE_LIMITS),
            ("pitch", pitch, PITCH_LIMITS),
            ("pitch_range", pitch_range, RANGE_LIMITS),
        ):
            if not lo <= value <= hi:
                raise ValueError(f"{name}={value} outside espeak-ng's range [{lo}, {hi}]")
        if variant and variant not in available_variants(self.data_path):
            # espeak-ng would silently speak with the plain voice instead.
            raise ValueError(f"no voice variant {variant!r} in {self.data_path}/voices/!v")
        voice = f"{lang}+{variant}" if variant else lang
        engine = _engine(self.library_path, self.data_path)
        samples, events = engine.run(text, voice, int(rate), int(pitch), int(pitch_range))
        if len(samples) == 0:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
        waveform = samples.astype(np.float32) / 32768.0
        frame = int(FRAME_S * SAMPLE_RATE)
        energy_db = _frame_energy_db(waveform, frame)
        spans = _tighten(_word_spans(text, events, len(waveform)), energy_db, frame)
        spans = [(w.strip(_PUNCTUATION), b, e) for w, b, e in spans]
        spans = [(w, b, e) for w, b, e in spans if w]
        voiced = np.flatnonzero(energy_db > SILENCE_DB)
        end = int(voiced[-1] + 1) * frame + int(TRAILING_PAD_S * SAMPLE_RATE)
        end = max(end, max((e for _, _, e in spans), default=0))
        waveform = waveform[: min(end, len(waveform))]
        words = [(w, b / SAMPLE_RATE, e / SAMPLE_RATE) for w, b, e in spans]
        return Synthesis(waveform, SAMPLE_RATE, words)

    def synthesize_sampled(
        self, text: str, lang: str, rng: np.random.Generator
    ) -> tuple[Synthesis, VoiceParams]:
        """Synthesize with parameters drawn by :meth:`sample_params`."""
        params = self.sample_params(rng)
        return self.synthesize(text, lang, **params._asdict()), params


@functools.lru_cache(maxsize=8)
def available_variants(data_path: str) -> tuple[str, ...]:
    """Names of the voice variants in ``<data_path>/voices/!v``.

    Example
    -------
    >>> import espeakng_loader
    >>> "f2" in available_variants(espeakng_loader.get_data_path())
    True
    """
    folder = Path(data_path) / "voices" / "!v"
    if not folder.is_dir():
        raise FileNotFoundError(f"no voice variants folder {folder}")
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


@functools.lru_cache(maxsize=256)
def variant_gender(data_path: str, variant: str) -> str:
    """The ``gender`` a variant file declares ("male", "female"), or "" if none.

    Example
    -------
    >>> import espeakng_loader
    >>> variant_gender(espeakng_loader.get_data_path(), "f2")
    'female'
    """
    path = Path(data_path) / "voices" / "!v" / variant
    if not path.is_file():
        raise FileNotFoundError(f"no voice variant file {path}")
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "gender":
            return fields[1].lower()
    return ""
