"""W2VBertFbank against transformers' SeamlessM4TFeatureExtractor."""

import math

import numpy as np
import pytest
import torch
from transformers import SeamlessM4TFeatureExtractor

from sense.features import W2VBertFbank, kaldi_mel_filter_bank, num_fbank_frames

SAMPLE_RATE = 16000
# 0.7 s, 1.3 s and 2.1 s, nudged so that two of them have an odd number of
# 10 ms frames: the stride-2 stacking must drop the odd last frame as HF does.
LENGTHS = (11300, 20960, 33600)
TOLERANCE = 1e-3


def make_utterances(lengths=LENGTHS, seed=0):
    """Noise plus a sine per utterance, float32 in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    wavs = []
    for i, n in enumerate(lengths):
        t = torch.arange(n) / SAMPLE_RATE
        sine = 0.4 * torch.sin(2 * math.pi * (220 + 150 * i) * t)
        wavs.append(0.1 * torch.randn(n, generator=gen) + sine)
    return wavs


def pad(wavs):
    """Padded batch and SpeechBrain relative lengths."""
    longest = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), longest)
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = w
    return batch, torch.tensor([len(w) / longest for w in wavs])


@pytest.fixture(scope="module")
def hf_extractor():
    return SeamlessM4TFeatureExtractor()


def test_mel_filter_bank_matches_transformers(hf_extractor):
    ours = kaldi_mel_filter_bank().numpy()
    assert ours.shape == hf_extractor.mel_filters.shape
    np.testing.assert_allclose(ours, hf_extractor.mel_filters, atol=1e-10)


def test_matches_transformers_on_a_padded_batch(hf_extractor):
    wavs = make_utterances()
    ref = hf_extractor([w.numpy() for w in wavs], sampling_rate=SAMPLE_RATE, return_tensors="pt")
    ref_counts = ref["attention_mask"].sum(dim=1)

    batch, lens = pad(wavs)
    feats, feat_lens = W2VBertFbank()(batch, lens)

    counts = torch.round(feat_lens * feats.shape[1]).long()
    assert counts.tolist() == ref_counts.tolist()
    assert feats.shape[-1] == ref["input_features"].shape[-1] == 160
    assert feats.dtype == torch.float32
    for i, n in enumerate(counts.tolist()):
        diff = (feats[i, :n] - ref["input_features"][i, :n]).abs().max().item()
        assert diff <= TOLERANCE, f"utterance {i}: max abs difference {diff}"
        assert torch.all(feats[i, n:] == 0.0), "padded frames must hold the padding value"


def test_frame_counts_follow_transformers_for_many_lengths(hf_extractor):
    lengths = [560, 561, 719, 720, 880, 16000, 16160, 16321]
    wavs = make_utterances(lengths)
    for w in wavs:
        ref = hf_extractor(w.numpy(), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        expected = int(ref["attention_mask"].sum())
        assert W2VBertFbank.output_frames(torch.tensor(len(w))).item() == expected
        feats, feat_lens = W2VBertFbank()(w[None], torch.ones(1))
        assert feats.shape[1] == expected and feat_lens.item() == 1.0


def test_utterance_does_not_depend_on_its_batch():
    fbank = W2VBertFbank()
    wavs = make_utterances()
    batch, lens = pad(wavs)
    feats, feat_lens = fbank(batch, lens)
    for i, w in enumerate(wavs):
        alone, alone_lens = fbank(w[None], torch.ones(1))
        n = alone.shape[1]
        assert round(feat_lens[i].item() * feats.shape[1]) == n
        torch.testing.assert_close(feats[i, :n], alone[0], atol=1e-5, rtol=0)


def test_garbage_in_the_padding_changes_nothing():
    fbank = W2VBertFbank()
    batch, lens = pad(make_utterances())
    noisy = batch.clone()
    for i, rel in enumerate(lens.tolist()):
        n = round(rel * batch.shape[1])
        noisy[i, n:] = torch.randn(batch.shape[1] - n)
    torch.testing.assert_close(fbank(noisy, lens)[0], fbank(batch, lens)[0])


def test_float32_under_autocast():
    fbank = W2VBertFbank()
    batch, lens = pad(make_utterances())
    ref, _ = fbank(batch, lens)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        feats, _ = fbank(batch, lens)
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats, ref)


def test_default_lens_are_full_and_counts_helper():
    feats, feat_lens = W2VBertFbank()(torch.randn(2, 32000))
    assert feats.shape == (2, 99, 160)
    assert feat_lens.tolist() == [1.0, 1.0]
    assert num_fbank_frames(torch.tensor([399, 400, 32000])).tolist() == [0, 1, 198]


@pytest.mark.parametrize(
    "wavs, lens, match",
    [
        (torch.zeros(2, 0), torch.ones(2), "empty"),
        (torch.zeros(0, 1000), torch.ones(0), "empty"),
        (torch.zeros(16000), torch.ones(1), r"shape \[batch, time\]"),
        (torch.zeros(1, 1, 16000), torch.ones(1), r"shape \[batch, time\]"),
        (torch.zeros(2, 16000), torch.tensor([1.0, 0.0]), r"\(0, 1\]"),
        (torch.zeros(2, 16000), torch.tensor([1.0, 1.5]), r"\(0, 1\]"),
        (torch.zeros(2, 16000), torch.tensor([1.0, -0.2]), r"\(0, 1\]"),
        (torch.zeros(2, 16000), torch.tensor([1.0, float("nan")]), r"\(0, 1\]"),
        (torch.zeros(2, 16000), torch.ones(3), "shape"),
        (torch.zeros(2, 16000), torch.tensor([1.0, 0.02]), r"utterance\(s\) \[1\]"),
        (torch.zeros(2, 500), torch.ones(2), "at least 560"),
        (torch.zeros(2, 16000, dtype=torch.int16), torch.ones(2), "floating point"),
    ],
)
def test_bad_inputs_raise(wavs, lens, match):
    with pytest.raises(ValueError, match=match):
        W2VBertFbank()(wavs, lens)


def test_constants_stay_out_of_the_state_dict():
    fbank = W2VBertFbank()
    assert len(fbank.state_dict()) == 0
    assert fbank.output_dim == 160
