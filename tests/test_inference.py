"""Export folder, SENSE.from_hparams, audio formats, batch independence, long files, errors."""

import json
import os
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from sense.dataio import AudioError
from sense.export import (
    ENCODER_DIR,
    HPARAMS_FILE,
    META_FILE,
    POOLING_FILE,
    WindowSettings,
    export_model,
)
from sense.inference import SENSE, WindowEmbeddings
from sense.lobes.speech import HFSpeechEncoder
from sense.lobes.text import SentenceEncoder, TeacherSpec
from sense.nnet.pooling import AttentivePooling
from sense.windows import PoolAccumulator, plan_silence_windows, plan_windows

SR = 16000
# Small long-recording settings so that a 5 s file is "long".
MAX_DURATION, WINDOW, OVERLAP = 3.0, 2.0, 0.5


def make_signal(f0: float, seed: int, duration: float = 1.5):
    """A harmonic tone with noise, band-limited below 4 kHz: ``(8 kHz version, 16 kHz version)``.

    The 16 kHz version is the 8 kHz one resampled, so both hold the same
    information and an 8 kHz file of it loses nothing.
    """
    t = np.arange(int(duration * SR)) / SR
    rng = np.random.default_rng(seed)
    partials = [(0.3, 1), (0.2, 2), (0.1, 5.5), (0.05, 13)]
    sig = sum(a * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) for a, h in partials)
    sig = sig * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))
    low = torchaudio.functional.resample(torch.from_numpy(sig.astype(np.float32)), SR, 8000)
    return low, torchaudio.functional.resample(low, 8000, SR)


def build_model(folder, speech_dir, teacher_dir, **kwargs):
    encoder = HFSpeechEncoder(speech_dir)
    torch.manual_seed(0)
    pooling = AttentivePooling(encoder.output_dim)
    settings = dict(max_duration=MAX_DURATION, window=WINDOW, overlap=OVERLAP)
    settings.update(kwargs)
    export_model(
        folder,
        encoder,
        pooling,
        teacher=TeacherSpec(teacher_dir, pooling="cls"),
        extra={"epochs": 2, "valid_loss": 0.5},
        windows=WindowSettings(**settings),
    )
    return encoder, pooling


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    folder = str(tmp_path_factory.mktemp("export") / "sense-tiny")
    encoder, pooling = build_model(folder, tiny_w2v_bert, tiny_xlmr)
    return folder, encoder, pooling


@pytest.fixture(scope="module")
def model(exported):
    return SENSE.from_hparams(source=exported[0], device="cpu")


# ---------------------------------------------------------------------------
# Export folder and loading
# ---------------------------------------------------------------------------


def test_export_folder_layout(exported, tiny_xlmr):
    from transformers import Wav2Vec2BertModel

    folder, encoder, pooling = exported
    assert sorted(os.listdir(folder)) == sorted(
        [ENCODER_DIR, HPARAMS_FILE, META_FILE, POOLING_FILE]
    )
    assert not [n for n in os.listdir(os.path.dirname(folder)) if n.startswith(".")]
    files = os.listdir(os.path.join(folder, ENCODER_DIR))
    assert "config.json" in files and "preprocessor_config.json" in files
    reloaded = Wav2Vec2BertModel.from_pretrained(os.path.join(folder, ENCODER_DIR))
    for name, value in encoder.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name
    state = torch.load(os.path.join(folder, POOLING_FILE), weights_only=True)
    assert state.keys() == pooling.state_dict().keys()
    with open(os.path.join(folder, META_FILE)) as f:
        meta = json.load(f)
    assert meta["format"] == "sense-model" and meta["embedding_dim"] == pooling.output_dim
    assert meta["teacher"]["source"] == os.path.abspath(tiny_xlmr)
    assert meta["extra"] == {"epochs": 2, "valid_loss": 0.5}


def test_from_hparams_loads_the_trained_weights(model, exported):
    folder, encoder, pooling = exported
    for name, value in pooling.state_dict().items():
        assert torch.equal(model.mods.pooling.state_dict()[name], value), name
    assert model.hparams.max_duration == MAX_DURATION
    wav = make_signal(220, 0)[1]
    with torch.no_grad():
        frames, lens = encoder.eval()(wav[None], torch.ones(1))
        expected = torch.nn.functional.normalize(pooling(frames, lens)[0], dim=-1)[0]
    torch.testing.assert_close(model.encode_batch(wav), expected, atol=1e-5, rtol=1e-5)


