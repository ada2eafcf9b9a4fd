"""Write a trained ZeroST model as a folder that ``sense translate`` and its interface load.

Layout::

    hyperparams.yaml     encoder, Q-Former, decoder, decoding and window settings
    encoder/             the frozen speech encoder (transformers layout, with its
                         feature extractor; a Whisper encoder is saved alone)
    adapters.ckpt        the encoder's trained adapters and projection
    qformer.ckpt         the Q-Former
    qformer/             Q-NLLB only: the NLLB config its layers are built from
    decoder/             the frozen NLLB decoder with its tokenizer
    meta.json            format, training information

:class:`sense.zerost.inference.ZeroSTTranslator` loads it
(:func:`sense.translation.inference.load_translator` picks it by the format
in ``meta.json``). The model translates into any language of its NLLB
decoder; ``target_lang`` is only the default.
"""

from __future__ import annotations

import logging
import os

from sense import formats
from sense.export import (
    ENCODER_DIR,
    has_format,
    save_encoder,
    save_state,
    write_description,
)
from sense.hparams_yaml import in_folder
from sense.io import check_output_folder, staged_folder
from sense.translation.export import (
    DECODER_DIR,
    DEFAULT_BEAM_SIZE,
    DEFAULT_LENGTH_PENALTY,
    DEFAULT_MAX_DURATION,
    DEFAULT_WINDOW,
    STRICT_HOOK,
    save_decoder,
    translation_hparams,
)
from sense.zerost.qformer import QFORMERS

logger = logging.getLogger(__name__)

FORMAT_NAME = formats.ZEROST
FORMAT_VERSION = 1
ADAPTERS_FILE = "adapters.ckpt"
QFORMER_FILE = "qformer.ckpt"
QFORMER_CONFIG_DIR = "qformer"
#: Longest translation in tokens (the NLLB decoder reads a fixed number of queries,
#: whatever the length of the speech).
DEFAULT_MAX_NEW_TOKENS = 200


def is_zerost_folder(folder: str) -> bool:
    """Whether ``folder`` holds a model written by :func:`export_zerost`.

    Example
    -------
    >>> import tempfile
    >>> is_zerost_folder(tempfile.mkdtemp())
    False
    """
    return has_format(folder, FORMAT_NAME)


def qformer_arguments(qformer) -> dict:
    """The Q-Former's constructor arguments in an exported folder's ``hyperparams.yaml``.

    Q-NLLB is rebuilt from the config saved in ``qformer/``, without copying
    the NLLB encoder's weights again (its trained state is loaded over it).

    Example
    -------
    >>> from sense.zerost.qformer import QSimple
    >>> qformer_arguments(QSimple(8, num_queries=4))
    {'dim': 8, 'num_queries': 4}
    """
    if getattr(qformer, "name", None) not in QFORMERS or not hasattr(qformer, "settings"):
        raise ValueError(
            f"cannot export {type(qformer).__name__}: not one of the Q-Formers "
            f"{sorted(QFORMERS)} of sense.zerost.qformer"
        )
    args = dict(qformer.settings)
    if qformer.name == "nllb":
        args.update(source=in_folder(QFORMER_CONFIG_DIR), init_from_encoder=False)
    return args


def render_hparams(
    encoder,
    qformer,
    target_lang: str,
    beam_size: int,
    length_penalty: float,
    max_new_tokens: int,
    max_duration: float,
    window: float,
) -> str:
    """The text of an exported ZeroST model's ``hyperparams.yaml``."""
    header = f"""\
# A ZeroST speech translation model exported by sense.zerost.export (format {FORMAT_VERSION}):
# a frozen speech encoder with trained adapters (stages applied in order) and a
# projection, a Q-Former, and a frozen NLLB decoder. Load it with:
#   from sense.zerost.inference import ZeroSTTranslator
#   model = ZeroSTTranslator.from_hparams(source="<this folder or its hub id>")
#   model.translate_file("talk.wav", target_lang="deu_Latn")
# or: sense translate -m <this folder> --target-lang deu_Latn talk.wav
# from_hparams fills model_dir with the local folder of the model."""
    decoding_comment = (
        "Beam search (transformers' generate): beams, length normalisation exponent,\n"
        "and the longest translation in tokens."
    )
    encoder_args = {
        "source": in_folder(ENCODER_DIR),
        "output_dim": int(encoder.output_dim),
        "bottleneck": int(encoder.adapters.bottleneck),
        "stages": list(encoder.adapters.stages),
    }
    qformer_class = f"{type(qformer).__module__}.{type(qformer).__name__}"
    return translation_hparams(
        header,
        getattr(encoder.encoder, "sample_rate", 16000),
        target_lang,
        decoding_comment,
        {
            "beam_size": int(beam_size),
            "length_penalty": float(length_penalty),
            "max_new_tokens": int(max_new_tokens),
        },
        max_duration,
        window,
        modules={
            "encoder": ("sense.zerost.speech.AdaptedSpeechEncoder", encoder_args),
            "qformer": (qformer_class, qformer_arguments(qformer)),
        },
        loadables={
            "encoder": (ADAPTERS_FILE, "sense.zerost.speech.load_trained_parts"),
            "qformer": (QFORMER_FILE, STRICT_HOOK),
        },
    )


