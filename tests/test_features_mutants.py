"""W2VBertFbank's less travelled inputs, against transformers (the mutants of ``sense/features.py``)."""

import numpy as np
import pytest
import torch
from transformers import SeamlessM4TFeatureExtractor
from transformers.audio_utils import mel_filter_bank, window_function

from sense.features import W2VBertFbank, povey_window


def test_digital_silence_is_finite_and_as_in_transformers():
    # Common Voice has clips of digital silence: every bin is the log of the mel
    # floor, its variance is 0, and (x - mean) / sqrt(var + eps) is finite. Both
    # implementations take the mean in float32: its rounding leaves -0.003, not 0.
    wavs = torch.zeros(2, 16000)
    wavs[1] = 0.3 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    feats, _ = W2VBertFbank()(wavs)
    ref = SeamlessM4TFeatureExtractor()(wavs[0].numpy(), sampling_rate=16000, return_tensors="pt")
    torch.testing.assert_close(feats[0], ref["input_features"][0], rtol=0, atol=1e-6)
    assert feats[0].abs().max() < 0.01
    assert torch.isfinite(feats[1]).all()


def test_povey_window_is_transformers_in_float64():
    ours = povey_window()
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(
        ours.numpy(), window_function(400, "povey", periodic=False), rtol=0, atol=1e-15
    )


def test_mel_filters_follow_the_sample_rate():
    ours = W2VBertFbank(sample_rate=8000).mel_filters.double().numpy()
    ref = mel_filter_bank(
        num_frequency_bins=257,
        num_mel_filters=80,
        min_frequency=20.0,
        max_frequency=4000.0,
        sampling_rate=8000,
        norm=None,
        mel_scale="kaldi",
        triangularize_in_mel_space=True,
    )
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)


def test_stride_one_is_the_unstacked_frames():
    wavs = torch.randn(2, 16160, generator=torch.Generator().manual_seed(1))
    lens = torch.tensor([1.0, 0.7])
    one, one_lens = W2VBertFbank(stride=1)(wavs, lens)
    two, two_lens = W2VBertFbank(stride=2)(wavs, lens)
    assert one.shape == (2, 99, 80) and two.shape == (2, 49, 160)
    assert (one_lens * 99).round().tolist() == [99.0, 69.0]
    assert (two_lens * 49).round().tolist() == [49.0, 34.0]
    torch.testing.assert_close(one[0, :98].reshape(49, 160), two[0], rtol=0, atol=0)
    torch.testing.assert_close(one[1, :68].reshape(34, 160), two[1, :34], rtol=0, atol=0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        W2VBertFbank(stride=0)


def test_repr_and_errors_name_the_front_end():
    fbank = W2VBertFbank()
    assert fbank.extra_repr() == "num_mel_bins=80, stride=2, padding_value=0.0, sample_rate=16000"
    with pytest.raises(ValueError, match=r"^W2VBertFbank: "):
        fbank(torch.zeros(1, 1, 16000))
