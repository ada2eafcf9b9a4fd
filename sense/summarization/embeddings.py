"""Sentence and utterance embeddings of documents, computed once and kept on disk.

A document is a list of *units*: the sentences of an article (embedded by
the teacher's text encoder) or the utterances of a recording (embedded by a
SENSE speech encoder). Every unit is one row of a
:class:`sense.teacher_cache.TeacherCache`, keyed ``<doc id>/<index>``, so the
machinery that caches the distillation targets also caches these: each row
is encoded once, a build is resumable, and a row is re-encoded only when its
sentence (or its audio file, segment and size) or the encoder changes.

An embedder is anything with ``encode(units, batch_size) -> [N, D]``,
``output_dim`` and ``teacher_id``: :class:`TextEmbedder` (a
:class:`sense.lobes.text.TeacherSpec`, optionally centred as a SENSE model's
text side is) and :class:`SpeechSegmentEmbedder` (a SENSE model; a unit is a
segment key from :func:`segment_key`).

Example
-------
>>> import tempfile
>>> from sense.lobes.text import TeacherSpec
>>> docs = {"d1": ["Le chat dort.", "Il fait beau."], "d2": ["Bonjour."]}
>>> cache = build_document_cache(docs, lambda: TextEmbedder(TeacherSpec("usem3")),
...                              tempfile.mkdtemp(), progress=False)
>>> document_embeddings(cache, "d1", 2).shape
torch.Size([2, 512])
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from sense.teacher_cache import DEFAULT_DTYPE, TeacherCache, build_distributed

#: Units per encoder forward pass when a cache is built.
DEFAULT_BATCH_SIZE = 64


def unit_id(doc_id: str, index: int) -> str:
    """Cache row of unit ``index`` of a document.

    Example
    -------
    >>> unit_id("article-7", 3)
    'article-7/0003'
    """
    return f"{doc_id}/{index:04d}"


def document_embeddings(cache: TeacherCache, doc_id: str, num_units: int) -> torch.Tensor:
    """``[num_units, D]`` float32 embeddings of a document's units, in order."""
    return cache.get_batch([unit_id(doc_id, i) for i in range(num_units)])


def segment_key(path: str, start: float | None = None, end: float | None = None) -> str:
    """What determines a segment's embedding: real path, span, file size and mtime.

    A re-recorded or re-cut file gets a new key, so its cached row is re-encoded.

    Example
    -------
    >>> json.loads(segment_key("/no/such.wav", 1.0, 2.5))[1:3]
    [1.0, 2.5]
    """
    real = os.path.realpath(os.fspath(path))
    try:
        stat = os.stat(real)
        stamp = [stat.st_size, stat.st_mtime_ns]
    except OSError:
        stamp = [None, None]
    return json.dumps([real, start, end, *stamp])


def _hash(tensor: torch.Tensor) -> str:
    data = tensor.detach().float().cpu().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class TextEmbedder:
    """A teacher's sentence embeddings, optionally centred like a SENSE model's text side.

    Parameters
    ----------
    spec : sense.lobes.text.TeacherSpec
        The text encoder (BGE-M3 for SENSE, LaBSE for SAMU-XLSR, ...).
    center : torch.Tensor, optional
        ``[D]`` mean teacher embedding a SENSE student was trained against
        (``teacher_center.pt`` of its folder): subtracted, then renormalised,
        so text lands where that model's speech embeddings are.
    device : str

    Example
    -------
    >>> from sense.lobes.text import TeacherSpec
    >>> TextEmbedder(TeacherSpec("usem3")).encode(["Bonjour."]).shape
    torch.Size([1, 512])
    """

    def __init__(self, spec, center: torch.Tensor | None = None, device: str = "cpu"):
        self.encoder = spec.load(device)
        self.output_dim = int(self.encoder.output_dim)
        self.center = None if center is None else torch.as_tensor(center).float().reshape(-1)
        if self.center is not None and self.center.numel() != self.output_dim:
            raise ValueError(
                f"the centre has {self.center.numel()} values, the teacher {self.output_dim}"
            )
        self.teacher_id = self.encoder.teacher_id
        if self.center is not None:
            self.teacher_id += f"|center:{_hash(self.center)}"

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> torch.Tensor:
        emb = self.encoder.encode(list(texts), batch_size=batch_size).float().cpu()
        if self.center is not None:
            emb = F.normalize(emb - self.center, dim=-1)
        return emb


