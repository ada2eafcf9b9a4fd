"""The frozen NLLB text encoder's token embeddings of every transcript, computed once.

ZeroST's KD teacher is the NLLB *encoder* output of each transcript: a
``[m, d]`` matrix, ``m`` the transcript's token count. The encoder is frozen,
so :class:`TokenEmbeddingCache` encodes each transcript once and keeps the
matrices on disk; training then never loads the NLLB encoder.

Like :class:`sense.teacher_cache.TeacherCache` (whose row hashes, item
checks and folder lock it shares), a row is reused only while its transcript,
language and teacher are unchanged, and a build is resumable: rows are
encoded in chunks, each chunk written as a shard file and recorded in
``index.json`` atomically, so an interrupted build encodes only what is left.
Give each teacher a folder of its own (:attr:`NLLBTokenEncoder.key`).

Layout of a cache folder::

    index.json               teacher_id, dim, dtype; per id: hash, shard, start, length
    shard-<uuid>.npy         [sum of lengths, D] token embeddings of one chunk

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_nllb
>>> teacher = NLLBTokenEncoder(build_tiny_nllb(tempfile.mkdtemp()))
>>> items = {"u1": "le chat dort", "u2": "the cat sleeps on the sofa"}
>>> cache = TokenEmbeddingCache.build(tempfile.mkdtemp(), items, teacher, {"u1": "fra_Latn"})
>>> tokens, lens = cache.get_batch(["u1", "u2"])
>>> tokens.shape[0], tokens.shape[2], cache.encoded
(2, 32, 2)
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import uuid
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from sense.io import TMP_SUFFIX, save_npy_atomic, write_json_atomic
from sense.lobes.text import settings_key
from sense.teacher_cache import DTYPES, TeacherCacheError, as_pairs, folder_lock, row_hash

logger = logging.getLogger(__name__)

FORMAT = "sense-token-cache/1"
INDEX_FILE = "index.json"
DEFAULT_CHUNK_SIZE = 1024
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 256
#: NLLB's code for English, the language of a transcript with none given.
DEFAULT_LANG = "eng_Latn"
KIND = {"kind": "nllb-encoder"}
_SHARD = re.compile(rf"^shard-[0-9a-f]+\.npy({TMP_SUFFIX})?$")


class NLLBTokenEncoder(torch.nn.Module):
    """The frozen encoder of an NLLB checkpoint: transcripts -> token embedding matrices.

    Each transcript is tokenised as NLLB does for translation (its language
    code first, ``</s>`` last) and encoded; the output rows of its real
    tokens are its matrix.

    Parameters
    ----------
    source : str
        Hub id or folder of an ``M2M100ForConditionalGeneration`` (NLLB) checkpoint.
    max_length : int
        Longest transcript in tokens (longer ones are cut).
    """

    def __init__(self, source: str, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        from transformers import AutoTokenizer, M2M100ForConditionalGeneration

        self.source = _normalise_source(source)
        self.max_length = int(max_length)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source)
            model = M2M100ForConditionalGeneration.from_pretrained(self.source)
        except (OSError, ValueError) as err:
            raise OSError(f"NLLBTokenEncoder: cannot load {self.source!r}: {err}") from err
        self.encoder = model.get_encoder().eval().requires_grad_(False)
        self.output_dim = int(model.config.d_model)

    @staticmethod
    def settings_of(source: str, max_length: int = DEFAULT_MAX_LENGTH) -> dict:
        """The settings that identify a teacher, without loading it."""
        return {"source": _normalise_source(source), "max_length": int(max_length), **KIND}

    @classmethod
    def key_of(cls, source: str, max_length: int = DEFAULT_MAX_LENGTH) -> str:
        """:attr:`key` of the teacher ``source`` would load, without loading it.

        Example
        -------
        >>> NLLBTokenEncoder.key_of("facebook/nllb-200-distilled-600M") == NLLBTokenEncoder.key_of(
        ...     "facebook/nllb-200-distilled-600M", DEFAULT_MAX_LENGTH)
        True
        """
        settings = cls.settings_of(source, max_length)
        return settings_key(settings["source"], settings)

    @property
    def settings(self) -> dict:
        return self.settings_of(self.source, self.max_length)

    @property
    def teacher_id(self) -> str:
        """Identity of the teacher, part of every row hash."""
        return json.dumps(self.settings, sort_keys=True)

    @property
    def key(self) -> str:
        """A cache folder name unique to this teacher and its settings."""
        return self.key_of(self.source, self.max_length)

    @torch.no_grad()
    def encode(
        self, texts: Sequence[str], langs: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[np.ndarray]:
        """One float32 ``[m_i, D]`` matrix per transcript (``langs``: NLLB codes).

        Transcripts run in padded batches of one language, by length.
        """
        device = next(self.encoder.parameters()).device
        out: list = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: (langs[i], len(texts[i])))
        for lang, group in itertools.groupby(order, key=lambda i: langs[i]):
            self.tokenizer.src_lang = lang
            group = list(group)
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in chunk],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(device)
                hidden = self.encoder(**batch).last_hidden_state.float().cpu()
                for i, states, mask in zip(chunk, hidden, batch.attention_mask.bool().cpu()):
                    out[i] = states[mask].numpy()
        return out


class TokenEmbeddingCache:
    """Variable-length teacher matrices of a set of utterances, memory-mapped from a folder.

    Build one with :meth:`build`, open one with :meth:`open`.

    Attributes
    ----------
    teacher_id : str
    dim : int
    encoded : int
        Rows the last :meth:`build` encoded (0 when everything was cached).
    """

    def __init__(self, folder: str, index: dict, encoded: int = 0):
        self.folder = folder
        self.teacher_id = index["teacher_id"]
        self.dim = int(index["dim"])
        self.rows = index["rows"]
        self.encoded = encoded
        self._shards: dict[str, np.ndarray] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, uid) -> bool:
        return uid in self.rows

    def __getstate__(self):
        return {**self.__dict__, "_shards": {}}

    @classmethod
    def open(cls, folder: str) -> TokenEmbeddingCache:
        index = _read_index(folder)
        if index is None:
            raise TeacherCacheError(f"no token cache in {folder!r} (no {INDEX_FILE})")
        return cls(folder, index)

    def _shard(self, name: str) -> np.ndarray:
        if self._pid != os.getpid():
            self._shards, self._pid = {}, os.getpid()
        if name not in self._shards:
            self._shards[name] = np.load(os.path.join(self.folder, name), mmap_mode="r")
        return self._shards[name]

    def __getitem__(self, uid: str) -> torch.Tensor:
        """The ``[m, D]`` float32 matrix of one utterance."""
        if uid not in self.rows:
            raise KeyError(f"utterance {uid!r} is not in the token cache {self.folder!r}")
        _, shard, start, length = self.rows[uid]
        return torch.from_numpy(self._shard(shard)[start : start + length].astype(np.float32))

    def get_batch(self, ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ``[B, M, D]`` matrices and their relative lengths ``[B]``."""
        mats = [self[uid] for uid in ids]
        lengths = torch.tensor([len(m) for m in mats], dtype=torch.float32)
        padded = torch.nn.utils.rnn.pad_sequence(mats, batch_first=True)
        return padded, lengths / padded.shape[1]

    def verify(self, items, languages: Mapping[str, str] | None = None) -> None:
        """Raise :class:`TeacherCacheError` unless every item has an up-to-date row."""
        stale = [
            uid
            for uid, text in as_pairs(items)
            if self.rows.get(uid, [None])[0] != _hash(self.teacher_id, text, uid, languages)
        ]
        if stale:
            raise TeacherCacheError(
                f"token cache {self.folder!r} is stale for {len(stale)} utterances "
                f"(e.g. {stale[:5]}); run TokenEmbeddingCache.build with the current manifest"
            )

    @classmethod
    def build(
        cls,
        folder: str,
        items,
        encoder: NLLBTokenEncoder,
        languages: Mapping[str, str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        dtype: str = "float16",
    ) -> TokenEmbeddingCache:
        """Encode what ``folder`` does not hold yet (resumable), drop what is gone, open it.

        Parameters
        ----------
        folder : str
            Cache folder (created if needed).
        items : dict or iterable of (id, text)
            Utterance id -> transcript.
        encoder : NLLBTokenEncoder
            Anything with ``encode(texts, langs) -> list of [m, D]``,
            ``teacher_id`` and ``output_dim``.
        languages : dict, optional
            Utterance id -> NLLB language code (:data:`DEFAULT_LANG` when missing).
        chunk_size : int
            Rows encoded between two saves.
        dtype : {"float16", "float32"}
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        pairs = as_pairs(items)
        if not pairs:
            raise ValueError("no utterances to encode: items is empty")
        with folder_lock(folder):
            index = _read_index(folder)
            if index is None or index["teacher_id"] != encoder.teacher_id:
                index = {
                    "format": FORMAT,
                    "teacher_id": encoder.teacher_id,
                    "dim": encoder.output_dim,
                    "rows": {},
                }
            hashes = {uid: _hash(encoder.teacher_id, text, uid, languages) for uid, text in pairs}
            todo = [(u, t) for u, t in pairs if index["rows"].get(u, [None])[0] != hashes[u]]
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                langs = [_lang(uid, languages) for uid, _ in chunk]
                mats = encoder.encode([t for _, t in chunk], langs)
                name = f"shard-{uuid.uuid4().hex}.npy"
                save_npy_atomic(os.path.join(folder, name), np.concatenate(mats).astype(dtype))
                offset = 0
                for (uid, _), mat in zip(chunk, mats):
                    index["rows"][uid] = [hashes[uid], name, offset, len(mat)]
                    offset += len(mat)
                write_json_atomic(os.path.join(folder, INDEX_FILE), index)
                logger.info(
                    "token cache %s: %d of %d rows encoded", folder, start + len(chunk), len(todo)
                )
            index["rows"] = {uid: index["rows"][uid] for uid, _ in pairs}
            write_json_atomic(os.path.join(folder, INDEX_FILE), index)
            _remove_unused_shards(folder, index)
        return cls(folder, index, encoded=len(todo))


def _normalise_source(source) -> str:
    """A local folder as an absolute path (one cache whatever the working directory)."""
    source = os.fspath(source)
    local = os.path.expanduser(source)
    return os.path.abspath(local) if os.path.isdir(local) else source


def _lang(uid: str, languages: Mapping[str, str] | None) -> str:
    return (languages or {}).get(uid, DEFAULT_LANG)


def _hash(teacher_id: str, text: str, uid: str, languages: Mapping[str, str] | None) -> str:
    return row_hash(teacher_id, f"{_lang(uid, languages)}\x00{text}")


def _read_index(folder: str) -> dict | None:
    path = os.path.join(folder, INDEX_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        if index.get("format") != FORMAT:
            raise ValueError(f"format {index.get('format')!r}, expected {FORMAT!r}")
        index["teacher_id"], index["dim"], index["rows"]  # noqa: B018 (present)
    except (OSError, ValueError, KeyError) as error:
        raise TeacherCacheError(f"unreadable token cache in {folder!r}: {error}") from error
    return index


def _remove_unused_shards(folder: str, index: dict) -> None:
    used = {row[1] for row in index["rows"].values()}
    for name in os.listdir(folder):
        if _SHARD.match(name) and name not in used:
            os.remove(os.path.join(folder, name))


__all__ = ["NLLBTokenEncoder", "TokenEmbeddingCache", "DEFAULT_LANG"]
