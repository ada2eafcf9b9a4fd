"""Batched torch front-end of w2v-BERT 2.0.

w2v-BERT 2.0 does not read the waveform: it reads 80 Kaldi-style log-mel
filterbanks, normalised per utterance and stacked two by two into 160-dim
frames at 50 Hz. transformers computes them with ``SeamlessM4TFeatureExtractor``
in numpy, one utterance and one frame at a time, on the CPU.
:class:`W2VBertFbank` computes the same numbers for a whole padded batch at
once, in torch, on the device the batch lives on, so it can sit inside a
model's ``forward``.

Every constant below is the one hard-coded in the transformers extractor.

Example
-------
>>> fbank = W2VBertFbank()
>>> feats, feat_lens = fbank(torch.randn(2, 32000), torch.tensor([1.0, 0.5]))
>>> feats.shape, (feat_lens * feats.shape[1]).round().tolist()
(torch.Size([2, 99, 160]), [99.0, 49.0])
"""

from __future__ import annotations

import torch
from torch import nn

from sense.dataio import check_waveform_batch

SAMPLE_RATE = 16000
# Kaldi compliance: the extractor scales [-1, 1] floats to 16-bit integer range.
WAVEFORM_SCALE = 2.0**15
FRAME_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
FFT_LENGTH = 512
NUM_FREQUENCY_BINS = FFT_LENGTH // 2 + 1
POVEY_EXPONENT = 0.85
PREEMPHASIS = 0.97
MIN_FREQUENCY = 20.0
MEL_FLOOR = 1.192092955078125e-07  # float32 machine epsilon, as in Kaldi
NORM_EPS = 1e-7
NUM_MEL_BINS = 80
STRIDE = 2
PADDING_VALUE = 0.0
# Relative lengths computed as ``len / max_len`` in float32 may overshoot 1 by a rounding error.


