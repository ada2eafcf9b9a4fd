"""mTEDx X speech -> EN / Y text retrieval manifests (SENSE paper, Tables III-IV).

Release layout (one folder per pair after extracting ``mtedx_es-en.tgz`` and
the like; the same scheme as MUST-C, with flac audio)::

    <data_folder>/es-en/data/{train,valid,test}/
        wav/<talk_id>.flac                 one recording per talk
        txt/<split>.yaml                   one segment per line:
            - {duration: 5.22, offset: 15.1, speaker_id: spk.1, wav: <talk_id>}
        txt/<split>.es                     Spanish transcript, line i = segment i
        txt/<split>.en                     English translation, line i = segment i

The ``wav`` field may name the talk with or without its extension. The
parsing is MUST-C's (``recipes/MUSTC/retrieval/ted_segments.py``), imported
from there.

Example
-------
>>> prepare_mtedx("/data/mtedx", "results/manifests", pairs=["es-en", "es-fr"])  # doctest: +SKIP
{'es-en': 'results/manifests/es-en', 'es-fr': 'results/manifests/es-fr'}
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# the release layout is MUST-C's: share its parser, never a copy of it
MUSTC_RECIPE = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "MUSTC", "retrieval")
)
if MUSTC_RECIPE not in sys.path:
    sys.path.insert(0, MUSTC_RECIPE)

from ted_segments import prepare_talk_segments  # noqa: E402

QUERY_SPLITS = ("valid", "test")
SEARCH_SPLITS = ("train", "valid", "test")


def prepare_mtedx(
    data_folder: str,
    save_folder: str,
    pairs: Sequence[str],
    query_splits: Sequence[str] = QUERY_SPLITS,
    search_splits: Sequence[str] = SEARCH_SPLITS,
    dedup_search_text: bool = True,
    skip_prep: bool = False,
) -> dict[str, str]:
    """Prepare each ``<src>-<tgt>`` pair; returns ``{pair: pair folder}``.

    Segments whose audio is missing, unreadable or shorter than the segment,
    and segments without a translation, are left out and listed in the pair's
    ``dropped.tsv``.
    """
    return {
        pair: prepare_talk_segments(
            data_folder,
            save_folder,
            pair,
            query_splits=query_splits,
            search_splits=search_splits,
            audio_extensions=(".flac", ".wav"),
            dedup_search_text=dedup_search_text,
            skip_prep=skip_prep,
        )
        for pair in pairs
    }
