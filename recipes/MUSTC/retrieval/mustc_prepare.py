"""MUST-C EN speech -> Y text retrieval manifests (SENSE paper, Table II).

Release layout (MUST-C v1.0 / v1.2 / v2.0, one folder per pair after
extracting ``MUSTC_v1.0_en-de.tar.gz`` and the like)::

    <data_folder>/en-de/data/{train,dev,tst-COMMON,tst-HE}/
        wav/ted_767.wav ...                one recording per talk
        txt/<split>.yaml                   one segment per line:
            - {duration: 3.5, offset: 16.19, rW: 9, uW: 0, speaker_id: spk.767, wav: ted_767.wav}
        txt/<split>.en                     English transcript, line i = segment i
        txt/<split>.de                     German translation, line i = segment i

Queries: the English segments of ``query_splits`` (cut from the talk
recordings by offset and duration); search database: the ``<tgt>`` text of
``search_splits``. See ``README.md`` for the defaults and how they match the
paper's database sizes.

Example
-------
>>> prepare_mustc("/data/MUSTC", "results/manifests", pairs=["en-de"])  # doctest: +SKIP
{'en-de': 'results/manifests/en-de'}
"""

from __future__ import annotations

from collections.abc import Sequence

from ted_segments import prepare_talk_segments

from sense.evaluation import parse_pair

QUERY_SPLITS = ("dev", "tst-COMMON", "tst-HE")
SEARCH_SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")


def prepare_mustc(
    data_folder: str,
    save_folder: str,
    pairs: Sequence[str],
    query_splits: Sequence[str] = QUERY_SPLITS,
    search_splits: Sequence[str] = SEARCH_SPLITS,
    dedup_search_text: bool = True,
    skip_prep: bool = False,
) -> dict[str, str]:
    """Prepare each ``en-<tgt>`` pair; returns ``{pair: pair folder}``.

    Segments whose audio is missing, unreadable or shorter than the segment,
    and segments without a translation, are left out and listed in the pair's
    ``dropped.tsv``.
    """
    out = {}
    for pair in pairs:
        src, _ = parse_pair(pair)
        if src != "en":
            raise ValueError(f"MUST-C pairs are en-<tgt>, got {pair!r}")
        out[pair] = prepare_talk_segments(
            data_folder,
            save_folder,
            pair,
            query_splits=query_splits,
            search_splits=search_splits,
            audio_extensions=(".wav", ".flac"),
            dedup_search_text=dedup_search_text,
            skip_prep=skip_prep,
        )
    return out
