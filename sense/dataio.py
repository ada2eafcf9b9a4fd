"""Audio reading, lengths and batching helpers shared by the library and recipes.

Lengths follow SpeechBrain: a ``lens`` tensor holds *relative* lengths in
(0, 1], the fraction of the padded time axis that an utterance really fills.

Audio is read with soundfile (wav, flac, mp3, ogg, ...), down-mixed to mono
and resampled with torchaudio; a file that cannot be used raises
:class:`AudioError`, which names the file and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import soundfile as sf
import torch
import torchaudio

SAMPLE_RATE = 16000
# Relative lengths may exceed 1 by float rounding (e.g. n / max(n) in another dtype).
LENS_TOLERANCE = 1e-6
AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64",
)  # fmt: skip
#: Audio formats soundfile (libsndfile) cannot decode: listed, never skipped silently.
UNSUPPORTED_AUDIO_EXTENSIONS = (".m4a", ".aac", ".mp4", ".wma", ".webm", ".amr", ".3gp")
UNSUPPORTED_AUDIO_REASON = (
    "audio format not supported: convert it to flac or wav (ffmpeg -i IN OUT.flac)"
)


class AudioError(ValueError):
    """An audio file that cannot be used: missing, unreadable or empty."""

    def __init__(self, path: str, problem: str, detail: str | None = None):
        super().__init__(f"{path}: {problem}" + (f" ({detail})" if detail else ""))
        self.path = path
        self.problem = problem
        self.detail = detail


def check_lengths(lens: torch.Tensor, batch: int) -> None:
    """Raise ``ValueError`` unless ``lens`` is [batch] with values in (0, 1].

    Example
    -------
    >>> check_lengths(torch.tensor([1.0, 0.5]), 2)
    """
    if lens.dim() != 1 or lens.shape[0] != batch:
        raise ValueError(f"lens must have shape [{batch}], got {tuple(lens.shape)}")
    if not torch.all((lens > 0) & (lens <= 1)):
        raise ValueError(f"relative lengths must lie in (0, 1], got {lens.tolist()}")


def check_waveform_batch(
    wavs: torch.Tensor, wav_lens: torch.Tensor | None, owner: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a padded batch of waveforms and return its lengths.

    Parameters
    ----------
    wavs : torch.Tensor
        [B, T] floating-point waveforms in [-1, 1].
    wav_lens : torch.Tensor, optional
        [B] relative lengths in (0, 1] (all ones when omitted).
    owner : str
        Name put in front of every error message (the module being called).

    Returns
    -------
    wav_lens : torch.Tensor
        [B] float32 relative lengths on the device of ``wavs``.
    num_samples : torch.Tensor
        [B] int64 number of real samples of each waveform.

    Raises
    ------
    TypeError, ValueError
        Naming ``owner`` and what is wrong with the batch.

    Example
    -------
    >>> check_waveform_batch(torch.zeros(2, 10), torch.tensor([1.0, 0.5]), "demo")[1]
    tensor([10,  5])
    """
    if not isinstance(wavs, torch.Tensor):
        raise TypeError(f"{owner}: wavs must be a torch.Tensor, got {type(wavs).__name__}")
    if wavs.dim() != 2:
        raise ValueError(f"{owner}: wavs must have shape [batch, time], got {tuple(wavs.shape)}")
    if wavs.numel() == 0:
        raise ValueError(f"{owner}: empty waveform batch of shape {tuple(wavs.shape)}")
    if not wavs.is_floating_point():
        raise ValueError(f"{owner}: wavs must be floating point in [-1, 1], got {wavs.dtype}")
    batch, time = wavs.shape
    if wav_lens is None:
        wav_lens = torch.ones(batch, device=wavs.device)
    if not isinstance(wav_lens, torch.Tensor) or wav_lens.shape != (batch,):
        shape = tuple(wav_lens.shape) if isinstance(wav_lens, torch.Tensor) else wav_lens
        raise ValueError(
            f"{owner}: wav_lens must be a tensor of shape [{batch}] (one relative length per "
            f"waveform), got {shape}"
        )
    wav_lens = wav_lens.to(device=wavs.device, dtype=torch.float32)
    if not bool(((wav_lens > 0) & (wav_lens <= 1 + LENS_TOLERANCE)).all()):  # also catches NaN
        raise ValueError(
            f"{owner}: wav_lens must be relative lengths in (0, 1], got {wav_lens.tolist()}"
        )
    return wav_lens, torch.round(wav_lens * time).long().clamp(max=time)


