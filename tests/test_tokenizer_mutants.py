"""sense.dual_encoder.tokens: the tokenizer, its k-means fit and its file handling, on a
stand-in encoder whose frames are known (survivors of make mutation).

The stand-in takes HFSpeechEncoder's place: 50 frames a second, each the
[mean, first sample] of its 320 samples, and records the batches it encodes.
"""

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from test_tokens_mutants import _kmeans_pp64
from torch import nn

from sense.dual_encoder import tokens as tokens_module
from sense.dual_encoder.tokens import (
    AudioTokenizer,
    TokenCache,
    audio_key,
    fit_centroids,
    fit_kmeans,
    kmeans_plus_plus,
    nearest_centroid,
    tokenize_files,
)
from sense.lobes.options import EncoderOptions

HOP = 320  # samples per frame: 50 Hz at 16 kHz


class StandInEncoder(nn.Module):
    output_dim = 2

    def __init__(self, source, output_layer=None, options=None):
        super().__init__()
        self.args = (source, output_layer, options)
        self.calls = []

    def forward(self, wavs, wav_lens=None):
        self.calls.append((wavs.shape[0], wavs.shape[1]))
        lens = torch.ones(wavs.shape[0]) if wav_lens is None else wav_lens
        return frames_of(wavs), lens


def frames_of(wavs: torch.Tensor) -> torch.Tensor:
    """[B, T] -> [B, T // HOP, 2]: each frame's mean and first sample."""
    n = wavs.shape[1] // HOP
    chunks = wavs[:, : n * HOP].reshape(wavs.shape[0], n, HOP)
    return torch.stack([chunks.mean(-1), chunks[..., 0]], -1)


def token_frames(wav: torch.Tensor, reduction: int = 2) -> torch.Tensor:
    """The frames of one waveform averaged in runs of ``reduction`` (last run partial)."""
    f = frames_of(wav[None])[0].double()
    return torch.stack([f[i : i + reduction].mean(0) for i in range(0, len(f), reduction)]).float()


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(tokens_module, "HFSpeechEncoder", StandInEncoder)


