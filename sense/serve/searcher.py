"""An index and its model, loaded once, answering text and audio queries with filters.

The web server calls it from several threads: one query is embedded and
searched at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sense.index import SpeechIndex
from sense.serve.query import Filters

#: Filtered views of the index kept (each holds a copy of its rows).
SUBSET_CACHE = 4
NO_FILTERS = Filters()


class Searcher:
    """Embeds queries with ``model`` and searches ``index`` (:meth:`SpeechIndex.search`).

    Parameters
    ----------
    index : SpeechIndex
        The index, built by ``model``.
    model : object
        With ``encode_text(texts, batch_size=...)`` -> ``[B, D]`` and
        ``encode_waveforms(wavs, batch_size=...)`` -> ``[D]`` tensors.
    backend : {"auto", "faiss", "torch"}
        Passed to :meth:`SpeechIndex.search`.
    batch_size : int
        Windows per forward pass of an audio query.

    Example
    -------
    >>> import numpy as np, torch
    >>> class Model:
    ...     def encode_text(self, texts, batch_size=None):
    ...         return torch.eye(2)[[len(t) % 2 for t in texts]]
    >>> index = SpeechIndex({"model": "m"}, np.eye(2, dtype=np.float32),
    ...     [{"id": "a", "kind": "text", "language": "en"}, {"id": "b", "kind": "text"}])
    >>> searcher = Searcher(index, Model())
    >>> [h["id"] for h in searcher.text("ab", 2)], [h["id"] for h in searcher.text("ab", 2, Filters(language="en"))]
    (['a', 'b'], ['a'])
    """

    def __init__(self, index: SpeechIndex, model, backend: str = "auto", batch_size: int = 8):
        self.index = index
        self.model = model
        self.backend = backend
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._subsets: OrderedDict[Filters, SpeechIndex | None] = OrderedDict()

    def text(self, query: str, k: int, filters: Filters = NO_FILTERS) -> list[dict]:
        """The top ``k`` entries for a text query (any language) among those ``filters`` keep."""
        with self._lock:
            embedding = self.model.encode_text([query], batch_size=self.batch_size)[0]
            return self._search(embedding, k, filters)

    def audio(self, wav, k: int, filters: Filters = NO_FILTERS) -> list[dict]:
        """The top ``k`` entries for a ``[T]`` waveform at the model's rate.

        Raises
        ------
        ValueError
            A waveform the model cannot embed (e.g. too short).
        """
        with self._lock:
            embedding = self.model.encode_waveforms([wav], batch_size=self.batch_size)[0]
            return self._search(embedding, k, filters)

    def count(self, filters: Filters = NO_FILTERS) -> int:
        """How many entries ``filters`` keep."""
        with self._lock:
            subset = self._subset(filters)
        return 0 if subset is None else len(subset)

    def _search(self, embedding, k: int, filters: Filters) -> list[dict]:
        subset = self._subset(filters)
        if subset is None:
            return []
        query = embedding.float().cpu().reshape(1, -1)
        return subset.search(query, k=k, backend=self.backend)[0]

    def _subset(self, filters: Filters) -> SpeechIndex | None:
        """The index with only the entries ``filters`` keep (``None`` when none); cached."""
        if not filters:
            return self.index
        if filters in self._subsets:
            self._subsets.move_to_end(filters)
            return self._subsets[filters]
        keep = [i for i, entry in enumerate(self.index.entries) if filters.keeps(entry)]
        subset = self.index.subset(keep) if keep else None  # keeps int8 codes and the ANN
        self._subsets[filters] = subset
        if len(self._subsets) > SUBSET_CACHE:
            self._subsets.popitem(last=False)
        return subset
