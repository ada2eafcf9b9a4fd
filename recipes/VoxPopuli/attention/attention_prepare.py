"""The utterances of the paper's attention analysis (section VII) from the VoxPopuli release.

The paper analyses "the 4096 French utterances in the 2009 VoxPopuli corpus
that have English speech translations", and the German interpretations of
some of them (Figure 4). From the layout the VoxPopuli scripts write (see
``../retrieval/voxpopuli_prepare.py``, whose readers this module imports)::

    <root>/transcribed_data/fr/<year>/<src_id>.ogg            French source speech
    <root>/transcribed_data/fr/en/s2s.tsv                     ... with English interpretations
    <root>/transcribed_data/fr/de/s2s.tsv, de/<year>/*.ogg    ... and German ones

this writes into ``save_folder``:

- ``utterances.json``: a manifest for ``sense attention`` (and
  :func:`sense.analysis.run.analyze`): the selected French utterances
  (``src_text`` as transcript) and their German interpretations
  (``tgt_text``), linked both ways by ``parallel``;
- ``fr-en/``: the retrieval pair of the same French utterances and their
  English interpretations (speech -> speech), for learned attention against
  mean pooling;
- ``dropped.tsv`` files listing every utterance left out, with the reason.

Example
-------
>>> prepare_attention("/data/voxpopuli", "results/attention/prep")  # doctest: +SKIP
{'utterances': 'results/attention/prep/utterances.json', 'pairs': {'fr-en': 'results/attention/prep/fr-en'}}
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "retrieval")
)

from voxpopuli_prepare import read_s2s, source_audio, target_audio  # noqa: E402

from sense.evaluation import AudioChecker, PrepReport, audio_entry, write_pair  # noqa: E402

logger = logging.getLogger(__name__)

MANIFEST = "utterances.json"


def prepare_attention(
    data_folder: str,
    save_folder: str,
    source_lang: str = "fr",
    pivot_lang: str = "en",
    parallel_langs: Sequence[str] = ("de",),
    years: Sequence[str] | None = ("2009",),
    max_utterances: int | None = 4096,
    manifest: str | None = None,
) -> dict:
    """Select the utterances and write the manifest and the retrieval pair.

    Parameters
    ----------
    data_folder : str
        The ``--root`` given to the VoxPopuli scripts.
    save_folder : str
        Where ``utterances.json``, the pair folder and the reports go.
    source_lang : str
        Language of the analysed speech (the paper: ``fr``).
    pivot_lang : str
        Interpretation language that selects the utterances, and the search
        side of the retrieval pair (the paper: ``en``).
    parallel_langs : sequence of str
        Interpretations added to the manifest, linked by ``parallel``
        (Figure 4: ``de``); a language without an ``s2s.tsv`` is skipped with
        a warning.
    years : sequence of str, optional
        Sessions kept, by the first four characters of the id (the paper:
        2009); ``None`` keeps all.
    max_utterances : int, optional
        The first N utterances in id order (the paper: 4096); ``None``: all.
    manifest : str, optional
        ``s2s.tsv`` or ``s2s_ref.tsv`` (default: whichever exists).

    Returns
    -------
    dict
        ``{"utterances": manifest path, "pairs": {"<src>-<pivot>": folder}}``.
    """
    report = PrepReport(name=f"{source_lang} utterances with {pivot_lang} interpretations")
    checker = AudioChecker()
    rows = read_s2s(data_folder, source_lang, pivot_lang, manifest, report)
    utterances: dict[str, dict] = {}
    query: dict[str, dict] = {}
    search: dict[str, dict] = {}
    where = f"{source_lang}/{pivot_lang}"
    for src_id in sorted(rows):
        if max_utterances is not None and len(utterances) >= max_utterances:
            break
        if years is not None and src_id[:4] not in {str(y) for y in years}:
            continue
        rec = rows[src_id]
        path = source_audio(data_folder, source_lang, src_id)
        problem = checker.check(path)
        if problem is not None:
            report.add(source_lang, where, src_id, f"{problem}: {path}")
            continue
        interpretation = target_audio(data_folder, source_lang, pivot_lang, rec["tgt_id"])
        problem = checker.check(interpretation)
        if problem is not None:
            report.add(source_lang, where, src_id, f"interpretation {problem}: {interpretation}")
            continue
        utterances[src_id] = audio_entry(
            path, source_lang, text=rec.get("src_text", ""), parallel={}
        )
        query[src_id] = audio_entry(path, source_lang, target=rec["tgt_id"])
        search[rec["tgt_id"]] = audio_entry(interpretation, pivot_lang)
    if not utterances:
        report.write(os.path.join(save_folder, "dropped.tsv"))
        raise ValueError(
            f"{data_folder}: no {source_lang} utterance with an {pivot_lang} interpretation "
            f"in {list(years) if years else 'any year'}; {report.summary()}"
        )
    for lang in parallel_langs:
        _add_interpretations(data_folder, lang, source_lang, manifest, utterances, checker, report)
    pair = write_pair(
        os.path.join(save_folder, f"{source_lang}-{pivot_lang}"),
        query,
        search,
        PrepReport(name=f"{source_lang}-{pivot_lang}"),
        {"data_folder": os.path.abspath(data_folder), "utterances": sorted(query)},
    )
    os.makedirs(save_folder, exist_ok=True)
    report.write(os.path.join(save_folder, "dropped.tsv"))
    logger.info("%s (details in %s/dropped.tsv)", report.summary(), save_folder)
    path = os.path.join(save_folder, MANIFEST)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(utterances, f, ensure_ascii=False, indent=1)
    return {"utterances": path, "pairs": {f"{source_lang}-{pivot_lang}": pair}}


def _add_interpretations(data_folder, lang, source_lang, manifest, utterances, checker, report):
    """Add the ``lang`` interpretations of the selected utterances, linked by ``parallel``."""
    try:
        rows = read_s2s(data_folder, source_lang, lang, manifest, report)
    except FileNotFoundError as err:
        logger.warning("no %s interpretations: %s", lang, err)
        return
    for src_id in [k for k, e in utterances.items() if e["lang"] == source_lang]:
        if src_id not in rows:
            continue
        tgt_id = rows[src_id]["tgt_id"]
        path = target_audio(data_folder, source_lang, lang, tgt_id)
        problem = checker.check(path)
        if problem is not None:
            report.add(lang, f"{source_lang}/{lang}", tgt_id, f"{problem}: {path}")
            continue
        utterances[tgt_id] = audio_entry(
            path, lang, text=rows[src_id].get("tgt_text", ""), parallel={source_lang: src_id}
        )
        utterances[src_id]["parallel"][lang] = tgt_id