def kaldi_hertz_to_mel(freq: torch.Tensor) -> torch.Tensor:
    """Kaldi mel scale: ``1127 ln(1 + f / 700)``.

    Example
    -------
    >>> kaldi_hertz_to_mel(torch.tensor([0.0, 700.0])).round().tolist()
    [0.0, 781.0]
    """
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_filter_bank(
    num_mel_bins: int = NUM_MEL_BINS,
    sample_rate: int = SAMPLE_RATE,
    num_frequency_bins: int = NUM_FREQUENCY_BINS,
    min_frequency: float = MIN_FREQUENCY,
) -> torch.Tensor:
    """Triangular filters, spaced and shaped on the Kaldi mel scale.

    The same matrix as transformers' ``mel_filter_bank(..., norm=None,
    mel_scale="kaldi", triangularize_in_mel_space=True)``, computed in float64.

    Parameters
    ----------
    num_mel_bins : int
        Number of triangular filters.
    sample_rate : int
        Sampling rate in Hz; the filters span ``[min_frequency, sample_rate // 2]``.
    num_frequency_bins : int
        Number of one-sided FFT bins (``fft_length // 2 + 1``).
    min_frequency : float
        Lower edge of the first filter in Hz.

    Returns
    -------
    torch.Tensor
        ``[num_frequency_bins, num_mel_bins]`` float64.

    Example
    -------
    >>> kaldi_mel_filter_bank().shape
    torch.Size([257, 80])
    """
    dtype = torch.float64
    mel_min = kaldi_hertz_to_mel(torch.tensor(min_frequency, dtype=dtype))
    mel_max = kaldi_hertz_to_mel(torch.tensor(float(sample_rate // 2), dtype=dtype))
    mel_edges = torch.linspace(float(mel_min), float(mel_max), num_mel_bins + 2, dtype=dtype)
    bin_width = sample_rate / ((num_frequency_bins - 1) * 2)
    fft_mels = kaldi_hertz_to_mel(bin_width * torch.arange(num_frequency_bins, dtype=dtype))

    edge_gaps = mel_edges.diff()
    slopes = mel_edges[None, :] - fft_mels[:, None]
    down_slopes = -slopes[:, :-2] / edge_gaps[:-1]
    up_slopes = slopes[:, 2:] / edge_gaps[1:]
    return torch.minimum(down_slopes, up_slopes).clamp_min(0.0)


def povey_window(length: int = FRAME_LENGTH) -> torch.Tensor:
    """Symmetric Hann window raised to the power 0.85 (Kaldi's default).

    Example
    -------
    >>> povey_window().shape
    torch.Size([400])
    """
    return torch.hann_window(length, periodic=False, dtype=torch.float64).pow(POVEY_EXPONENT)


def num_fbank_frames(num_samples: torch.Tensor) -> torch.Tensor:
    """Number of 25 ms / 10 ms frames of a waveform (no centring), 0 if shorter than one.

    Example
    -------
    >>> num_fbank_frames(torch.tensor([399, 400, 559, 560, 32000])).tolist()
    [0, 1, 1, 2, 198]
    """
    frames = torch.div(num_samples - FRAME_LENGTH, HOP_LENGTH, rounding_mode="floor") + 1
    return frames.clamp_min(0)


class W2VBertFbank(nn.Module):
    """w2v-BERT 2.0 input features of a padded batch, on the batch's device.

    Reproduces transformers' ``SeamlessM4TFeatureExtractor`` (the extractor of
    ``facebook/w2v-bert-2.0``) frame for frame:

    1. scale the waveform by ``2**15``;
    2. cut 400-sample frames every 160 samples (no centring), remove each
       frame's DC offset, pre-emphasise (0.97), apply the Povey window;
    3. 512-point power spectrum, 80 Kaldi mel filters, ``log(max(e, eps))``;
    4. per utterance and mel bin, subtract the mean and divide by the standard
       deviation (``ddof=1``) over the utterance's real frames only;
    5. stack consecutive frames two by two (``[f0 f1] [f2 f3] ...``) into
       160-dim frames at 50 Hz. An odd last frame is dropped, as transformers
       masks it out.

    An utterance of ``n`` samples thus gives ``((n - 400) // 160 + 1) // 2``
    frames (:meth:`output_frames`), whatever batch it is in. Frames past an
    utterance's end hold ``padding_value``. The computation runs in float32
    with autocast disabled, whatever the caller's precision.

    Parameters
    ----------
    num_mel_bins : int
        Mel filters per 10 ms frame (80 for w2v-BERT 2.0).
    stride : int
        Number of consecutive frames stacked into one output frame.
    padding_value : float
        Value of the output frames past each utterance's end.
    sample_rate : int
        Sampling rate of the input, in Hz (only sets the top mel edge, as in
        transformers; w2v-BERT 2.0 expects 16 kHz).

    Example
    -------
    >>> fbank = W2VBertFbank()
    >>> wavs = torch.randn(3, 16000)
    >>> feats, feat_lens = fbank(wavs, torch.tensor([1.0, 0.8, 0.5]))
    >>> feats.shape
    torch.Size([3, 49, 160])
    >>> W2VBertFbank.output_frames(torch.tensor([16000, 12800, 8000])).tolist()
    [49, 39, 24]
    """

    def __init__(
        self,
        num_mel_bins: int = NUM_MEL_BINS,
        stride: int = STRIDE,
        padding_value: float = PADDING_VALUE,
        sample_rate: int = SAMPLE_RATE,
    ):
        super().__init__()
        if stride < 1:
            raise ValueError(f"W2VBertFbank: stride must be >= 1, got {stride}")
        self.num_mel_bins = num_mel_bins
        self.stride = stride
        self.padding_value = float(padding_value)
        self.sample_rate = sample_rate
        self.output_dim = num_mel_bins * stride
        # Constants, rebuilt at construction: kept out of the state dict.
        mel_filters = kaldi_mel_filter_bank(num_mel_bins, sample_rate)
        self.register_buffer("mel_filters", mel_filters.float(), persistent=False)
        self.register_buffer("window", povey_window().float(), persistent=False)

    @staticmethod
    def output_frames(num_samples: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
        """Number of stacked output frames for utterances of ``num_samples`` samples.

        Example
        -------
        >>> W2VBertFbank.output_frames(torch.tensor([32000])).tolist()
        [99]
        """
        return torch.div(num_fbank_frames(num_samples), stride, rounding_mode="floor")

    @staticmethod
    def min_samples(stride: int = STRIDE) -> int:
        """Fewest samples that give one output frame (560 at stride 2, i.e. 35 ms).

        Example
        -------
        >>> W2VBertFbank.min_samples()
        560
        """
        return FRAME_LENGTH + (stride - 1) * HOP_LENGTH

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the stacked, normalised log-mel features of a padded batch.

        Parameters
        ----------
        wavs : torch.Tensor
            ``[B, T]`` float waveforms in [-1, 1] at 16 kHz, padded at the end.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths in (0, 1]; ``None`` means all 1.

        Returns
        -------
        feats : torch.Tensor
            ``[B, T', num_mel_bins * stride]`` float32, ``T' = output_frames(T)``.
        feat_lens : torch.Tensor
            ``[B]`` relative lengths of the features in (0, 1], float32.
        """
        num_samples = self._check_inputs(wavs, wav_lens)
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            log_mel = self._log_mel(wavs.float())  # [B, N, M]
            num_frames = num_fbank_frames(num_samples)  # [B]
            frame_mask = torch.arange(log_mel.shape[1], device=wavs.device) < num_frames[:, None]
            normed = self._normalise(log_mel, frame_mask, num_frames)
            return self._stack(normed, num_frames)

    def _check_inputs(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None) -> torch.Tensor:
        """Validate the batch; return the absolute number of samples of each utterance."""
        _, num_samples = check_waveform_batch(wavs, wav_lens, "W2VBertFbank")
        min_samples = self.min_samples(self.stride)
        too_short = num_samples < min_samples
        if bool(too_short.any()):
            short = too_short.nonzero().flatten().tolist()
            raise ValueError(
                f"W2VBertFbank: utterance(s) {short} have {num_samples[short].tolist()} samples; "
                f"at least {min_samples} ({1000 * min_samples / self.sample_rate:g} ms) are "
                "needed for one feature frame"
            )
        return num_samples

    def _log_mel(self, wavs: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` float32 waveforms -> ``[B, N, num_mel_bins]`` log-mel energies."""
        frames = (wavs * WAVEFORM_SCALE).unfold(-1, FRAME_LENGTH, HOP_LENGTH)  # [B, N, 400]
        frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = torch.cat(
            (
                frames[..., :1] * (1.0 - PREEMPHASIS),
                frames[..., 1:] - PREEMPHASIS * frames[..., :-1],
            ),
            dim=-1,
        )
        spectrum = torch.fft.rfft(frames * self.window.float(), n=FFT_LENGTH)  # [B, N, 257]
        power = spectrum.real.square() + spectrum.imag.square()
        # buffers in float32 even in a module cast to half: the features always are
        return torch.matmul(power, self.mel_filters.float()).clamp_min(MEL_FLOOR).log()

    @staticmethod
    def _normalise(
        log_mel: torch.Tensor, frame_mask: torch.Tensor, num_frames: torch.Tensor
    ) -> torch.Tensor:
        """Zero mean, unit variance (``ddof=1``) per utterance and bin, over real frames."""
        mask = frame_mask.unsqueeze(-1)  # [B, N, 1]
        count = num_frames[:, None, None]  # [B, 1, 1]
        centred = log_mel - (log_mel * mask).sum(dim=1, keepdim=True) / count
        var = (centred.square() * mask).sum(dim=1, keepdim=True) / (count - 1)
        return centred / torch.sqrt(var + NORM_EPS)

    def _stack(
        self, feats: torch.Tensor, num_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack ``stride`` consecutive frames; pad past each utterance's last full stack."""
        batch, frames, bins = feats.shape
        out_frames = frames // self.stride
        stacked = feats[:, : out_frames * self.stride].reshape(
            batch, out_frames, bins * self.stride
        )
        out_counts = torch.div(num_frames, self.stride, rounding_mode="floor")
        valid = torch.arange(out_frames, device=feats.device) < out_counts[:, None]
        stacked = stacked.masked_fill(~valid.unsqueeze(-1), self.padding_value)
        return stacked, out_counts.float() / out_frames

    def extra_repr(self) -> str:
        return (
            f"num_mel_bins={self.num_mel_bins}, stride={self.stride}, "
            f"padding_value={self.padding_value}, sample_rate={self.sample_rate}"
        )


__all__ = [
    "W2VBertFbank",
    "kaldi_mel_filter_bank",
    "povey_window",
    "num_fbank_frames",
]
