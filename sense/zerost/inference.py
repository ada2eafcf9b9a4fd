"""SpeechBrain inference interface of a trained ZeroST model: speech into any NLLB language.

:class:`ZeroSTTranslator` is :class:`sense.translation.inference.Translator`
with the Q-Former between encoder and decoder: everything else (files of
any format, long recordings cut at pauses, ``sense translate``) is the same.

>>> model = ZeroSTTranslator.from_hparams(source="path/or/hub-id")  # doctest: +SKIP
>>> model.translate_file("question.mp3", target_lang="deu_Latn")  # doctest: +SKIP
'Wo ist der Bahnhof?'
"""

from __future__ import annotations

import torch

from sense.translation.inference import Translator


class ZeroSTTranslator(Translator):
    """Adapted speech encoder -> Q-Former -> frozen NLLB decoder.

    Load a folder of :func:`sense.zerost.export.export_zerost` with
    :meth:`from_hparams`. ``target_lang`` (of :meth:`translate_file`,
    :meth:`translate_batch`, ...) is any NLLB code; the folder's
    ``target_lang`` is the default.

    Example
    -------
    >>> import tempfile, os
    >>> from sense.demo.tiny import build_tiny_nllb, build_tiny_whisper
    >>> from sense.translation.model import Seq2SeqDecoder
    >>> from sense.zerost.export import export_zerost
    >>> from sense.zerost.qformer import QSimple
    >>> from sense.zerost.speech import AdaptedSpeechEncoder
    >>> decoder = Seq2SeqDecoder(build_tiny_nllb(tempfile.mkdtemp()), "fra_Latn")
    >>> encoder = AdaptedSpeechEncoder(build_tiny_whisper(tempfile.mkdtemp()), decoder.d_model)
    >>> folder = export_zerost(os.path.join(tempfile.mkdtemp(), "zerost"), encoder,
    ...                        QSimple(decoder.d_model, num_queries=4), decoder, max_new_tokens=4)
    >>> model = ZeroSTTranslator.from_hparams(source=folder, device="cpu")
    >>> sorted(os.listdir(folder))
    ['adapters.ckpt', 'decoder', 'encoder', 'hyperparams.yaml', 'meta.json', 'qformer.ckpt']
    >>> len(model.translate_batch(torch.randn(2, 16000), target_lang="deu_Latn", beam_size=1))
    2
    """

    MODULES_NEEDED = ["encoder", "qformer", "decoder"]

    def decoder_memory(self, frames: torch.Tensor, frame_lens: torch.Tensor):
        """The Q-Former's ``[B, num_queries, D]`` outputs, every query valid."""
        queries = self.mods.qformer(frames, frame_lens)
        return queries, torch.ones(queries.shape[0], device=queries.device)

    def decoding_settings(self) -> dict:
        """Length normalisation and a fixed longest output (the memory is always as long)."""
        return {
            "length_penalty": float(self.hparams.length_penalty),
            "max_new_tokens": int(self.hparams.max_new_tokens),
        }


__all__ = ["ZeroSTTranslator"]