def wave(seconds: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(int(16000 * seconds), generator=gen)


@pytest.fixture
def wav_files(tmp_path):
    paths = []
    for i, seconds in enumerate((1.0, 0.6, 0.42, 1.3, 0.2, 0.9, 0.5, 0.66, 0.3, 1.1)):
        path = str(tmp_path / f"u{i}.wav")
        sf.write(path, wave(seconds, i).numpy(), 16000, subtype="FLOAT")
        paths.append(path)
    return paths


def read(path):
    data, _ = sf.read(path, dtype="float32")
    return torch.from_numpy(data)


# ---------------------------------------------------------------------------
# AudioTokenizer
# ---------------------------------------------------------------------------


def test_the_tokenizer_builds_its_encoder_and_measures_its_frame_rate(stand_in):
    tok = AudioTokenizer("org/enc", output_layer=3, num_tokens=5)
    assert tok.encoder.args == ("org/enc", 3, EncoderOptions(freeze=True))
    assert tok.encoder.calls == [(1, 32000)]  # the 2 s probe
    assert (tok.source, tok.output_layer, tok.num_tokens, tok.token_rate) == ("org/enc", 3, 5, 25.0)
    assert tok.reduction == 2  # 50 Hz frames, 25 tokens a second
    assert AudioTokenizer("e", output_layer=1, num_tokens=2, token_rate=50).reduction == 1
    assert AudioTokenizer("e", output_layer=1, num_tokens=2, token_rate=12.5).reduction == 4
    assert AudioTokenizer("e", output_layer=1, num_tokens=2, token_rate=400).reduction == 1
    assert tok.centroids.shape == (5, 2) and not tok.fitted
    with pytest.raises(RuntimeError, match="no centroids yet"):
        tok(torch.zeros(1, 16000), torch.ones(1))


def test_identity_names_encoder_layer_rate_size_and_centroids(stand_in):
    c = torch.arange(10.0).reshape(5, 2)
    tok = AudioTokenizer("org/enc", output_layer=3, num_tokens=5, token_rate=12.5, centroids=c)
    digest = hashlib.sha1(c.numpy().tobytes()).hexdigest()[:16]
    assert tok.identity == f"audio-tokens:org/enc:layer3:12.5Hz:k5:{digest}"


def test_centroids_given_from_a_file_or_loaded_with_the_state_dict(stand_in, tmp_path):
    c = torch.randn(4, 2)
    torch.save(c, tmp_path / "c.pt")
    tok = AudioTokenizer("e", output_layer=1, num_tokens=4, centroids_file=str(tmp_path / "c.pt"))
    assert tok.fitted and torch.equal(tok.centroids, c)
    with pytest.raises(ValueError, match=r"centroids must be \[4, 2\], got \(3, 2\)"):
        tok.set_centroids(torch.zeros(3, 2))
    # loading a saved model marks the tokenizer fitted, under any prefix
    parent = nn.ModuleDict({"tok": AudioTokenizer("e", output_layer=1, num_tokens=4)})
    parent.load_state_dict({"tok.centroids": c})
    assert parent["tok"].fitted and torch.equal(parent["tok"].centroids, c)
    other = AudioTokenizer("e", output_layer=1, num_tokens=4)
    other.load_state_dict({}, strict=False)  # no centroids in it: still not fitted
    assert not other.fitted


def test_tokens_are_the_nearest_centroid_of_each_token_frame(stand_in):
    centroids = torch.tensor([[0.0, 0.0], [0.05, 0.5], [-0.05, -0.5], [0.0, 2.0]])
    tok = AudioTokenizer("e", output_layer=1, num_tokens=4, centroids=centroids)
    wavs = [wave(1.0, 0), wave(0.6, 1), wave(0.02, 2)]  # 50, 30 and 1 frames
    got = tok.tokenize_waveforms(wavs)
    for wav, tokens in zip(wavs, got):
        frames = token_frames(wav).double()
        expected = ((frames[:, None, :] - centroids.double()[None]) ** 2).sum(-1).argmin(1)
        assert tokens.tolist() == expected.tolist()
    assert [len(t) for t in got] == [25, 15, 1]
    assert len(set(got[0].tolist())) > 1


def test_sample_frames_in_batches_then_a_seeded_draw(stand_in, wav_files):
    tok = AudioTokenizer("e", output_layer=1, num_tokens=4)
    tok.encoder.calls.clear()
    every = torch.cat([token_frames(read(p)) for p in wav_files])
    frames = tok.sample_frames(wav_files, max_frames=10_000)
    assert torch.allclose(frames, every, atol=1e-6)
    assert [b for b, _ in tok.encoder.calls] == [8, 2]  # batches of 8 files
    tok.encoder.calls.clear()
    assert torch.allclose(tok.sample_frames(wav_files, 10_000, batch_size=3), every, atol=1e-6)
    assert [b for b, _ in tok.encoder.calls] == [3, 3, 3, 1]
    drawn = tok.sample_frames(wav_files, max_frames=20, seed=7)
    pick = torch.randperm(len(every), generator=torch.Generator().manual_seed(7))[:20]
    assert torch.allclose(drawn, every[pick], atol=1e-6)
    assert torch.equal(tok.sample_frames(wav_files, max_frames=len(every)), frames)
    with pytest.raises(ValueError, match="no audio files given"):
        tok.sample_frames([], 10)


# ---------------------------------------------------------------------------
# fit_kmeans: faiss's Lloyd iterations from the k-means++ seeds
# ---------------------------------------------------------------------------


def lloyd64(x, seeds, iterations):
    """Float64 Lloyd iterations (no empty cluster on these data)."""
    x64, c = x.astype(np.float64), seeds.astype(np.float64)
    for _ in range(iterations):
        assign = ((x64[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        c = np.stack([x64[assign == k].mean(0) for k in range(len(c))])
    return c


def blobs(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    return np.concatenate([rng.normal(c, 1.0, (n // 3, 2)) for c in centres]).astype(np.float32)


@pytest.mark.parametrize("iterations", [1, 3, 50])
def test_fit_kmeans_is_lloyd_from_the_kmeans_plus_plus_seeds(iterations):
    x = blobs()  # 500 frames per centroid: faiss samples none away (its default: 256)
    seeds = kmeans_plus_plus(x, 3, seed=5)
    got = fit_kmeans(x, 3, iterations=iterations, seed=5).double().numpy()
    np.testing.assert_allclose(got, lloyd64(x, seeds, iterations), atol=2e-5)


def test_fit_kmeans_takes_tensors_float64_and_exactly_k_frames(capfd):
    x = blobs(300)
    expected = fit_kmeans(x, 3, seed=2)
    assert torch.equal(fit_kmeans(torch.from_numpy(x).requires_grad_(), 3, seed=2), expected)
    assert torch.equal(fit_kmeans(x.astype(np.float64), 3, seed=2), expected)
    assert fit_kmeans(x[:3], 3).dtype == torch.float32
    np.testing.assert_array_equal(np.sort(fit_kmeans(x[:3], 3).numpy(), 0), np.sort(x[:3], 0))
    assert capfd.readouterr().out == ""  # faiss is not verbose
    for bad in (x[:, 0], x[:2], np.zeros((5, 2, 1), np.float32)):
        with pytest.raises(ValueError, match="k-means with 3 centroids needs"):
            fit_kmeans(bad, 3)
    assert fit_kmeans(np.eye(4, 2, dtype=np.float32), 3).shape == (3, 2)  # D < K is fine


# ---------------------------------------------------------------------------
# fit_centroids
# ---------------------------------------------------------------------------


def test_fit_centroids_fits_on_a_seeded_sample_of_files_and_keeps_them(
    stand_in, wav_files, tmp_path, monkeypatch
):
    tok = AudioTokenizer("e", output_layer=1, num_tokens=3)
    seen = {}
    sample_frames = tok.sample_frames

    def spy(paths, max_frames, seed):
        seen.update(paths=list(paths), max_frames=max_frames, seed=seed)
        return sample_frames(paths, max_frames, seed=seed)

    monkeypatch.setattr(tok, "sample_frames", spy)
    out = str(tmp_path / "c.pt")
    fit_centroids(tok, wav_files, out, max_frames=40, sample_files=4, seed=11)
    order = torch.randperm(len(wav_files), generator=torch.Generator().manual_seed(11)).tolist()
    assert seen == {"paths": [wav_files[i] for i in order[:4]], "max_frames": 40, "seed": 11}
    expected = fit_kmeans(sample_frames(seen["paths"], 40, seed=11), 3, seed=11)
    assert tok.fitted and torch.equal(tok.centroids, expected)
    assert torch.equal(torch.load(out, weights_only=True), expected)

    # every file by default, in the seeded order
    fit_centroids(tok, wav_files, str(tmp_path / "all.pt"), max_frames=40)
    order = torch.randperm(len(wav_files), generator=torch.Generator().manual_seed(1234)).tolist()
    assert seen["paths"] == [wav_files[i] for i in order] and seen["seed"] == 1234

    # a second run loads the file and samples nothing
    again = AudioTokenizer("e", output_layer=1, num_tokens=3)
    monkeypatch.setattr(again, "sample_frames", lambda *a, **k: pytest.fail("sampled again"))
    fit_centroids(again, wav_files, out, max_frames=40)
    assert again.fitted and torch.equal(again.centroids, expected)


# ---------------------------------------------------------------------------
# tokenize_files and the token cache
# ---------------------------------------------------------------------------


def test_tokenize_files_in_size_order_and_flushed_to_the_cache(stand_in, wav_files, tmp_path):
    centroids = torch.tensor([[0.0, 0.0], [0.05, 0.5], [-0.05, -0.5]])
    tok = AudioTokenizer("e", output_layer=1, num_tokens=3, centroids=centroids)
    expected = {p: nearest_centroid(token_frames(read(p)), centroids) for p in wav_files}
    cache = TokenCache(str(tmp_path / "cache"))
    tok.encoder.calls.clear()
    paths = wav_files[:7] + wav_files[:2]  # a repeated path is tokenised once
    out = tokenize_files(tok, paths, cache, batch_size=3, flush_every=4)
    assert set(out) == set(wav_files[:7])
    assert all(torch.equal(out[p], expected[p]) and out[p].dtype == torch.int64 for p in out)
    by_size = sorted(wav_files[:7], key=lambda p: -os.path.getsize(p))
    samples = [len(read(p)) for p in by_size]
    assert [t for _, t in tok.encoder.calls] == [max(samples[i : i + 3]) for i in (0, 3, 6)]
    shards = [f for f in os.listdir(cache.model_folder(tok.identity)) if f.startswith("shard-")]
    assert len(shards) == 2  # after 6 files (>= 4), then the last one
    # the cache serves the files it holds; only the others are tokenised
    tok.encoder.calls.clear()
    again = tokenize_files(tok, wav_files, TokenCache(str(tmp_path / "cache")), batch_size=8)
    assert all(
        torch.equal(again[p], expected[p]) and again[p].dtype == torch.int64 for p in wav_files
    )
    assert [b for b, _ in tok.encoder.calls] == [3]
    stored = TokenCache(str(tmp_path / "cache")).get(
        tok.identity, [audio_key(p) for p in wav_files]
    )
    assert len(stored) == 10 and stored[audio_key(wav_files[0])].dtype == torch.int16
    # no cache: tokenised every time
    assert all(torch.equal(v, expected[k]) for k, v in tokenize_files(tok, wav_files[:2]).items())


def test_token_cache_put_checks_and_stores_int16_rows(tmp_path):
    cache = TokenCache(str(tmp_path))
    with pytest.raises(ValueError, match="2 keys but 1 token sequences"):
        cache.put("tok", ["a", "b"], [torch.tensor([1])])
    cache.put("tok", [], [])
    assert not os.path.exists(cache.model_folder("tok"))
    cache.put("tok", ["a", "b"], [torch.tensor([[3, 1]]), torch.tensor([300, 2, 7])])
    with open(os.path.join(cache.model_folder("tok"), "identity.txt")) as f:
        assert f.read() == "tok\n"
    got = TokenCache(str(tmp_path)).get("tok", ["a", "b"])
    assert got["a"].tolist() == [3, 1] and got["b"].tolist() == [300, 2, 7]
    assert got["a"].dtype == torch.int16
    cache.put("tok", ["c"], [torch.tensor([5])])
    assert TokenCache(str(tmp_path)).get("tok", ["a", "c"])["c"].tolist() == [5]


class NotATensor:
    pass


def test_centroid_files_are_read_weights_only(stand_in, tmp_path):
    """A file holding a pickled object is refused by torch's weights-only loader."""
    import pickle

    torch.save(NotATensor(), tmp_path / "c.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        AudioTokenizer("e", output_layer=1, num_tokens=4, centroids_file=str(tmp_path / "c.pt"))
    tok = AudioTokenizer("e", output_layer=1, num_tokens=4)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        fit_centroids(tok, [], str(tmp_path / "c.pt"), max_frames=10)


# ---------------------------------------------------------------------------
# More of k-means++ and of tokenize_files' flushes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [63, 64, 65, 200])
def test_kmeans_plus_plus_subsamples_per_centroid_beyond_the_minimum(monkeypatch, n):
    """With a minimum of 10 frames, 2 centroids look at 32 * 2 = 64 frames at most."""
    monkeypatch.setattr(tokens_module, "KMEANS_PP_MIN_POINTS", 10)
    x = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    expected = _kmeans_pp64(x, 2, 9, 10, 32)
    np.testing.assert_array_equal(kmeans_plus_plus(x, 2, seed=9), expected)


def test_kmeans_plus_plus_with_fewer_distinct_frames_than_centroids():
    """Two distinct frames, first in runs of equal ones: once both are seeds every distance
    is 0 and the remaining seeds are drawn uniformly."""
    x = np.array([[0.0, 0.0]] * 3 + [[1.0, 1.0]] * 2 + [[0.0, 0.0]] * 4 + [[1.0, 1.0]] * 3)
    x = x.astype(np.float32)
    for seed in range(6):
        got = kmeans_plus_plus(x, 5, seed=seed)
        np.testing.assert_array_equal(got, _kmeans_pp64(x, 5, seed, 20_000, 32))
    # only the last frame differs: after a first seed on the others, it is the only draw
    last = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]], dtype=np.float32)
    for seed in range(6):
        got = kmeans_plus_plus(last, 3, seed=seed)
        np.testing.assert_array_equal(got, _kmeans_pp64(last, 3, seed, 20_000, 32))
        assert sorted(got[:2].sum(1).tolist()) == [0.0, 2.0]


def test_tokenize_files_by_default_in_batches_of_8(stand_in, wav_files, tmp_path):
    tok = AudioTokenizer("e", output_layer=1, num_tokens=2, centroids=torch.eye(2))
    tok.encoder.calls.clear()
    tokenize_files(tok, wav_files)
    assert [b for b, _ in tok.encoder.calls] == [8, 2]


@pytest.mark.parametrize(
    "count, batch_size, flush_every, sizes",
    [(7, 2, 4, [4, 3]), (6, 3, 100, [6]), (6, 3, 3, [3, 3])],
)
def test_tokenize_files_flushes_at_flush_every_and_at_the_end(
    stand_in, wav_files, tmp_path, count, batch_size, flush_every, sizes
):
    import glob

    tok = AudioTokenizer("e", output_layer=1, num_tokens=2, centroids=torch.eye(2))
    cache = TokenCache(str(tmp_path / "cache"))
    tokenize_files(tok, wav_files[:count], cache, batch_size=batch_size, flush_every=flush_every)
    shards = glob.glob(os.path.join(cache.model_folder(tok.identity), "shard-*.pt"))
    got = sorted(len(torch.load(s, weights_only=True)["keys"]) for s in shards)
    assert got == sorted(sizes)
    stored = TokenCache(str(tmp_path / "cache")).get(
        tok.identity, [audio_key(p) for p in wav_files]
    )
    assert len(stored) == count


def test_tokenize_files_flushes_every_1024_files_by_default(stand_in, tmp_path, monkeypatch):
    paths = [str(tmp_path / f"{i}.wav") for i in range(1025)]
    for p in paths:
        sf.write(p, np.full(640, 0.1, dtype=np.float32), 16000, subtype="FLOAT")
    tok = AudioTokenizer("e", output_layer=1, num_tokens=2, centroids=torch.eye(2))
    cache = TokenCache(str(tmp_path / "cache"))
    tokenize_files(tok, paths, cache)
    shards = os.listdir(cache.model_folder(tok.identity))
    assert len([s for s in shards if s.startswith("shard-")]) == 2  # 1024, then 1
