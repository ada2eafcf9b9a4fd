import numpy as np
import pytest
import soundfile as sf
import torch

from sense.dataio import (
    AudioError,
    abs_lengths,
    find_audio_files,
    length_mask,
    load_audio,
    pad_batch,
)

SR = 16000


def _tone(seconds, rate, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32")


def test_formats_rates_and_channels_agree(tmp_path):
    ref = _tone(1.0, SR)
    sf.write(tmp_path / "a.wav", ref, SR)
    sf.write(tmp_path / "b.wav", _tone(1.0, 8000), 8000)
    stereo = np.stack([_tone(1.0, 44100)] * 2, axis=1)
    sf.write(tmp_path / "c.flac", stereo, 44100)
    sf.write(tmp_path / "d.mp3", _tone(1.0, 44100), 44100)
    wavs = {
        name: load_audio(str(tmp_path / name)) for name in ("a.wav", "b.wav", "c.flac", "d.mp3")
    }
    for name, wav in wavs.items():
        assert wav.dtype == torch.float32 and wav.dim() == 1
        assert abs(wav.shape[0] - SR) < 0.06 * SR, name  # mp3 adds encoder padding
    # same tone, same energy
    for name in ("b.wav", "c.flac"):
        assert abs(wavs[name].pow(2).mean() - wavs["a.wav"].pow(2).mean()) < 2e-3
    # same pitch: a wrong rate or resampling would move the 440 Hz peak
    for name, wav in wavs.items():
        spectrum = torch.fft.rfft(wav[:SR] * torch.hann_window(min(SR, len(wav))), n=SR).abs()
        assert int(spectrum.argmax()) == pytest.approx(440, abs=2), name


def test_ogg_and_a_stretch_of_silence_keep_their_timing(tmp_path):
    """A tone, 0.5 s of silence, a tone: the silence must stay where it is after decoding."""
    wav = np.concatenate([_tone(0.5, 44100), np.zeros(22050, "float32"), _tone(0.5, 44100, 880)])
    sf.write(tmp_path / "e.ogg", wav, 44100)
    out = load_audio(str(tmp_path / "e.ogg"))
    assert abs(out.shape[0] - 1.5 * SR) < 0.02 * SR
    quiet = out[int(0.6 * SR) : int(0.9 * SR)].abs().max()
    loud = out[int(1.1 * SR) : int(1.4 * SR)]
    assert quiet < 0.01 and loud.abs().max() > 0.2
    peak = torch.fft.rfft(loud * torch.hann_window(len(loud)), n=SR).abs().argmax()
    assert int(peak) == pytest.approx(880, abs=2)


def test_segment_reading(tmp_path):
    sf.write(tmp_path / "a.wav", np.arange(SR * 2, dtype="float32") / (SR * 2), SR)
    seg = load_audio(str(tmp_path / "a.wav"), start=0.5, duration=0.25)
    assert seg.shape[0] == SR // 4
    assert seg[0] == pytest.approx(0.25, abs=1e-4)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        load_audio(str(tmp_path / "missing.wav"))
    (tmp_path / "junk.wav").write_bytes(b"this is not audio")
    with pytest.raises(AudioError, match="junk.wav: unreadable audio"):
        load_audio(str(tmp_path / "junk.wav"))
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype="float32"), SR)
    with pytest.raises(AudioError, match="empty.wav: empty audio"):
        load_audio(str(tmp_path / "empty.wav"))


def test_find_audio_files(tmp_path):
    with pytest.raises(ValueError, match="no audio files"):
        find_audio_files(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        find_audio_files(str(tmp_path / "nope"))
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "x.FLAC", _tone(0.1, SR), SR, format="FLAC")
    (tmp_path / "notes.txt").write_text("hi")
    assert [p.rsplit("/", 1)[-1] for p in find_audio_files(str(tmp_path))] == ["x.FLAC"]


def test_lengths_and_masks():
    lens = torch.tensor([1.0, 0.5, 0.01])
    assert abs_lengths(lens, 10).tolist() == [10, 5, 1]
    assert length_mask(lens, 10).sum(1).tolist() == [10, 5, 1]
    wavs, rel = pad_batch([torch.ones(3), torch.ones(6)])
    assert wavs.shape == (2, 6) and rel.tolist() == [0.5, 1.0] and wavs[0, 3:].sum() == 0
    with pytest.raises(ValueError):
        pad_batch([])
