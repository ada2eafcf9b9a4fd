"""Embeddings on disk, keyed by the encoder's identity and what determines each item.

A re-run, a second pair sharing a side, or a second model recomputes nothing
the cache already has: audio is keyed by its resolved path, segment, file
size and mtime and language, text by the text and its language.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence

import torch

from sense.evaluation.manifests import AUDIO, TEXT
from sense.io import atomic_write, write_text_atomic

logger = logging.getLogger(__name__)


def item_key(entry: Mapping) -> str:
    """Cache key of a manifest entry: what determines its embedding.

    Audio: the resolved path, the segment, the file's size and mtime and the
    language (a re-recorded or re-cut file gets a new key); text: the text
    and its language.

    Example
    -------
    >>> from sense.evaluation.manifests import text_entry
    >>> item_key(text_entry("hi", "en")) == item_key(text_entry("hi", "en"))
    True
    """
    if entry["modality"] == TEXT:
        parts = [TEXT, entry["text"], entry.get("lang")]
    else:
        path = os.path.realpath(entry["path"])
        try:
            stat = os.stat(path)
            stamp = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            stamp = [None, None]
        parts = [AUDIO, path, entry.get("start"), entry.get("duration"), *stamp, entry.get("lang")]
    return hashlib.sha1(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:40] or "model"


class EmbeddingCache:
    """Embeddings on disk, one folder per encoder identity, written in shards.

    Shards are written atomically (temporary file, then rename), so an
    interrupted run leaves only whole shards; the next run reuses them.

    Example
    -------
    >>> import tempfile
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> cache.put("model-a", ["k1", "k2"], torch.ones(2, 3))
    >>> sorted(cache.get("model-a", ["k1", "k3"]))
    ['k1']
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._loaded: dict[str, dict[str, torch.Tensor]] = {}

    def model_folder(self, identity: str) -> str:
        digest = hashlib.sha1(identity.encode()).hexdigest()[:16]
        name = _slug(identity.split(":", 2)[-1].split("/")[-1])
        return os.path.join(self.folder, f"{name}-{digest}")

    def _load(self, identity: str) -> dict[str, torch.Tensor]:
        if identity not in self._loaded:
            table: dict[str, torch.Tensor] = {}
            folder = self.model_folder(identity)
            for path in sorted(glob.glob(os.path.join(folder, "shard-*.pt"))):
                try:
                    shard = torch.load(path, map_location="cpu", weights_only=True)
                    keys, embs = shard["keys"], shard["embeddings"]
                except Exception as err:  # a damaged shard costs a recomputation only
                    logger.warning("ignoring unreadable cache shard %s (%s)", path, err)
                    continue
                table.update(zip(keys, embs))
            self._loaded[identity] = table
        return self._loaded[identity]

    def get(self, identity: str, keys: Iterable[str]) -> dict[str, torch.Tensor]:
        """The cached embeddings among ``keys``."""
        table = self._load(identity)
        return {k: table[k] for k in keys if k in table}

    def put(self, identity: str, keys: Sequence[str], embeddings: torch.Tensor) -> None:
        """Store embeddings [N, D] under ``keys`` (one new shard)."""
        if len(keys) == 0:
            return
        embeddings = embeddings.detach().float().cpu().contiguous()
        if embeddings.dim() != 2 or embeddings.shape[0] != len(keys):
            raise ValueError(f"{len(keys)} keys but embeddings of shape {tuple(embeddings.shape)}")
        folder = self.model_folder(identity)
        id_file = os.path.join(folder, "identity.txt")
        if not os.path.exists(id_file):
            write_text_atomic(id_file, identity + "\n")
        shard = {"keys": list(keys), "embeddings": embeddings}
        path = os.path.join(folder, f"shard-{uuid.uuid4().hex}.pt")
        atomic_write(path, lambda tmp: torch.save(shard, tmp))
        self._load(identity).update(zip(keys, embeddings))
