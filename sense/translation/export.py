"""Write a trained speech translation model as a folder ``Translator.from_hparams`` loads.

Layout::

    hyperparams.yaml     encoder, projection, decoder, decoding and window settings
    encoder/             the fine-tuned speech encoder (transformers layout)
    decoder/             the fine-tuned decoder with its tokenizer (transformers
                         layout; text encoder layers dropped)
    projection.ckpt      the feed-forward bridge
    meta.json            format, training information
"""

from __future__ import annotations

import logging
import os

from sense import formats, hparams_yaml
from sense.export import (
    ENCODER_CLASS,
    ENCODER_DIR,
    frozen_encoder_args,
    has_format,
    save_encoder,
    save_state,
    write_description,
)
from sense.hparams_yaml import PLACEHOLDER, New, Ref, in_folder
from sense.hparams_yaml import render_hparams as render_hparams_yaml
from sense.io import check_output_folder, staged_folder
from sense.translation.model import DEFAULT_MAX_DECODE_RATIO, DEFAULT_MIN_DECODE_TOKENS

logger = logging.getLogger(__name__)

FORMAT_NAME = formats.TRANSLATOR
FORMAT_VERSION = 1
DECODER_DIR = "decoder"
PROJECTION_FILE = "projection.ckpt"
#: Long recordings are cut at pauses into windows of this length (seconds)
#: and each window is translated on its own.
DEFAULT_MAX_DURATION = 30.0
DEFAULT_WINDOW = 20.0
DEFAULT_BEAM_SIZE = 5
DEFAULT_LENGTH_PENALTY = 1.0


def is_translator_folder(folder: str) -> bool:
    """Whether ``folder`` holds a model written by :func:`export_translator`."""
    return has_format(folder, FORMAT_NAME)


def save_decoder(decoder, folder: str, target_lang: str | None = None) -> dict:
    """Save a :class:`Seq2SeqDecoder` with its tokenizer (transformers layout) into ``folder``.

    Returns the decoder's description for ``meta.json`` (``target_lang``:
    the model's default language, the decoder's own by default).
    """
    decoder.model.save_pretrained(folder)
    decoder.tokenizer.save_pretrained(folder)
    return {
        "model_type": decoder.model_type,
        "trained_from": decoder.source,
        "target_lang": target_lang or decoder.target_lang,
    }


#: Pretrainer hook of every trained state in a translation folder.
STRICT_HOOK = hparams_yaml.STRICT_HOOK
DECODER_CLASS = "sense.translation.model.Seq2SeqDecoder"
LONG_RECORDINGS = (
    "Recordings longer than max_duration seconds are cut at pauses into windows\n"
    "of at most window_duration seconds, each translated on its own."
)


def translation_hparams(
    header: str,
    sample_rate: int,
    target_lang: str,
    decoding_comment: str,
    decoding: dict,
    max_duration: float,
    window: float,
    modules: dict[str, tuple[str, dict]],
    loadables: dict[str, tuple[str, str]],
) -> str:
    """A translation folder's ``hyperparams.yaml``: speech modules, then the text decoder.

    Parameters
    ----------
    header : str
        Comment lines on top (what the folder is, how to load it).
    sample_rate, target_lang
        Audio rate; default language code of the translations.
    decoding_comment, decoding
        Comment and values (plain numbers) of the decoding settings.
    max_duration, window : float
        Long-recording settings (seconds).
    modules : dict
        ``name -> (class, {argument: value})`` of the modules before the
        decoder (:class:`sense.translation.model.Seq2SeqDecoder` in ``decoder/``);
        values as :mod:`sense.hparams_yaml` renders them.
    loadables : dict
        ``name -> (file in the folder, pretrainer hook)`` of the trained states.
    """
    decoder_args = {
        "source": in_folder(DECODER_DIR),
        "target_lang": Ref("target_lang"),
        "freeze": True,
    }
    blocks = {**modules, "decoder": (DECODER_CLASS, decoder_args)}
    entries = {
        "model_dir": PLACEHOLDER,
        "sample_rate": int(sample_rate),
        "target_lang": target_lang,
        **decoding,
        "max_duration": float(max_duration),
        "window_duration": float(window),
        **{name: New(cls, args) for name, (cls, args) in blocks.items()},
    }
    comments = {
        "sample_rate": "Audio is read as mono at this rate.",
        "target_lang": "Language token every translation starts with (target_lang=... picks "
        "another).",
        next(iter(decoding)): decoding_comment,
        "max_duration": LONG_RECORDINGS,
    }
    return render_hparams_yaml(header, entries, comments, list(blocks), loadables)


