"""Lengths, batches and audio files at their edges (the mutants of ``sense/dataio.py``)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from sense.dataio import (
    LENS_TOLERANCE,
    AudioError,
    abs_lengths,
    audio_info,
    check_lengths,
    check_waveform_batch,
    find_audio_files,
    find_unsupported_audio_files,
    load_audio,
    pad_batch,
)


def test_an_audio_error_names_the_file_the_problem_and_the_detail():
    err = AudioError("a.wav", "unreadable audio", "bad header")
    assert str(err) == "a.wav: unreadable audio (bad header)"
    assert (err.path, err.problem, err.detail) == ("a.wav", "unreadable audio", "bad header")
    assert str(AudioError("b.wav", "no such file")) == "b.wav: no such file"


@pytest.mark.parametrize(
    "lens, match",
    [
        (torch.ones(2, 1), r"shape \[2\]"),  # the right count, the wrong shape
        (torch.tensor([1.0, 0.0]), r"\(0, 1\]"),
        (torch.tensor([1.0, 1.5]), r"\(0, 1\]"),
    ],
)
def test_check_lengths_refuses(lens, match):
    with pytest.raises(ValueError, match=match):
        check_lengths(lens, 2)


def test_a_batch_of_one_sample_and_default_float32_lengths():
    lens, samples = check_waveform_batch(torch.zeros(1, 1), None, "demo")
    assert lens.tolist() == [1.0] and lens.dtype == torch.float32 and samples.tolist() == [1]
    lens, samples = check_waveform_batch(
        torch.zeros(2, 10), torch.tensor([1.0, 0.5], dtype=torch.float64), "demo"
    )
    assert lens.dtype == torch.float32 and samples.tolist() == [10, 5]


def test_lengths_a_rounding_error_above_one_are_accepted_and_clamped():
    over = torch.tensor([1.0 + LENS_TOLERANCE], dtype=torch.float64)
    assert check_waveform_batch(torch.zeros(1, 100), over, "demo")[1].tolist() == [100]
    assert abs_lengths(torch.tensor([1.0004]), 10_000).tolist() == [10_000]


@pytest.mark.parametrize(
    "wav_lens, match",
    [
        ([1.0, 1.0], r"demo: wav_lens must be a tensor of shape \[2\].*got \[1.0, 1.0\]"),
        (torch.ones(2, 1), r"got \(2, 1\)"),
        (torch.tensor([1.0, 0.0]), r"\(0, 1\], got \[1.0, 0.0\]"),
        (torch.tensor([1.0, 1.5]), r"\(0, 1\], got \[1.0, 1.5\]"),
        (torch.tensor([1.0, 1.0 + 3 * LENS_TOLERANCE]), r"\(0, 1\]"),
    ],
)
def test_check_waveform_batch_refuses(wav_lens, match):
    with pytest.raises(ValueError, match=match):
        check_waveform_batch(torch.zeros(2, 10), wav_lens, "demo")


def test_pad_batch_of_one_waveform_of_one_sample():
    wavs, lens = pad_batch([torch.full((1,), 0.5)])
    assert wavs.tolist() == [[0.5]] and lens.tolist() == [1.0] and lens.dtype == torch.float32
    with pytest.raises(ValueError, match="empty waveform"):
        pad_batch([torch.ones(2), torch.ones(0)])


def test_a_one_byte_file_is_unreadable_not_empty(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"R")
    with pytest.raises(AudioError, match="a.wav: unreadable audio"):
        audio_info(str(tmp_path / "a.wav"))


def test_an_empty_segment_says_where(tmp_path):
    path = str(tmp_path / "a.wav")
    sf.write(path, np.zeros(16000, dtype="float32"), 16000)
    with pytest.raises(AudioError, match=r"a.wav: empty segment at 5.00s"):
        load_audio(path, start=5.0, duration=1.0)
    with pytest.raises(AudioError, match=r"a.wav: empty segment at 0.00s"):
        load_audio(path, duration=0.0)


def test_audio_files_are_listed_with_their_folders(tmp_path):
    (tmp_path / "talk" / "part").mkdir(parents=True)
    sf.write(tmp_path / "talk" / "part" / "a.wav", np.zeros(160, dtype="float32"), 16000)
    for name in ("b.M4A", "c.wma", "d.txt"):
        (tmp_path / "talk" / name).write_bytes(b"x")
    assert find_audio_files(str(tmp_path)) == [str(tmp_path / "talk" / "part" / "a.wav")]
    assert find_unsupported_audio_files(str(tmp_path)) == [
        str(tmp_path / "talk" / "b.M4A"),
        str(tmp_path / "talk" / "c.wma"),
    ]
