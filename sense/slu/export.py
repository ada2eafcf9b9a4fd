"""Export a trained SLU model (encoder + CTC probe + label markup) for :class:`sense.slu.SLU`.

The folder::

    <folder>/
      hyperparams.yaml    HyperPyYAML: encoder, probe, sample rate, pretrainer
      encoder/            the fine-tuned transformers model and its preprocessor config
      probe.ckpt          state dict of the CTC probe
      markup.json         label -> opener map and output alphabet (LabelMarkup)
      meta.json           format, sizes, labels, training info (``extra``)

Like :func:`sense.export.export_model`, the folder is written under a
temporary name and renamed into place, and ``model_dir`` in
``hyperparams.yaml`` is a ``!PLACEHOLDER`` filled at load time.
"""

from __future__ import annotations

import logging
import os

from sense import formats
from sense.export import (
    ENCODER_CLASS,
    ENCODER_DIR,
    frozen_encoder_args,
    has_format,
    save_encoder,
    save_state,
    write_description,
)
from sense.hparams_yaml import PLACEHOLDER, New, render_hparams
from sense.io import check_output_folder, staged_folder
from sense.slu.markup import LabelMarkup

logger = logging.getLogger(__name__)

FORMAT_NAME = formats.SLU_MODEL
FORMAT_VERSION = 1
PROBE_FILE = "probe.ckpt"
MARKUP_FILE = "markup.json"
#: Seconds of audio per CTC frame when the encoder does not say (50 Hz encoders).
DEFAULT_FRAME_SECONDS = 0.02


def is_slu_folder(folder: str) -> bool:
    """Whether ``folder`` holds a model written by :func:`export_slu_model`."""
    return has_format(folder, FORMAT_NAME)


HEADER = """\
# An SLU model (speech encoder + CTC probe) exported by sense.slu.export (format {version}).
# Load it with:
#   from sense.slu import SLU
#   model = SLU.from_hparams(source="<this folder or its hub id>")
# The output alphabet and the label openers are in {markup}."""


def render_slu_hparams(probe, sample_rate: int) -> str:
    """The text of an exported SLU model's ``hyperparams.yaml``."""
    probe_args = {
        "input_dim": int(probe.input_dim),
        "num_symbols": int(probe.num_symbols),
        "hidden_dim": int(probe.hidden_dim),
        "dropout": float(probe.dropout),
    }
    entries = {
        "model_dir": PLACEHOLDER,
        "sample_rate": int(sample_rate),
        "encoder": New(ENCODER_CLASS, frozen_encoder_args()),
        "probe": New("sense.nnet.heads.CTCProbe", probe_args),
    }
    return render_hparams(
        HEADER.format(version=FORMAT_VERSION, markup=MARKUP_FILE),
        entries,
        {"sample_rate": "Audio is read as mono at this rate."},
        modules=["encoder", "probe"],
        loadables={"probe": PROBE_FILE},
    )


def export_slu_model(
    folder: str,
    encoder,
    probe,
    markup: LabelMarkup,
    extra: dict | None = None,
    force: bool = False,
) -> str:
    """Write a fine-tuned encoder, its CTC probe and the markup as a loadable folder.

    Parameters
    ----------
    folder : str
        Destination (an earlier SLU export there is replaced; anything else
        is refused unless ``force``).
    encoder : sense.lobes.speech.HFSpeechEncoder
        The fine-tuned encoder.
    probe : sense.nnet.heads.CTCProbe
        The trained probe.
    markup : LabelMarkup
        The probe's output alphabet and label openers.
    extra : dict, optional
        Training information for ``meta.json``.

    Returns
    -------
    str
        ``folder`` (absolute).

    Example
    -------
    >>> import tempfile
    >>> from sense.lobes.speech import HFSpeechEncoder
    >>> from sense.nnet.heads import CTCProbe
    >>> from sense.demo.tiny import build_tiny_w2v_bert
    >>> encoder = HFSpeechEncoder(build_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> markup = LabelMarkup.build([("at seven", [["time", 3, 8]])])
    >>> probe = CTCProbe(encoder.output_dim, len(markup), hidden_dim=8)
    >>> folder = export_slu_model(os.path.join(tempfile.mkdtemp(), "m"), encoder, probe, markup)
    >>> sorted(os.listdir(folder))
    ['encoder', 'hyperparams.yaml', 'markup.json', 'meta.json', 'probe.ckpt']
    """
    if probe.input_dim != encoder.output_dim:
        raise ValueError(
            f"the probe takes {probe.input_dim}-dim frames, the encoder gives {encoder.output_dim}"
        )
    if probe.num_symbols != len(markup):
        raise ValueError(f"the probe has {probe.num_symbols} outputs, the markup {len(markup)}")
    folder = os.path.abspath(os.fspath(folder))
    check_output_folder(folder, is_slu_folder, "sense SLU model", force=force)
    with staged_folder(folder) as tmp:
        encoder_info = save_encoder(encoder, os.path.join(tmp, ENCODER_DIR))
        save_state(probe, os.path.join(tmp, PROBE_FILE))
        markup.save(os.path.join(tmp, MARKUP_FILE))
        write_description(
            tmp,
            render_slu_hparams(probe, getattr(encoder, "sample_rate", 16000)),
            FORMAT_NAME,
            FORMAT_VERSION,
            encoder=encoder_info,
            labels=sorted(markup.openers),
            num_symbols=len(markup),
            extra=extra or {},
        )
    logger.info("exported SLU model to %s", folder)
    return folder
