"""Audio sent to the server (a file, a browser's recording) decoded to a mono waveform.

soundfile reads it first, as :func:`sense.dataio.load_audio` reads a file (a
wav upload embeds exactly as ``sense search --audio`` embeds the file); PyAV
(FFmpeg) reads the rest, e.g. the webm/opus that Chromium's MediaRecorder
records, or m4a.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import torch

from sense.dataio import SAMPLE_RATE, AudioError, resample

#: The largest upload decoded (bytes): about 50 minutes of 16 kHz wav.
MAX_UPLOAD_BYTES = 100 << 20


def decode_audio(data: bytes, name: str, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``[T]`` float32 mono waveform at ``sample_rate`` of an audio file's bytes.

    Raises
    ------
    sense.dataio.AudioError
        Empty, too large, not audio, or silent of samples (naming ``name``).

    Example
    -------
    >>> buffer = io.BytesIO()
    >>> sf.write(buffer, np.zeros((8000, 2), np.float32), 8000, format="WAV")
    >>> decode_audio(buffer.getvalue(), "a.wav").shape
    torch.Size([16000])
    """
    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise AudioError(name, f"{len(data)} bytes; at most {MAX_UPLOAD_BYTES} are decoded")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001 - soundfile raises several types; FFmpeg tries next
        samples, rate = _decode_with_av(data, name)
    if samples.shape[0] == 0:
        raise AudioError(name, "empty audio")
    wav = torch.from_numpy(np.ascontiguousarray(samples.mean(axis=1)))
    if not torch.isfinite(wav).all():
        raise AudioError(name, "audio holds NaN or infinite samples")
    return resample(wav, rate, sample_rate)


def _decode_with_av(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """``([T, C] float32, rate)`` decoded by FFmpeg (PyAV), all channels kept."""
    try:
        import av
    except ImportError as err:
        raise AudioError(
            name, "unreadable audio", "not a format soundfile reads; install av to read more"
        ) from err
    chunks, rate = [], None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError(name, "unreadable audio", "the file holds no audio stream")
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks.append(_frame_samples(frame))
    except av.FFmpegError as err:
        raise AudioError(name, "unreadable audio", _ffmpeg_reason(err)) from err
    if not chunks:
        raise AudioError(name, "empty audio")
    return np.concatenate(chunks), int(rate)


def _frame_samples(frame) -> np.ndarray:
    """``[T, C]`` float32 samples of a decoded frame, planar or packed, any sample format."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        array = array.T  # [C, T] -> [T, C]
    else:
        array = array.reshape(-1, channels)
    if array.dtype.kind == "i":  # integer PCM to [-1, 1]
        array = array / float(np.iinfo(array.dtype).max + 1)
    elif array.dtype.kind == "u":
        array = array / 128.0 - 1.0
    return np.asarray(array, dtype=np.float32)


def _ffmpeg_reason(err: Exception) -> str:
    """FFmpeg's reason without the errno and the file name it adds.

    Example
    -------
    >>> class Err(Exception):
    ...     strerror = "Invalid data found when processing input"
    >>> _ffmpeg_reason(Err())
    'Invalid data found when processing input'
    """
    return getattr(err, "strerror", None) or str(err)
