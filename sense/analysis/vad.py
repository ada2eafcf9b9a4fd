"""Voice activity: the Silero VAD speech probability over time (the paper's orange curve).

The ``silero-vad`` package ships its model, so nothing is downloaded. The
model scores windows of 512 samples (32 ms) at 16 kHz; :class:`SileroVAD`
returns one speech probability per window with the window's centre time.

Example
-------
>>> import torch
>>> vad = SileroVAD()
>>> times, probs = vad.speech_probabilities(torch.zeros(16000))
>>> len(times) == len(probs) == 32, bool(probs.max() < 0.5)
(True, True)
"""

from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE = 16000
#: Samples per window of the Silero model at 16 kHz.
WINDOW = 512
INSTALL_HINT = "pip install silero-vad (or the 'analysis' extra: pip install 'sense[analysis]')"


def _load_model():
    # Importing silero_vad calls torch.set_num_threads(1) for the whole
    # process: put the caller's thread count back.
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ImportError as err:
        raise ImportError(f"voice activity needs the silero-vad package: {INSTALL_HINT}") from err
    finally:
        torch.set_num_threads(threads)
    return load_silero_vad()


class SileroVAD:
    """Speech probability over time from the Silero VAD model of the installed package.

    The model runs on the CPU (it is small and sequential).
    """

    def __init__(self):
        self.model = _load_model()

    @torch.no_grad()
    def speech_probabilities(
        self, wav: torch.Tensor, sample_rate: int = SAMPLE_RATE
    ) -> tuple[np.ndarray, np.ndarray]:
        """Speech probability of each 32 ms window of a mono waveform.

        Parameters
        ----------
        wav : torch.Tensor
            [T] mono waveform at ``sample_rate`` (16 kHz: resample first).
        sample_rate : int
            Must be 16000.

        Returns
        -------
        times : numpy.ndarray
            [W] centre of each window in seconds.
        probs : numpy.ndarray
            [W] speech probabilities in [0, 1].
        """
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"the VAD takes {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(-1).cpu()
        if wav.numel() == 0:
            raise ValueError("empty waveform")
        # One 32 ms window at a time, through a recurrent state: one thread is
        # several times faster than two (thread hand-offs dominate such small ops).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            probs = self.model.audio_forward(wav, sample_rate)
        finally:
            torch.set_num_threads(threads)
        probs = probs.reshape(-1).numpy().astype(np.float64)
        times = (np.arange(probs.size) + 0.5) * WINDOW / sample_rate
        return times, probs