def render_hparams(
    projection,
    target_lang: str,
    sample_rate: int,
    beam_size: int,
    length_penalty: float,
    max_decode_ratio: float,
    min_decode_tokens: int,
    max_duration: float,
    window: float,
) -> str:
    """The text of an exported translator's ``hyperparams.yaml``.

    Example
    -------
    >>> from sense.translation.model import FrameProjection
    >>> text = render_hparams(FrameProjection(8, 4), "en_XX", 16000, 5, 1.0, 0.25, 10, 30.0, 20.0)
    >>> "target_lang: \\"en_XX\\"" in text
    True
    """
    header = f"""\
# A speech translation model exported by sense.translation.export (format {FORMAT_VERSION}).
# Load it with:
#   from sense.translation import Translator
#   model = Translator.from_hparams(source="<this folder or its hub id>")
# Translator.from_hparams fills model_dir with the local folder of the model."""
    decoding_comment = (
        "Beam search (transformers' generate): beams, length normalisation exponent,\n"
        "output tokens per encoder frame at most, and at least min_decode_tokens."
    )
    projection_args = {
        "input_dim": projection.input_dim,
        "output_dim": projection.output_dim,
        "hidden_dim": projection.hidden_dim,
        "dropout": projection.dropout_p,
    }
    return translation_hparams(
        header,
        sample_rate,
        target_lang,
        decoding_comment,
        {
            "beam_size": int(beam_size),
            "length_penalty": float(length_penalty),
            "max_decode_ratio": float(max_decode_ratio),
            "min_decode_tokens": int(min_decode_tokens),
        },
        max_duration,
        window,
        modules={
            "encoder": (ENCODER_CLASS, frozen_encoder_args()),
            "projection": ("sense.translation.model.FrameProjection", projection_args),
        },
        loadables={"projection": (PROJECTION_FILE, STRICT_HOOK)},
    )


def export_translator(
    folder: str,
    encoder,
    projection,
    decoder,
    extra: dict | None = None,
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    max_decode_ratio: float = DEFAULT_MAX_DECODE_RATIO,
    min_decode_tokens: int = DEFAULT_MIN_DECODE_TOKENS,
    max_duration: float = DEFAULT_MAX_DURATION,
    window: float = DEFAULT_WINDOW,
    force: bool = False,
) -> str:
    """Write encoder, projection and decoder as a folder ``Translator.from_hparams`` loads.

    Parameters
    ----------
    folder : str
        Destination; written under a temporary name beside it, then renamed.
        An earlier export there is replaced; anything else only with ``force``.
    encoder : sense.lobes.speech.HFSpeechEncoder
    projection : sense.translation.model.FrameProjection
    decoder : sense.translation.model.Seq2SeqDecoder
    extra : dict, optional
        Training information for ``meta.json``.
    beam_size, length_penalty, max_decode_ratio, min_decode_tokens
        Default decoding settings of the folder.
    max_duration, window : float
        Long-recording settings (seconds).

    Returns
    -------
    str
        ``folder``.
    """
    if projection.input_dim != encoder.output_dim or projection.output_dim != decoder.d_model:
        raise ValueError(
            f"the projection maps {projection.input_dim} -> {projection.output_dim}, the encoder "
            f"gives {encoder.output_dim}-dim frames and the decoder takes {decoder.d_model}"
        )
    if not 0 < window <= max_duration:
        raise ValueError(f"need 0 < window <= max_duration, got {window} and {max_duration}")
    folder = os.path.abspath(os.fspath(folder))
    check_output_folder(folder, is_translator_folder, "sense translator", force=force)
    with staged_folder(folder) as tmp:
        encoder_info = save_encoder(encoder, os.path.join(tmp, ENCODER_DIR))
        decoder_info = save_decoder(decoder, os.path.join(tmp, DECODER_DIR))
        save_state(projection, os.path.join(tmp, PROJECTION_FILE))
        hparams_text = render_hparams(
            projection,
            decoder.target_lang,
            getattr(encoder, "sample_rate", 16000),
            beam_size,
            length_penalty,
            max_decode_ratio,
            min_decode_tokens,
            max_duration,
            window,
        )
        write_description(
            tmp,
            hparams_text,
            FORMAT_NAME,
            FORMAT_VERSION,
            encoder=encoder_info,
            decoder=decoder_info,
            extra=extra or {},
        )
    logger.info("exported translator to %s", folder)
    return folder
