"""SLU manifests and the datasets training reads from them.

An SLU manifest is a SpeechBrain CSV file (:func:`sense.prepare.write_manifest`)
with the columns :data:`SLU_FIELDS`: ``wav`` a whole-utterance audio file
(any format :func:`sense.dataio.load_audio` reads), ``transcript`` the plain
text, ``spans`` a JSON list of ``[label, begin, end]`` character offsets into
the transcript (end exclusive), sorted and non-overlapping. Dataset recipes
(MSNER, SLURP, Speech-MASSIVE, TARIC-SLU, the demo) write one per split.

Example
-------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
>>> write_slu_manifest(path, [{"ID": "u1", "duration": 1.0, "wav": "u1.wav",
...     "language": "en", "transcript": "wake me at seven", "spans": [["time", 11, 16]]}])
>>> rows = read_slu_manifest(path)
>>> rows[0]["spans"], markup_from_manifests([path]).openers
([['time', 11, 16]], {'time': 'Ⓐ'})
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from sense.dataio import load_audio
from sense.prepare import MANIFEST_FIELDS, manifest_dataset, read_manifest, write_manifest
from sense.slu.markup import LabelMarkup, check_spans

#: Columns of an SLU manifest.
SLU_FIELDS = (*MANIFEST_FIELDS, "spans")


def write_slu_manifest(path: str, rows: Iterable[dict]) -> None:
    """Write an SLU manifest; ``spans`` may be given as lists (they are written as JSON)."""
    out = []
    for row in rows:
        row = dict(row)
        if not isinstance(row.get("spans"), str):
            row["spans"] = json.dumps([list(s) for s in row.get("spans", [])], ensure_ascii=False)
        out.append(row)
    write_manifest(path, out, SLU_FIELDS)


def parse_spans(text: str, transcript: str, where: str) -> list[list]:
    """The checked ``[[label, begin, end], ...]`` of a manifest's ``spans`` cell."""
    try:
        spans = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: spans are not JSON ({err})") from err
    if not isinstance(spans, list) or not all(isinstance(s, list) for s in spans):
        raise ValueError(f"{where}: spans must be a JSON list of [label, begin, end]")
    check_spans(transcript, spans, where)
    return spans


def read_slu_manifest(path: str) -> list[dict]:
    """Rows of an SLU manifest with ``spans`` parsed and checked.

    Raises
    ------
    FileNotFoundError
        The manifest is missing.
    ValueError
        A column is missing, or a row's spans are malformed (naming the
        manifest and the row).
    """
    rows = read_manifest(path)
    if rows:
        missing = [f for f in SLU_FIELDS if f not in rows[0]]
        if missing:
            raise ValueError(f"{path}: not an SLU manifest (no column {', '.join(missing)})")
    for row in rows:
        row["spans"] = parse_spans(row["spans"], row["transcript"], f"{path}: row {row['ID']}")
    return rows


def markup_from_manifests(paths: Sequence[str]) -> LabelMarkup:
    """The label markup (openers, alphabet) of the transcripts and labels of ``paths``."""
    return LabelMarkup.build(
        (row["transcript"], row["spans"]) for path in paths for row in read_slu_manifest(path)
    )


def make_slu_datasets(
    manifests: dict[str, str], markup: LabelMarkup, sample_rate: int = 16000
) -> dict[str, DynamicItemDataset]:
    """Datasets yielding ``id, sig, tokens, transcript, spans, language, duration``.

    ``tokens`` are the ids of the annotated target (:meth:`LabelMarkup.encode`),
    ``spans`` the manifest's JSON text (parsed by :func:`parse_spans`).
    """

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate)

    @sb.utils.data_pipeline.takes("transcript", "spans")
    @sb.utils.data_pipeline.provides("tokens")
    def target_pipeline(transcript, spans):
        spans = json.loads(spans) if spans.strip() else []
        return torch.tensor(markup.to_ids(markup.encode(transcript, spans)), dtype=torch.long)

    datasets = {}
    for split, path in manifests.items():
        read_slu_manifest(path)  # a clear error for a missing or malformed manifest
        data = manifest_dataset(path)
        data.add_dynamic_item(audio_pipeline)
        data.add_dynamic_item(target_pipeline)
        data.set_output_keys(["id", "sig", "tokens", "transcript", "spans", "language", "duration"])
        datasets[split] = data
    return datasets