def test_a_batch_normalised_head_is_exported_with_its_running_statistics(
    tmp_path, tiny_w2v_bert, tiny_xlmr
):
    encoder = HFSpeechEncoder(tiny_w2v_bert).eval()
    pooling = AttentivePooling(encoder.output_dim, output_dim=8, batch_norm=True).train()
    wav = make_signal(220, 0)[1]
    with torch.no_grad():
        for seed in range(3):  # move the running statistics away from (0, 1)
            frames, lens = encoder(torch.stack([make_signal(200 + 40 * seed, seed)[1], wav]))
            pooling(frames, lens)
        pooling.eval()
        expected = torch.nn.functional.normalize(pooling(*encoder(wav[None]))[0], dim=-1)[0]
    assert pooling.norm.num_batches_tracked == 3
    export_model(str(tmp_path / "bn"), encoder, pooling, teacher=tiny_xlmr)
    model = SENSE.from_hparams(source=str(tmp_path / "bn"), device="cpu")
    assert model.mods.pooling.norm is not None
    assert torch.equal(model.mods.pooling.norm.running_mean, pooling.norm.running_mean)
    torch.testing.assert_close(model.encode_batch(wav), expected, atol=1e-5, rtol=1e-5)


def test_from_hparams_with_savedir_and_overrides(exported, tmp_path):
    savedir = tmp_path / "saved"
    model = SENSE.from_hparams(
        source=exported[0], savedir=str(savedir), overrides={"max_duration": 60.0}, device="cpu"
    )
    assert model.hparams.max_duration == 60.0
    assert (savedir / HPARAMS_FILE).exists() and (savedir / POOLING_FILE).exists()


def test_from_hparams_hub_id_from_the_hub_cache(exported, tmp_path):
    """A hub id goes through huggingface_hub's snapshot resolution (here: the offline cache)."""
    import shutil

    from speechbrain.utils.fetching import FetchConfig

    cache = tmp_path / "hub"
    repo = cache / "models--sense-test--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(exported[0], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    model = SENSE.from_hparams(
        source="sense-test/tiny",
        fetch_config=FetchConfig(huggingface_cache_dir=str(cache)),
        device="cpu",
    )
    wav = make_signal(220, 0)[1]
    reference = SENSE.from_hparams(source=exported[0], device="cpu")
    torch.testing.assert_close(model.encode_batch(wav), reference.encode_batch(wav))


def test_from_hparams_errors_name_the_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        SENSE.from_hparams(source=str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="hyperparams.yaml"):
        SENSE.from_hparams(source=str(tmp_path / "empty"))