def long_recording_settings(encoder, max_duration: float | None, window: float | None):
    """``(max_duration, window)`` in seconds, within what the encoder reads at once.

    Whisper reads a fixed window (:attr:`sense.zerost.speech.WhisperEncoder.window_seconds`):
    longer audio would be cut, so no recording may be longer; defaults fit it.
    """
    limit = getattr(encoder.encoder, "window_seconds", None)
    if max_duration is None:
        max_duration = DEFAULT_MAX_DURATION if limit is None else min(DEFAULT_MAX_DURATION, limit)
    if window is None:
        window = min(DEFAULT_WINDOW, max_duration)
    if limit is not None and max_duration > limit:
        raise ValueError(
            f"max_duration {max_duration:g} s exceeds the {limit:g} s the Whisper encoder reads"
        )
    if not 0 < window <= max_duration:
        raise ValueError(f"need 0 < window <= max_duration, got {window} and {max_duration}")
    return float(max_duration), float(window)


def export_zerost(
    folder: str,
    encoder,
    qformer,
    decoder,
    extra: dict | None = None,
    target_lang: str | None = None,
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_duration: float | None = None,
    window: float | None = None,
    force: bool = False,
) -> str:
    """Write encoder, Q-Former and decoder as a folder ``ZeroSTTranslator.from_hparams`` loads.

    Parameters
    ----------
    folder : str
        Where the model goes (staged beside it, renamed into place when
        complete). Only an earlier ZeroST export is replaced, unless ``force``.
    encoder : sense.zerost.speech.AdaptedSpeechEncoder
        Its frozen encoder is saved whole, its adapters and projection as state.
    qformer : QSimple, QLite or QNLLB
        Rebuilt from its ``settings``.
    decoder : sense.translation.model.Seq2SeqDecoder
        The frozen NLLB decoder (saved with its tokenizer).
    extra : dict, optional
        Training information for ``meta.json``.
    target_lang : str, optional
        Default language code of the translations (default: the decoder's).
    beam_size, length_penalty, max_new_tokens
        Default decoding settings.
    max_duration, window : float, optional
        Long-recording settings (seconds); default 30 and 20, within a
        Whisper encoder's window.

    Returns
    -------
    str
        ``folder``.

    Example: see :class:`sense.zerost.inference.ZeroSTTranslator`.
    """
    target_lang = target_lang or decoder.target_lang
    decoder.language_id(target_lang)  # a clear error for an unknown code
    if encoder.output_dim != qformer.dim or qformer.output_dim != decoder.d_model:
        raise ValueError(
            f"the encoder gives {encoder.output_dim}-dim frames, the Q-Former maps "
            f"{qformer.dim} -> {qformer.output_dim} and the decoder takes {decoder.d_model}"
        )
    max_duration, window = long_recording_settings(encoder, max_duration, window)
    folder = os.path.abspath(os.fspath(folder))
    check_output_folder(folder, is_zerost_folder, "sense ZeroST model", force=force)
    hparams_text = render_hparams(
        encoder,
        qformer,
        target_lang,
        beam_size,
        length_penalty,
        max_new_tokens,
        max_duration,
        window,
    )
    with staged_folder(folder) as tmp:
        encoder_info = save_encoder(encoder.encoder, os.path.join(tmp, ENCODER_DIR))
        save_state(encoder.trained_parts(), os.path.join(tmp, ADAPTERS_FILE))
        save_state(qformer, os.path.join(tmp, QFORMER_FILE))
        if qformer.name == "nllb":
            qformer.config.save_pretrained(os.path.join(tmp, QFORMER_CONFIG_DIR))
        decoder_info = save_decoder(decoder, os.path.join(tmp, DECODER_DIR), target_lang)
        write_description(
            tmp,
            hparams_text,
            FORMAT_NAME,
            FORMAT_VERSION,
            encoder={
                **encoder_info,
                "adapter_stages": list(encoder.adapters.stages),
                "adapter_bottleneck": encoder.adapters.bottleneck,
            },
            qformer={"name": qformer.name, **qformer.settings},
            decoder=decoder_info,
            extra=extra or {},
        )
    logger.info("exported ZeroST model to %s", folder)
    return folder


__all__ = ["FORMAT_NAME", "export_zerost", "is_zerost_folder"]