class SpeechSegmentEmbedder:
    """SENSE embeddings of audio segments given by :func:`segment_key` strings.

    Each file is read once per call; every segment is embedded whole (pooled
    over its windows when longer than the model's ``max_duration``).

    Parameters
    ----------
    model : sense.inference.SENSE
        A loaded model.
    identity : str
        Names the model in the cache (e.g. its content fingerprint).
    """

    def __init__(self, model, identity: str):
        self.model = model
        self.output_dim = int(model.output_dim)
        self.teacher_id = f"sense-speech:{identity}"

    @classmethod
    def from_folder(cls, source: str, device: str = "cpu") -> SpeechSegmentEmbedder:
        """Load a SENSE model folder; its identity is the folder's content fingerprint."""
        from sense.inference import SENSE
        from sense.io import content_fingerprint

        model = SENSE.from_hparams(source=source, device=device)
        return cls(model, content_fingerprint(model.hparams.model_dir))

    def encode(self, keys: Sequence[str], batch_size: int | None = None) -> torch.Tensor:
        from sense.dataio import AudioError

        segments, files = [], {}
        for key in keys:
            path, start, end, *_ = json.loads(key)
            if path not in files:
                files[path] = self.model.load_audio(path)
            wav = files[path]
            rate = self.model.sample_rate
            lo = 0 if start is None else int(round(start * rate))
            hi = wav.numel() if end is None else int(round(end * rate))
            if hi <= lo:
                raise AudioError(path, f"empty segment {start}-{end} s")
            segments.append((path, wav[lo:hi]))
        try:
            embs = self.model.encode_waveforms(
                [w for _, w in segments], batch_size=batch_size or DEFAULT_BATCH_SIZE
            )
        except ValueError as err:  # "waveform i: reason"
            index = str(err).split(":", 1)[0].removeprefix("waveform ")
            path = segments[int(index)][0] if index.isdigit() else "<segment>"
            raise AudioError(path, str(err)) from err
        return torch.stack(embs).float().cpu()


def build_document_cache(
    documents: Mapping[str, Sequence[str]],
    make_embedder: Callable[[], object],
    folder: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dtype: str = DEFAULT_DTYPE,
    progress: bool = True,
) -> TeacherCache:
    """Embed every unit of every document once into a cache in ``folder``.

    Parameters
    ----------
    documents : mapping
        ``{doc id: [unit, ...]}``; a unit is a sentence for a
        :class:`TextEmbedder`, a :func:`segment_key` for a
        :class:`SpeechSegmentEmbedder`.
    make_embedder : callable
        Takes no argument and returns the embedder; called only when rows are
        missing (a complete cache loads no model), on every rank under DDP.
    folder : str
        The cache folder (one per embedder: name it after the encoder).
    batch_size, dtype, progress
        As for :meth:`sense.teacher_cache.TeacherCache.build`.

    Returns
    -------
    TeacherCache
        Verified against ``documents``.
    """
    from sense.teacher_cache import TeacherCacheError

    items = {
        unit_id(doc_id, i): unit
        for doc_id, units in documents.items()
        for i, unit in enumerate(units)
    }
    try:  # complete already: no encoder to load
        cache = TeacherCache.open(folder)
        cache.verify(items)
        return cache
    except TeacherCacheError:
        pass
    return build_distributed(
        folder, items, make_embedder, batch_size=batch_size, dtype=dtype, progress=progress
    )