def test_export_is_atomic(exported, tiny_xlmr, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    _, encoder, pooling = exported
    export_model(str(folder), encoder, pooling, teacher=tiny_xlmr)
    before = (folder / POOLING_FILE).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("sense.export.torch.save", crash)
    with pytest.raises(OSError, match="disk full"):
        export_model(str(folder), encoder, AttentivePooling(encoder.output_dim), teacher=None)
    # the old export is intact and no half-written folder is left behind
    assert (folder / POOLING_FILE).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model"]
    with pytest.raises(OSError, match="disk full"):
        export_model(str(tmp_path / "new"), encoder, pooling, teacher=None)
    assert sorted(os.listdir(tmp_path)) == ["model"]
    with pytest.raises(FileExistsError):
        export_model(str(folder), encoder, pooling, teacher=None, overwrite=False)


#: The long-recording block of ``hyperparams.yaml``, as every export has written it.
WINDOW_LINES = 'max_duration: {}\nwindow_duration: {}\nwindow_overlap: {}\nwindow_split: "{}"\n'


def test_window_settings_as_an_object_or_one_by_one_write_the_same_folder(exported, tmp_path):
    """``windows=WindowSettings(...)``, or its fields as keywords (the earlier form, which
    changes the object's fields): the same ``hyperparams.yaml``, byte for byte."""
    _, encoder, pooling = exported

    def hparams(name, **kwargs) -> bytes:
        folder = export_model(str(tmp_path / name), encoder, pooling, teacher=None, **kwargs)
        with open(os.path.join(folder, HPARAMS_FILE), "rb") as f:
            return f.read()

    default = hparams("default")
    assert WINDOW_LINES.format(30.0, 20.0, 4.0, "fixed").encode() in default
    assert hparams("default-object", windows=WindowSettings()) == default
    silence = WindowSettings(max_duration=3, window=2, overlap=0.5, split="silence")
    short = hparams("object", windows=silence)
    assert WINDOW_LINES.format(3.0, 2.0, 0.5, "silence").encode() in short
    assert short.replace(WINDOW_LINES.format(3.0, 2.0, 0.5, "silence").encode(), b"") == (
        default.replace(WINDOW_LINES.format(30.0, 20.0, 4.0, "fixed").encode(), b"")
    )
    assert hparams("keywords", max_duration=3, window=2, overlap=0.5, split="silence") == short
    before = WindowSettings(max_duration=3, window=2, overlap=1.0)
    both = hparams("both", windows=before, overlap=0.5, split="silence")
    assert both == short

    with pytest.raises(TypeError, match="unexpected keyword argument 'windo'"):
        export_model(str(tmp_path / "refused"), encoder, pooling, windo=2.0)
    need = "need 0 <= overlap < window and max_duration > 0, "
    refusals = [
        ({"split": "pause"}, "split must be one of ('fixed', 'silence'), got 'pause'"),
        ({"window": 4.0}, need + "got overlap=4.0, window=4.0, max_duration=30.0"),
        ({"overlap": -0.5}, need + "got overlap=-0.5, window=20.0, max_duration=30.0"),
        ({"max_duration": 0.0}, need + "got overlap=4.0, window=20.0, max_duration=0.0"),
    ]
    for settings, reason in refusals:
        with pytest.raises(ValueError, match=re.escape(reason)):
            WindowSettings(**settings)
        with pytest.raises(ValueError, match=re.escape(reason)):
            export_model(str(tmp_path / "refused"), encoder, pooling, **settings)
    assert not os.path.exists(tmp_path / "refused")


# ---------------------------------------------------------------------------
# Audio formats, batches
# ---------------------------------------------------------------------------


def test_same_audio_in_any_format_gives_the_same_embedding(model, tmp_path):
    low, ref = make_signal(220, 0)
    sf.write(tmp_path / "a16.wav", ref.numpy(), SR, subtype="FLOAT")
    sf.write(tmp_path / "a8.wav", low.numpy(), 8000, subtype="FLOAT")
    high = torchaudio.functional.resample(ref, SR, 44100).numpy()
    stereo = np.stack([high * 1.2, high * 0.8], axis=1)  # down-mix gives ``high``
    sf.write(tmp_path / "a44.flac", stereo, 44100, subtype="PCM_24")
    sf.write(tmp_path / "a44.mp3", stereo, 44100, compression_level=0.0, bitrate_mode="CONSTANT")

    emb = {name: model.encode_file(str(tmp_path / name)) for name in os.listdir(tmp_path)}
    base = emb["a16.wav"]
    assert base.shape == (model.output_dim,)
    assert torch.allclose(base.norm(), torch.tensor(1.0))
    # Other sounds of the same kind give the scale: a random tiny model maps every
    # sound near every other, and is sensitive to what resampling leaves in the empty
    # band above 4 kHz. Lossless files differ from the original by resampling error
    # only, the mp3 by coding noise too; each must be far closer to the original than
    # another sound is.
    others = [make_signal(f0, seed)[1] for f0, seed in [(220, 1), (240, 0), (300, 1)]]
    scale = min(1 - float(model.encode_batch(o) @ base) for o in others)
    assert scale > 0.01
    for name, tolerance, share in [
        ("a8.wav", 1e-3, 0.01),
        ("a44.flac", 1e-2, 0.05),
        ("a44.mp3", 0.1, 0.3),
    ]:
        distance = 1 - float(emb[name] @ base)
        assert distance < tolerance and distance < share * scale, (name, distance, scale)


def test_embedding_does_not_depend_on_the_batch(model):
    short = make_signal(220, 0, duration=0.8)[1]
    alone = model.encode_batch(short)
    for partner_duration in (1.3, 2.5):
        partner = make_signal(300, 1, duration=partner_duration)[1]
        wavs = torch.zeros(2, partner.numel())
        wavs[0, : short.numel()] = short
        wavs[1] = partner
        lens = torch.tensor([short.numel() / partner.numel(), 1.0])
        torch.testing.assert_close(model.encode_batch(wavs, lens)[0], alone, atol=1e-5, rtol=0)
    # and through encode_waveforms, which batches windows of several recordings
    batched = model.encode_waveforms([short, make_signal(300, 1, 2.5)[1]], batch_size=2)[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_encode_text_uses_the_teacher(model, tiny_xlmr):
    sentences = ["le chat dort sur le canapé rouge", "the cat sleeps on the red sofa"]
    emb = model.encode_text(sentences)
    expected = SentenceEncoder(tiny_xlmr, pooling="cls")(sentences)
    torch.testing.assert_close(emb, expected)
    sim = model.similarity(emb, emb)
    assert sim.shape == (2, 2)
    torch.testing.assert_close(sim.diagonal(), torch.ones(2))


# ---------------------------------------------------------------------------
# Long recordings
# ---------------------------------------------------------------------------


def test_long_file_gives_windows_with_their_time_spans(model, tmp_path):
    duration = 5.0
    wav = torch.cat([make_signal(f0, i, 1.0)[1] for i, f0 in enumerate([200, 260, 330, 410, 500])])
    assert wav.numel() == int(duration * SR)
    path = tmp_path / "long.wav"
    sf.write(path, wav.numpy(), SR, subtype="FLOAT")

    result = model.encode_file(str(path), windows=True)
    assert isinstance(result, WindowEmbeddings)
    spans = result.spans
    assert result.duration == pytest.approx(duration)
    assert spans.shape[0] == result.embeddings.shape[0] == 3
    assert spans[0, 0] == 0.0 and spans[-1, 1] == pytest.approx(duration)
    torch.testing.assert_close(
        spans[:, 1] - spans[:, 0], torch.full((3,), WINDOW, dtype=torch.float64)
    )
    assert torch.all(spans[:-1, 1] - spans[1:, 0] >= OVERLAP - 1e-6)
    # each window embedding is that of the audio between its span's times
    for emb, (start, end) in zip(result.embeddings, spans.tolist()):
        piece = wav[round(start * SR) : round(end * SR)]
        torch.testing.assert_close(emb, model.encode_batch(piece), atol=1e-5, rtol=0)

    # a short file is one window spanning it all
    short = model.encode_file(str(path), windows=True, max_duration=10.0)
    assert short.spans.tolist() == [[0.0, duration]]


def test_pooled_long_file_is_attention_over_all_its_frames(model, tmp_path):
    wav = torch.cat([make_signal(f0, i, 1.0)[1] for i, f0 in enumerate([200, 260, 330, 410, 500])])
    path = tmp_path / "long.wav"
    sf.write(path, wav.numpy(), SR, subtype="FLOAT")
    pooled = model.encode_file(str(path))
    attention = model.attention_file(str(path))

    # Rebuild both by hand: encode each window, keep the frames of the part it owns
    # (overlaps split in the middle), one softmax over all kept frames.
    spans = model.encode_file(str(path), windows=True).spans
    cuts = [0.0] + [(a + b) / 2 for a, b in zip(spans[1:, 0].tolist(), spans[:-1, 1].tolist())]
    cuts.append(5.0)
    frames_kept, logits_kept, times_kept = [], [], []
    with torch.no_grad():
        for i, (start, end) in enumerate(spans.tolist()):
            piece = wav[round(start * SR) : round(end * SR)]
            frames, lens = model.mods.encoder(piece[None], torch.ones(1))
            _, logits = model.mods.pooling(frames, lens)
            n = frames.shape[1]
            times = start + (torch.arange(n) + 0.5) * (end - start) / n
            keep = (times >= cuts[i]) & (times < cuts[i + 1])
            frames_kept.append(frames[0][keep])
            logits_kept.append(logits[0][keep])
            times_kept.append(times[keep])
    frames, logits, times = map(torch.cat, (frames_kept, logits_kept, times_kept))
    expected = torch.nn.functional.normalize(torch.softmax(logits, 0) @ frames, dim=0)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=0)

    torch.testing.assert_close(attention.logits, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention.times, times.float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(attention.weights, torch.softmax(logits, 0), atol=1e-6, rtol=0)
    assert attention.duration == pytest.approx(5.0)
    assert torch.all(attention.times[1:] > attention.times[:-1])
    assert attention.times.numel() == pytest.approx(5.0 / 0.02, abs=3)  # 20 ms frames

    # a recording short enough for one pass: the pooling's own logits over its real frames
    short = model.attention_file(str(path), max_duration=10.0)
    with torch.no_grad():
        frames, lens = model.mods.encoder(wav[None], torch.ones(1))
        _, logits = model.mods.pooling(frames, lens)
    torch.testing.assert_close(short.logits, logits[0])
    torch.testing.assert_close(short.weights.sum(), torch.tensor(1.0))

    # batched with shorter and too-short waveforms: the same attention, failures named
    batch = model.attention_waveforms([wav[:8000], wav, wav[:100]], batch_size=4)
    torch.testing.assert_close(batch[1].logits, attention.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch[1].times, attention.times)
    alone = model.attention_waveforms([wav[:8000]])[0]
    torch.testing.assert_close(batch[0].logits, alone.logits, atol=1e-5, rtol=0)
    assert batch[2].startswith("too short")


def test_long_file_with_a_batch_normalised_head_goes_through_the_whole_head(
    tmp_path, tiny_w2v_bert, tiny_xlmr
):
    """Exact long-file pooling = the head (standardise, project, tanh) on the pooled frames."""
    encoder = HFSpeechEncoder(tiny_w2v_bert).eval()
    torch.manual_seed(1)
    pooling = AttentivePooling(encoder.output_dim, output_dim=8, activation="tanh", batch_norm=True)
    pooling.norm.running_mean.uniform_(-2, 2)
    pooling.norm.running_var.uniform_(0.5, 3)
    folder = str(tmp_path / "bn-long")
    export_model(
        folder,
        encoder,
        pooling.eval(),
        teacher=tiny_xlmr,
        windows=WindowSettings(max_duration=MAX_DURATION, window=WINDOW, overlap=OVERLAP),
    )
    model = SENSE.from_hparams(source=folder, device="cpu")
    wav = torch.cat([make_signal(f0, i, 1.0)[1] for i, f0 in enumerate([200, 260, 330, 410, 500])])
    path = tmp_path / "long.wav"
    sf.write(path, wav.numpy(), SR, subtype="FLOAT")

    attention = model.attention_file(str(path))
    spans = model.encode_file(str(path), windows=True).spans
    assert len(spans) > 1
    cuts = [0.0] + [(a + b) / 2 for a, b in zip(spans[1:, 0].tolist(), spans[:-1, 1].tolist())]
    cuts.append(5.0)
    kept = []
    with torch.no_grad():
        for i, (start, end) in enumerate(spans.tolist()):
            frames, _ = encoder(wav[round(start * SR) : round(end * SR)][None], torch.ones(1))
            n = frames.shape[1]
            times = start + (torch.arange(n) + 0.5) * (end - start) / n
            kept.append(frames[0][(times >= cuts[i]) & (times < cuts[i + 1])])
    frames = torch.cat(kept)
    pooled = torch.softmax(attention.logits, 0) @ frames
    standardised = (pooled - pooling.norm.running_mean) / torch.sqrt(
        pooling.norm.running_var + pooling.norm.eps
    )
    with torch.no_grad():
        head = torch.tanh(standardised @ pooling.projection.weight.T + pooling.projection.bias)
    expected = torch.nn.functional.normalize(head, dim=0)
    torch.testing.assert_close(model.encode_file(str(path)), expected, atol=1e-5, rtol=0)


def test_window_planning():
    assert plan_windows(50 * SR, SR, 30, 20, 4) == [
        (0, 20 * SR),
        (15 * SR, 35 * SR),
        (30 * SR, 50 * SR),
    ]
    assert plan_windows(29 * SR, SR, 30, 20, 4) == [(0, 29 * SR)]
    wav = torch.randn(10 * SR)
    wav[int(3.2 * SR) : int(3.6 * SR)] = 0  # a pause
    spans = plan_silence_windows(wav, SR, max_duration=5, window=5)
    assert spans[0][0] == 0 and spans[-1][1] == wav.numel()
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert 3.2 <= spans[0][1] / SR <= 3.6
    acc = PoolAccumulator()
    frames, logits = torch.randn(30, 8), torch.randn(30) * 50
    for part in (slice(0, 7), slice(7, 20), slice(20, 30)):
        acc.add(frames[part], logits[part])
    torch.testing.assert_close(acc.pooled, torch.softmax(logits, 0) @ frames, atol=1e-5, rtol=0)


def test_silence_split(model, tmp_path):
    parts = [make_signal(220, 0, 2.2)[1], torch.zeros(int(0.3 * SR)), make_signal(330, 1, 2.0)[1]]
    wav = torch.cat(parts)
    path = tmp_path / "pause.wav"
    sf.write(path, wav.numpy(), SR, subtype="FLOAT")
    result = model.encode_file(str(path), windows=True, split="silence", window=3.0)
    (start0, end0), (start1, end1) = result.spans.tolist()
    assert start0 == 0 and end1 == pytest.approx(wav.numel() / SR) and end0 == start1
    assert 2.2 <= end0 <= 2.5  # cut inside the pause


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_bad_files_give_clear_errors(model, tmp_path):
    missing = tmp_path / "missing.wav"
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    zero_bytes = tmp_path / "zero.mp3"
    zero_bytes.write_bytes(b"")
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"this is not audio" * 50)
    cases = [
        (missing, "no such file"),
        (empty, "empty audio"),
        (zero_bytes, "empty file"),
        (garbage, "unreadable"),
    ]
    for path, problem in cases:
        with pytest.raises(AudioError, match=problem) as info:
            model.encode_file(str(path))
        assert str(path) in str(info.value)


def test_encode_files_skips_bad_files_and_lists_them(model, tmp_path):
    good = []
    for i, f0 in enumerate([200, 300]):
        good.append(str(tmp_path / f"good{i}.wav"))
        sf.write(good[-1], make_signal(f0, i)[1].numpy(), SR)
    empty = str(tmp_path / "empty.wav")
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    garbage = str(tmp_path / "garbage.wav")
    with open(garbage, "wb") as f:
        f.write(b"RIFF" + b"\0" * 100)
    tiny = str(tmp_path / "tiny.wav")  # too short for a single encoder frame
    sf.write(tiny, np.zeros(10, dtype=np.float32), SR)
    missing = str(tmp_path / "missing.wav")
    paths = [good[0], empty, garbage, missing, tiny, good[1]]
    results, failures = model.encode_files(paths, batch_size=4)
    assert list(results) == good
    assert [path for path, _ in failures] == [empty, garbage, missing, tiny]
    reasons = dict(failures)
    assert "empty" in reasons[empty] and "no such file" in reasons[missing]
    assert "unreadable" in reasons[garbage]
    assert reasons[tiny] == "too short (0.625 ms; at least 35 ms)"
    torch.testing.assert_close(results[good[1]], model.encode_file(good[1]), atol=1e-5, rtol=0)


def test_a_folder_exported_before_the_options_object_loads(exported, model, tmp_path):
    """Model folders written before ``EncoderOptions`` name the switch (``freeze: True``) in
    the encoder's arguments; they load to the same frozen encoder and the same embeddings."""
    import shutil

    text = open(os.path.join(exported[0], HPARAMS_FILE), encoding="utf-8").read()
    new_form = "    options: !new:sense.lobes.options.EncoderOptions\n        freeze: True\n"
    assert new_form in text
    old = tmp_path / "old-export"
    shutil.copytree(exported[0], old)
    (old / HPARAMS_FILE).write_text(text.replace(new_form, "    freeze: True\n"), encoding="utf-8")
    loaded = SENSE.from_hparams(source=str(old), device="cpu")
    assert loaded.mods.encoder.freeze and loaded.mods.encoder.options.freeze
    wav = make_signal(220.0, seed=3)[1]
    torch.testing.assert_close(
        loaded.encode_batch(wav[None], torch.ones(1)), model.encode_batch(wav[None], torch.ones(1))
    )
