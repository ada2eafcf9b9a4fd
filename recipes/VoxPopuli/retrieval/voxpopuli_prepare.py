"""VoxPopuli speech -> speech retrieval manifests (SENSE paper, Table I).

Accepted layout: the output of the VoxPopuli repository's scripts
(``github.com/facebookresearch/voxpopuli``), unchanged::

    python -m voxpopuli.get_asr_data --root <root> --lang fr          # source speech
    python -m voxpopuli.get_s2s_data --root <root> --source-lang fr --target-lang en

which give::

    <root>/transcribed_data/<src>/<year>/<src_id>.ogg              source utterances
    <root>/transcribed_data/<src>/<tgt>/s2s.tsv                    (s2s_ref.tsv with
                                                                   --use-annotated-target)
    <root>/transcribed_data/<src>/<tgt>/<year>/<tgt_id>.ogg        interpretation segments

``s2s.tsv`` is tab-separated with a header ``src_id src_text src_speaker_id
tgt_id tgt_text``; ``<year>`` is the first four characters of an id
(``20180312-0900-PLENARY-15-fr_20180312-...`` -> ``2018``).

Pairs:

- ``x-en`` (X speech -> EN speech) and ``en-y`` (EN speech -> Y speech), and
  any pair in ``direct`` mode: queries are the source utterances of
  ``transcribed_data/<x>/<y>/s2s.tsv``, the search database their
  interpretations into ``<y>``.
- ``x-y`` with neither side English, in ``pivot`` mode (the default): both
  sides are interpretations of the same English speech. The rows of
  ``transcribed_data/en/<x>/s2s.tsv`` and ``transcribed_data/en/<y>/s2s.tsv``
  sharing a ``src_id`` pair the ``<x>`` interpretation (query) with the
  ``<y>`` interpretation (search).

Example
-------
>>> prepare_voxpopuli("/data/voxpopuli", "results/manifests", pairs=["fr-en", "fr-de"])  # doctest: +SKIP
{'fr-en': 'results/manifests/fr-en', 'fr-de': 'results/manifests/fr-de'}
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sense.evaluation import (
    AudioChecker,
    PrepReport,
    audio_entry,
    pair_is_prepared,
    parse_pair,
    prepare_present_pairs,
    read_tsv,
    write_pair,
)

MODES = ("pivot", "direct")
MANIFESTS = ("s2s.tsv", "s2s_ref.tsv")
REQUIRED_COLUMNS = ("src_id", "tgt_id")
AUDIO_EXT = ".ogg"


def s2s_folder(data_folder: str, src: str, tgt: str) -> str:
    return os.path.join(data_folder, "transcribed_data", src, tgt)


def source_audio(data_folder: str, src: str, src_id: str) -> str:
    """Path of a source utterance written by ``voxpopuli.get_asr_data``."""
    return os.path.join(data_folder, "transcribed_data", src, src_id[:4], src_id + AUDIO_EXT)


def target_audio(data_folder: str, src: str, tgt: str, tgt_id: str) -> str:
    """Path of an interpretation segment written by ``voxpopuli.get_s2s_data``."""
    return os.path.join(s2s_folder(data_folder, src, tgt), tgt_id[:4], tgt_id + AUDIO_EXT)


def read_s2s(
    data_folder: str, src: str, tgt: str, manifest: str | None, report: PrepReport
) -> dict[str, dict]:
    """Rows of ``transcribed_data/<src>/<tgt>/<manifest>`` keyed by ``src_id``.

    ``manifest=None`` takes ``s2s.tsv``, else ``s2s_ref.tsv``. A malformed
    row, or a second row with the same ``src_id``, is reported and skipped.
    """
    where = f"{src}/{tgt}"
    folder = s2s_folder(data_folder, src, tgt)
    names = [manifest] if manifest else list(MANIFESTS)
    paths = [os.path.join(folder, n) for n in names]
    path = next((p for p in paths if os.path.isfile(p)), None)
    if path is None:
        raise FileNotFoundError(
            f"no S2S manifest for {src}->{tgt}: looked for {' and '.join(paths)} "
            f"(python -m voxpopuli.get_s2s_data --source-lang {src} --target-lang {tgt})"
        )
    header, rows = read_tsv(path, header=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: the header lacks {', '.join(missing)} (got {header})")
    out: dict[str, dict] = {}
    for n, row in enumerate(rows, start=2):
        if len(row) != len(header):
            report.add(src, where, f"{path}:{n}", f"malformed line: line {n} of {path}")
            continue
        rec = dict(zip(header, (cell.strip() for cell in row)))
        if not rec["src_id"] or not rec["tgt_id"]:
            report.add(src, where, f"{path}:{n}", f"malformed line: empty id on line {n}")
        elif rec["src_id"] in out:
            report.add(src, where, rec["src_id"], f"duplicate src_id: line {n} of {path}")
        else:
            out[rec["src_id"]] = rec
    return out


def _pairs_direct(data_folder, src, tgt, manifest, report):
    """(item id, query audio, search id, search audio) of a direct pair."""
    for src_id, rec in read_s2s(data_folder, src, tgt, manifest, report).items():
        yield (
            src_id,
            source_audio(data_folder, src, src_id),
            rec["tgt_id"],
            target_audio(data_folder, src, tgt, rec["tgt_id"]),
        )


def _pairs_pivot(data_folder, src, tgt, manifest, report):
    """(item id, query audio, search id, search audio) through the English source."""
    side_x = read_s2s(data_folder, "en", src, manifest, report)
    side_y = read_s2s(data_folder, "en", tgt, manifest, report)
    for en_id, rec in side_x.items():
        if en_id not in side_y:
            report.add(
                src,
                f"en/{src}",
                rec["tgt_id"],
                f"no translation: no {tgt} interpretation of English utterance {en_id}",
            )
            continue
        yield (
            rec["tgt_id"],
            target_audio(data_folder, "en", src, rec["tgt_id"]),
            side_y[en_id]["tgt_id"],
            target_audio(data_folder, "en", tgt, side_y[en_id]["tgt_id"]),
        )


def prepare_voxpopuli(
    data_folder: str,
    save_folder: str,
    pairs: Sequence[str],
    xy_mode: str = "pivot",
    manifest: str | None = None,
    skip_prep: bool = False,
) -> dict[str, str]:
    """Prepare each pair; returns ``{pair: pair folder}``.

    Parameters
    ----------
    data_folder : str
        The ``--root`` given to the VoxPopuli scripts.
    save_folder : str
        Where the pair folders are written.
    pairs : sequence of str
        ``x-en``, ``en-y`` or ``x-y``.
    xy_mode : {"pivot", "direct"}
        How a pair without English is built (module docstring).
    manifest : str, optional
        ``s2s.tsv`` or ``s2s_ref.tsv`` (default: whichever exists, in that order).

    A pair whose query or search audio is missing or unreadable is left out
    and listed in ``dropped.tsv``; so is a query without a translation. A pair
    whose data is not in the download is skipped with a warning.
    """
    if xy_mode not in MODES:
        raise ValueError(f"xy_mode must be one of {MODES}, got {xy_mode!r}")

    def prepare_pair(pair: str) -> str:
        src, tgt = parse_pair(pair)
        if src == tgt:
            raise ValueError(f"{pair}: source and target languages must differ")
        mode = "direct" if "en" in (src, tgt) else xy_mode
        folder = os.path.join(save_folder, pair)
        options = {
            "data_folder": os.path.abspath(data_folder),
            "mode": mode,
            "manifest": manifest,
        }
        if skip_prep or pair_is_prepared(folder, options):
            return folder
        report = PrepReport(name=pair)
        checker = AudioChecker()
        build = _pairs_direct if mode == "direct" else _pairs_pivot
        query: dict[str, dict] = {}
        search: dict[str, dict] = {}
        for item, q_path, s_item, s_path in build(data_folder, src, tgt, manifest, report):
            problem = checker.check(q_path)
            if problem is not None:
                report.add(src, pair, item, f"{problem}: {q_path}")
                continue
            problem = checker.check(s_path)
            if problem is not None:
                report.add(src, pair, item, f"translation {problem}: {s_path}")
                continue
            if s_item in search:
                report.add(src, pair, item, f"duplicate target: {s_item} already has a query")
                continue
            search[s_item] = audio_entry(s_path, tgt)
            query[item] = audio_entry(q_path, src, target=s_item)
        write_pair(folder, query, search, report, options)
        return folder

    return prepare_present_pairs(pairs, prepare_pair)
