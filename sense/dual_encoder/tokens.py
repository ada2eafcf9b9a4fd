"""Discrete audio tokens: a speech encoder's middle layer at 25 Hz, quantised by k-means.

The LLM dual encoder (seed 003, section 2.1) reads speech as a sequence of
*audio tokens*: frames of a pre-trained speech encoder's middle layer,
averaged down to 25 frames per second, each replaced by the index of its
nearest k-means centroid. :func:`fit_kmeans` fits the centroids once on a
sample of frames (faiss); :class:`AudioTokenizer` carries the encoder and the
centroids (a buffer, saved with the model) and turns waveforms into token
sequences; :class:`TokenCache` keeps the tokens of every utterance on disk, so
a training run tokenises its data once.

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_w2v_bert
>>> tok = AudioTokenizer(build_tiny_w2v_bert(tempfile.mkdtemp()), output_layer=1, num_tokens=4)
>>> tok.set_centroids(torch.randn(4, 32))  # fit_kmeans on sampled frames, in practice
>>> tokens, lens = tok(torch.randn(2, 32000), torch.tensor([1.0, 0.5]))
>>> tokens.shape, tok.reduction  # 50 Hz frames, two per token
(torch.Size([2, 50]), 2)
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from sense.dataio import abs_lengths, load_audio, pad_batch
from sense.evaluation.cache import EmbeddingCache, item_key
from sense.evaluation.manifests import AUDIO
from sense.io import atomic_write, write_text_atomic
from sense.lobes.options import EncoderOptions
from sense.lobes.speech import HFSpeechEncoder

logger = logging.getLogger(__name__)

#: Audio tokens per second (the paper's rate).
TOKEN_RATE = 25.0
#: Samples of the probe used to measure the encoder's frame rate (2 s at 16 kHz).
RATE_PROBE_SAMPLES = 32000
SAMPLE_RATE = 16000
#: k-means iterations and the seed of the fit.
KMEANS_ITERATIONS = 50
KMEANS_SEED = 1234
#: k-means++ seeding looks at a random subsample of this many frames per centroid,
#: and at least ``KMEANS_PP_MIN_POINTS`` (all of them when there are fewer).
KMEANS_PP_POINTS_PER_CENTROID = 32
KMEANS_PP_MIN_POINTS = 20_000


def reduce_frames(
    frames: torch.Tensor, frame_lens: torch.Tensor, factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average each run of ``factor`` frames: ``[B,T,D] -> [B,ceil(T/factor),D]``.

    Only real frames are averaged (a last, partial run is the mean of the
    frames it has); relative lengths are carried over.

    Example
    -------
    >>> x = torch.arange(6.0).reshape(1, 6, 1)
    >>> y, lens = reduce_frames(x, torch.tensor([5 / 6]), 2)
    >>> y.flatten().tolist(), lens.tolist()
    ([0.5, 2.5, 4.0], [1.0])
    """
    if factor == 1:
        return frames, frame_lens
    batch, time, dim = frames.shape
    counts = abs_lengths(frame_lens, time)
    mask = (torch.arange(time, device=frames.device) < counts[:, None]).to(frames.dtype)
    out_time = -(-time // factor)
    pad = out_time * factor - time
    summed = nn.functional.pad(frames * mask[..., None], (0, 0, 0, pad))
    summed = summed.reshape(batch, out_time, factor, dim).sum(2)
    weight = nn.functional.pad(mask, (0, pad)).reshape(batch, out_time, factor).sum(2)
    out = summed / weight.clamp(min=1)[..., None]
    out_counts = -(-counts // factor)
    return out, out_counts.float() / out_time


def nearest_centroid(frames: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (squared L2) of each frame: ``[..., D] -> [...]``.

    Example
    -------
    >>> nearest_centroid(torch.tensor([[0.1, 0.0], [0.9, 1.0]]), torch.eye(2)).tolist()
    [0, 1]
    """
    flat = frames.reshape(-1, frames.shape[-1]).float()
    c = centroids.float()
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 does not change the argmin
    dist = c.square().sum(1)[None, :] - 2.0 * flat @ c.T
    return dist.argmin(dim=1).reshape(frames.shape[:-1])


def kmeans_plus_plus(x: np.ndarray, num_centroids: int, seed: int = KMEANS_SEED) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): ``[N, D] -> [K, D]`` float32.

    Each new centroid is the best of ``2 + ln K`` frames drawn with probability
    proportional to their squared distance to the nearest centroid so far (the
    greedy variant scikit-learn uses). At most
    ``KMEANS_PP_POINTS_PER_CENTROID * K`` frames, drawn at random, are looked
    at (and at least ``KMEANS_PP_MIN_POINTS``); the draw is fixed by ``seed``.

    Example
    -------
    >>> x = np.array([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0], [9.1, 9.0]], dtype=np.float32)
    >>> sorted(kmeans_plus_plus(x, 2, seed=0).sum(1).round().tolist())  # one seed per cluster
    [0.0, 18.0]
    """
    rng = np.random.default_rng(seed)
    sample_size = max(KMEANS_PP_MIN_POINTS, KMEANS_PP_POINTS_PER_CENTROID * num_centroids)
    if sample_size < len(x):
        x = x[np.sort(rng.choice(len(x), sample_size, replace=False))]
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.square(x, dtype=np.float64).sum(1)
    trials = 2 + int(np.log(num_centroids))
    chosen = [int(rng.integers(len(x)))]
    closest = _squared_distances(x, norms, [chosen[0]])[0]
    for _ in range(1, num_centroids):
        candidates = _draw_by_weight(rng, closest, trials)
        potentials = np.minimum(closest[None, :], _squared_distances(x, norms, candidates))
        best = int(potentials.sum(1).argmin())
        chosen.append(int(candidates[best]))
        closest = potentials[best]
    return x[chosen].copy()


def _squared_distances(x: np.ndarray, norms: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """Squared L2 distances ``[len(rows), N]`` from the frames ``x[rows]`` to every frame."""
    dot = (x[rows] @ x.T).astype(np.float64)
    return np.maximum(norms[rows][:, None] - 2.0 * dot + norms[None, :], 0.0)


def _draw_by_weight(rng: np.random.Generator, weights: np.ndarray, count: int) -> np.ndarray:
    """``count`` indices drawn with probability proportional to ``weights`` (uniform if all 0)."""
    cumulative = np.cumsum(weights)
    if cumulative[-1] <= 0:  # every frame sits on a centroid: fewer distinct frames than K
        return rng.integers(len(weights), size=count)
    picks = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
    return np.minimum(picks, len(weights) - 1)


def fit_kmeans(
    frames: np.ndarray | torch.Tensor,
    num_tokens: int,
    iterations: int = KMEANS_ITERATIONS,
    seed: int = KMEANS_SEED,
) -> torch.Tensor:
    """Fit ``num_tokens`` k-means centroids on frames ``[N, D]`` (faiss); ``[K, D]`` float32.

    Lloyd iterations (faiss) start from :func:`kmeans_plus_plus` seeds: faiss's
    own start, ``K`` frames drawn uniformly, often puts two seeds in one
    cluster and none in another, and the iterations never separate them.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.1, (100, 2)), rng.normal(5, 0.1, (100, 2))])
    >>> sorted(fit_kmeans(x, 2).sum(1).round().tolist())  # the two cluster centres
    [0.0, 10.0]
    """
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss is in the dev / faiss extras
        raise ImportError("fit_kmeans needs faiss: pip install faiss-cpu") from err
    x = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else frames
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < num_tokens:
        raise ValueError(
            f"k-means with {num_tokens} centroids needs at least as many [N, D] frames, "
            f"got shape {x.shape}"
        )
    kmeans = faiss.Kmeans(
        x.shape[1],
        num_tokens,
        niter=iterations,
        seed=seed,
        verbose=False,
        max_points_per_centroid=100000,
    )
    kmeans.train(x, init_centroids=kmeans_plus_plus(x, num_tokens, seed=seed))
    return torch.from_numpy(np.array(kmeans.centroids, dtype=np.float32))


class AudioTokenizer(nn.Module):
    """Waveforms -> audio tokens: a speech encoder's layer at 25 Hz, nearest k-means centroid.

    Parameters
    ----------
    source : str
        Speech encoder (hub id, HF folder or a ``sense`` model folder, as
        :class:`~sense.lobes.speech.HFSpeechEncoder` takes).
    output_layer : int
        The encoder layer whose output is quantised (the paper: the middle one).
    num_tokens : int
        Size ``K`` of the audio vocabulary (number of centroids).
    token_rate : float
        Tokens per second; frames are averaged in runs of
        ``round(frame rate / token_rate)``.
    centroids : torch.Tensor, optional
        ``[K, D]`` centroids; set later with :meth:`set_centroids` otherwise.
    centroids_file : str, optional
        A ``.pt`` file holding the ``[K, D]`` centroids (an exported model's).

    Attributes
    ----------
    reduction : int
        Encoder frames averaged into one token.
    identity : str
        Changes with the encoder, layer, rate and centroids (keys the token cache).
    """

    def __init__(
        self,
        source: str,
        output_layer: int,
        num_tokens: int,
        token_rate: float = TOKEN_RATE,
        centroids: torch.Tensor | None = None,
        centroids_file: str | None = None,
    ):
        super().__init__()
        self.encoder = HFSpeechEncoder(
            source, output_layer=output_layer, options=EncoderOptions(freeze=True)
        )
        self.source = str(source)
        self.output_layer = int(output_layer)
        self.num_tokens = int(num_tokens)
        self.token_rate = float(token_rate)
        self.sample_rate = SAMPLE_RATE
        with torch.no_grad():
            probe, _ = self.encoder(torch.zeros(1, RATE_PROBE_SAMPLES), torch.ones(1))
        frame_rate = probe.shape[1] * SAMPLE_RATE / RATE_PROBE_SAMPLES
        self.reduction = max(1, round(frame_rate / self.token_rate))
        self.register_buffer("centroids", torch.zeros(self.num_tokens, self.encoder.output_dim))
        self.fitted = False
        if centroids_file is not None:
            centroids = torch.load(centroids_file, map_location="cpu", weights_only=True)
        if centroids is not None:
            self.set_centroids(centroids)

    def set_centroids(self, centroids: torch.Tensor) -> None:
        """Install ``[K, D]`` centroids (e.g. from :func:`fit_kmeans`)."""
        if tuple(centroids.shape) != tuple(self.centroids.shape):
            raise ValueError(
                f"centroids must be [{self.num_tokens}, {self.encoder.output_dim}], "
                f"got {tuple(centroids.shape)}"
            )
        self.centroids.copy_(centroids)
        self.fitted = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "centroids" in state_dict:
            self.fitted = True

    @property
    def identity(self) -> str:
        digest = hashlib.sha1(self.centroids.detach().cpu().numpy().tobytes()).hexdigest()[:16]
        return (
            f"audio-tokens:{self.source}:layer{self.output_layer}:{self.token_rate:g}Hz:"
            f"k{self.num_tokens}:{digest}"
        )

    @torch.no_grad()
    def frames(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``output_layer`` at the token rate: ``[B, T', D]`` and relative lengths."""
        frames, frame_lens = self.encoder(wavs, wav_lens)
        return reduce_frames(frames.float(), frame_lens, self.reduction)

    @torch.no_grad()
    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, T']`` (int64 in ``[0, K)``) and their relative lengths ``[B]``."""
        if not self.fitted:
            raise RuntimeError("AudioTokenizer: no centroids yet (fit_kmeans, then set_centroids)")
        frames, lens = self.frames(wavs, wav_lens)
        return nearest_centroid(frames, self.centroids), lens

    def tokenize_waveforms(self, wavs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Token sequences (int64 ``[T_i]``) of 16 kHz waveforms of any lengths."""
        batch, lens = pad_batch([w.to(self.centroids.device) for w in wavs])
        tokens, token_lens = self(batch, lens)
        counts = abs_lengths(token_lens, tokens.shape[1])
        return [t[:n].cpu() for t, n in zip(tokens, counts.tolist())]

    def sample_frames(
        self, paths: Iterable[str], max_frames: int, batch_size: int = 8, seed: int = KMEANS_SEED
    ) -> torch.Tensor:
        """Token-rate frames ``[N, D]`` of audio files, at most ``max_frames`` drawn at random."""
        rows, batch = [], []
        paths = list(paths)

        def flush():
            if batch:
                wavs, lens = pad_batch([w.to(self.centroids.device) for w in batch])
                frames, flens = self.frames(wavs, lens)
                counts = abs_lengths(flens, frames.shape[1])
                rows.extend(f[:n].cpu() for f, n in zip(frames, counts.tolist()))
                batch.clear()

        for path in paths:
            batch.append(load_audio(path, self.sample_rate))
            if len(batch) == batch_size:
                flush()
        flush()
        if not rows:
            raise ValueError("sample_frames: no audio files given")
        frames = torch.cat(rows)
        if frames.shape[0] > max_frames:
            pick = torch.randperm(frames.shape[0], generator=torch.Generator().manual_seed(seed))
            frames = frames[pick[:max_frames]]
        return frames


def fit_centroids(
    tokenizer: AudioTokenizer,
    paths: Sequence[str],
    centroids_file: str,
    max_frames: int,
    sample_files: int | None = None,
    seed: int = KMEANS_SEED,
) -> None:
    """Fit the tokenizer's k-means once and keep it in ``centroids_file``; load it when there.

    ``sample_files`` files drawn at random (all by default) give up to
    ``max_frames`` frames.
    """
    if os.path.isfile(centroids_file):
        tokenizer.set_centroids(torch.load(centroids_file, map_location="cpu", weights_only=True))
        return
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    sample = [paths[i] for i in order[: sample_files or len(paths)]]
    frames = tokenizer.sample_frames(sample, max_frames, seed=seed)
    tokenizer.set_centroids(fit_kmeans(frames, tokenizer.num_tokens, seed=seed))
    atomic_write(centroids_file, lambda tmp: torch.save(tokenizer.centroids.cpu().clone(), tmp))
    logger.info(
        "fitted %d centroids on %d frames: %s", tokenizer.num_tokens, len(frames), centroids_file
    )


def audio_key(path: str) -> str:
    """Token-cache key of an audio file: its resolved path, size and mtime."""
    return item_key({"modality": AUDIO, "path": path})


class TokenCache(EmbeddingCache):
    """Token sequences on disk, one folder per tokenizer identity, in atomic shards.

    The :class:`~sense.evaluation.cache.EmbeddingCache` layout, holding one
    variable-length int16 sequence per key instead of an embedding row.

    Example
    -------
    >>> import tempfile
    >>> cache = TokenCache(tempfile.mkdtemp())
    >>> cache.put("tok", ["a"], [torch.tensor([3, 1, 2])])
    >>> cache.get("tok", ["a", "b"])["a"].tolist()
    [3, 1, 2]
    """

    def put(self, identity: str, keys: Sequence[str], tokens: Sequence[torch.Tensor]) -> None:
        if len(keys) != len(tokens):
            raise ValueError(f"{len(keys)} keys but {len(tokens)} token sequences")
        if not keys:
            return
        tokens = [t.detach().cpu().to(torch.int16).reshape(-1) for t in tokens]
        folder = self.model_folder(identity)
        id_file = os.path.join(folder, "identity.txt")
        if not os.path.exists(id_file):
            write_text_atomic(id_file, identity + "\n")
        shard = {"keys": list(keys), "embeddings": tokens}
        path = os.path.join(folder, f"shard-{uuid.uuid4().hex}.pt")
        atomic_write(path, lambda tmp: torch.save(shard, tmp))
        self._load(identity).update(zip(keys, tokens))


def tokenize_files(
    tokenizer: AudioTokenizer,
    paths: Sequence[str],
    cache: TokenCache | None = None,
    batch_size: int = 8,
    flush_every: int = 1024,
) -> dict[str, torch.Tensor]:
    """Tokens (int64 ``[T]``) of every file, computed once: cached ones are read back.

    Files are tokenised in batches sorted by size; the new tokens are written
    to ``cache`` every ``flush_every`` files, so an interrupted run keeps them.
    """
    keys = {p: audio_key(p) for p in paths}
    found = cache.get(tokenizer.identity, keys.values()) if cache is not None else {}
    out = {p: found[k].long() for p, k in keys.items() if k in found}
    todo = [p for p in dict.fromkeys(paths) if p not in out]
    todo.sort(key=lambda p: -_size(p))
    pending: dict[str, torch.Tensor] = {}
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        wavs = [load_audio(p, tokenizer.sample_rate) for p in chunk]
        for path, tokens in zip(chunk, tokenizer.tokenize_waveforms(wavs)):
            out[path] = pending[path] = tokens
        if cache is not None and (len(pending) >= flush_every or start + batch_size >= len(todo)):
            cache.put(tokenizer.identity, [keys[p] for p in pending], list(pending.values()))
            pending.clear()
    if todo:
        logger.info("tokenised %d file(s), %d read from the cache", len(todo), len(found))
    return out


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