def abs_lengths(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """Absolute lengths [B] (int64, at least 1) of relative ``lens`` on ``max_len`` steps.

    Example
    -------
    >>> abs_lengths(torch.tensor([1.0, 0.5]), 10)
    tensor([10,  5])
    """
    return torch.round(lens * max_len).long().clamp(1, max_len)


def length_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean mask [B, max_len], True on real steps.

    Example
    -------
    >>> length_mask(torch.tensor([1.0, 0.5]), 4)
    tensor([[ True,  True,  True,  True],
            [ True,  True, False, False]])
    """
    steps = torch.arange(max_len, device=lens.device)
    return steps.unsqueeze(0) < abs_lengths(lens, max_len).unsqueeze(1)


def pad_batch(wavs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D waveforms into [B, T_max] with relative lengths [B].

    Example
    -------
    >>> w, l = pad_batch([torch.ones(4), torch.ones(2)])
    >>> w.shape, l
    (torch.Size([2, 4]), tensor([1.0000, 0.5000]))
    """
    if len(wavs) == 0:
        raise ValueError("cannot pad an empty list of waveforms")
    lengths = [int(w.shape[-1]) for w in wavs]
    if min(lengths) == 0:
        raise ValueError("cannot pad an empty waveform")
    out = wavs[0].new_zeros(len(wavs), max(lengths))
    for i, w in enumerate(wavs):
        out[i, : lengths[i]] = w
    return out, torch.tensor(lengths, dtype=torch.float32) / max(lengths)


@lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """A resampler whose sinc kernel is computed once per rate pair."""
    return torchaudio.transforms.Resample(orig, new)


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resample ``wav`` [..., T] from ``orig`` Hz to ``new`` Hz (kernel cached).

    Example
    -------
    >>> resample(torch.zeros(8000), 8000, 16000).shape
    torch.Size([16000])
    """
    if orig == new:
        return wav
    with torch.no_grad():
        return _resampler(orig, new)(wav)


def audio_info(path: str) -> tuple[int, int]:
    """Return ``(num_frames, sample_rate)`` of an audio file without decoding it all.

    Raises
    ------
    AudioError
        If the file is missing or not a readable audio file.
    """
    if not os.path.isfile(path):
        raise AudioError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(path)
    except Exception as err:  # soundfile raises several types for bad files
        raise AudioError(path, "unreadable audio", str(err)) from err
    return int(info.frames), int(info.samplerate)


def load_audio(
    path: str,
    sample_rate: int = SAMPLE_RATE,
    start: float | None = None,
    duration: float | None = None,
) -> torch.Tensor:
    """Read an audio file as a mono float32 waveform [T] at ``sample_rate``.

    Any format soundfile reads (wav, flac, mp3, ogg), any sample rate, any
    channel count: channels are averaged, the signal is resampled.

    Parameters
    ----------
    path : str
        Audio file.
    sample_rate : int
        Target rate in Hz (16 kHz for every encoder here).
    start, duration : float, optional
        Read only a segment, in seconds (e.g. a MUST-C segment of a talk).

    Raises
    ------
    AudioError
        Missing, unreadable, or empty file (or empty segment).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(p, np.zeros((8000, 2), dtype="float32"), 8000)
    >>> load_audio(p).shape
    torch.Size([16000])
    """
    num_frames, native_rate = audio_info(path)
    first = int(round((start or 0.0) * native_rate))
    count = -1 if duration is None else int(round(duration * native_rate))
    try:
        data, native_rate = sf.read(
            path, start=first, frames=count, dtype="float32", always_2d=True
        )
    except Exception as err:
        raise AudioError(path, "unreadable audio", str(err)) from err
    if data.shape[0] == 0:
        what = "empty audio" if num_frames == 0 else f"empty segment at {start or 0.0:.2f}s"
        raise AudioError(path, what)
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if not torch.isfinite(wav).all():
        raise AudioError(path, "audio holds NaN or infinite samples")
    return resample(wav, native_rate, sample_rate)


def find_audio_files(folder: str, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> list[str]:
    """Sorted audio files under ``folder`` (recursive), by extension.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.
    ValueError
        If it holds no audio file.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    found = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(tuple(extensions))
    )
    if not found:
        raise ValueError(f"{folder}: no audio files ({', '.join(extensions)})")
    return found


def find_unsupported_audio_files(folder: str) -> list[str]:
    """Sorted files under ``folder`` in an audio format :func:`load_audio` cannot read.

    Example
    -------
    >>> import tempfile
    >>> find_unsupported_audio_files(tempfile.mkdtemp())
    []
    """
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(UNSUPPORTED_AUDIO_EXTENSIONS)
    )
