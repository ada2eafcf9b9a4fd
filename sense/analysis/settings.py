"""What :func:`sense.analysis.run.analyze` measures and compares, as two small objects.

:class:`AnalysisSettings` holds the measurement knobs (edge frames, grid,
Table IX size, function words, VAD scope, batch size); :class:`PoolingComparison`
the retrieval comparison's inputs (prepared pairs, the model's source, the
embedding cache), which only make sense together.

Example
-------
>>> settings = AnalysisSettings(top=5, vad_scope="examples")
>>> settings.edge_frames, settings.top, settings.runs_vad_on_all
(5, 5, False)
>>> PoolingComparison({"fr-en": "pairs/fr-en"}, "my-model").cache_in("out")
'out/embedding_cache'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sense.analysis.attention import DEFAULT_GRID, EDGE_FRAMES, TOP_WORDS

__all__ = ["AnalysisSettings", "FunctionWords", "PoolingComparison", "VAD_SCOPES"]

#: Where the VAD runs: every utterance, or the utterances of Figures 3 and 4 only.
VAD_SCOPES = ("all", "examples")
#: Default embedding cache of the comparison, under the output folder.
CACHE_DIR = "embedding_cache"

FunctionWords = Mapping[str, Collection[str]] | Callable[[str], Collection[str] | None] | None


@dataclass(frozen=True)
class AnalysisSettings:
    """How the attention analysis measures (paper, section VII).

    Parameters
    ----------
    edge_frames : int
        Frames counted at each edge for the first- and last-frames mass.
    grid_size : int
        Points of the relative-position grid.
    top : int
        Rows of each half of Table IX.
    function_words : dict or callable, optional
        Language -> normalised function words; default: the ``stop-words``
        package's list for the language.
    batch_size : int
        Utterances per forward pass (the attention and the retrieval comparison).
    vad_scope : {"all", "examples"}
        Run the VAD on every utterance (the figures and the non-speech mass),
        or only on those of Figures 3 and 4 (faster).

    Example
    -------
    >>> AnalysisSettings(vad_scope="some")
    Traceback (most recent call last):
    ...
    ValueError: vad_scope must be 'all' or 'examples', got 'some'
    """

    edge_frames: int = EDGE_FRAMES
    grid_size: int = DEFAULT_GRID
    top: int = TOP_WORDS
    function_words: FunctionWords = None
    batch_size: int = 8
    vad_scope: str = "all"

    def __post_init__(self):
        if self.vad_scope not in VAD_SCOPES:
            raise ValueError(f"vad_scope must be 'all' or 'examples', got {self.vad_scope!r}")

    @property
    def runs_vad_on_all(self) -> bool:
        """Whether every utterance gets voice activity (else the examples only)."""
        return self.vad_scope == "all"


@dataclass(frozen=True)
class PoolingComparison:
    """The retrieval comparison of poolings: what it embeds and with which model.

    Parameters
    ----------
    pairs : dict
        Name -> prepared retrieval pair folder (:func:`sense.analysis.pooling.compare_pooling`).
    source : str
        The model's folder or hub id.
    cache_folder : str, optional
        Embedding cache (default: ``<output_folder>/embedding_cache``); the
        learned attention's embeddings are shared with :mod:`sense.evaluation`
        runs of the model.

    Example
    -------
    >>> PoolingComparison({}, "m", cache_folder="/tmp/cache").cache_in("out")
    '/tmp/cache'
    """

    pairs: Mapping[str, str]
    source: str
    cache_folder: str | None = None

    def __post_init__(self):
        if not self.source:
            raise ValueError("the retrieval comparison needs the model's source (folder or hub id)")

    def cache_in(self, output_folder: str) -> str:
        """The embedding cache to use for an analysis written to ``output_folder``."""
        return self.cache_folder or os.path.join(output_folder, CACHE_DIR)
