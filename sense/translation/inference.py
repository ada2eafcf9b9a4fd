"""SpeechBrain inference interface of a trained speech translation model.

:class:`Translator` loads a folder written by
:func:`sense.translation.export.export_translator` (locally or from the
model hub) and translates speech to text; :func:`load_translator` also
loads ZeroST folders (:class:`sense.zerost.inference.ZeroSTTranslator`):

>>> model = Translator.from_hparams(source="path/or/hub-id")  # doctest: +SKIP
>>> model.translate_file("question.mp3")  # doctest: +SKIP
'Where is the station?'

Audio files of any format soundfile reads, any rate and channel count, are
down-mixed and resampled to 16 kHz. Recordings longer than ``max_duration``
seconds are cut at pauses (:func:`sense.windows.split_waveform`, ``"silence"``)
into windows, each translated on its own; the translations are joined.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from sense.dataio import AudioError, pad_batch
from sense.inference import SenseModel, audio_error_reason
from sense.windows import split_waveform

DEFAULT_BATCH_SIZE = 8
#: Windows of one recording are cut at pauses, without overlap.
WINDOW_SPLIT = "silence"


class Translator(SenseModel):
    """Speech encoder + projection + text decoder, for translation.

    Load with :meth:`from_hparams` (a folder or a hub id), as
    :class:`sense.inference.SENSE`; ``overrides`` may change e.g.
    ``beam_size`` or ``max_duration``.

    Example
    -------
    >>> import tempfile, os
    >>> from sense.lobes.speech import HFSpeechEncoder
    >>> from sense.demo.tiny import build_tiny_mbart, build_tiny_wav2vec2
    >>> from sense.translation.model import FrameProjection, Seq2SeqDecoder
    >>> from sense.translation.export import export_translator
    >>> enc = HFSpeechEncoder(build_tiny_wav2vec2(tempfile.mkdtemp()))
    >>> dec = Seq2SeqDecoder(build_tiny_mbart(tempfile.mkdtemp()))
    >>> folder = export_translator(os.path.join(tempfile.mkdtemp(), "st"), enc,
    ...                            FrameProjection(enc.output_dim, dec.d_model), dec)
    >>> model = Translator.from_hparams(source=folder, device="cpu")
    >>> len(model.translate_batch(torch.randn(2, 16000), torch.tensor([1.0, 0.5]), beam_size=2))
    2
    """

    MODULES_NEEDED = ["encoder", "projection", "decoder"]
    HPARAMS_NEEDED = ["sample_rate", "model_dir"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sample_rate = int(self.hparams.sample_rate)

    def _setting(self, name: str, value):
        return getattr(self.hparams, name) if value is None else value

    # -- batches -----------------------------------------------------------------------

    @torch.no_grad()
    def translate_batch(
        self,
        wavs: torch.Tensor,
        wav_lens: torch.Tensor | None = None,
        beam_size: int | None = None,
        target_lang: str | None = None,
    ) -> list[str]:
        """Translate a padded batch of 16 kHz waveforms, each in one piece.

        Parameters
        ----------
        wavs : torch.Tensor
            [B, T] waveforms (or [T] for one).
        wav_lens : torch.Tensor, optional
            [B] relative lengths in (0, 1]; all 1 by default.
        beam_size : int, optional
            Beams (1: greedy); default: the model's ``beam_size``.
        target_lang : str, optional
            Language token to force instead of the model's.

        Returns
        -------
        list of str
            One translation per waveform.
        """
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        wavs = wavs.to(self.device).float()
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=self.device)
        decoder = self.mods.decoder
        default_lang = decoder.target_lang
        if target_lang is not None:
            decoder.set_target_lang(target_lang)
        try:
            with self.inference_ctx:
                frames, frame_lens = self.mods.encoder(wavs, wav_lens.to(self.device).float())
                memory, memory_lens = self.decoder_memory(frames, frame_lens)
                return decoder.generate(
                    memory,
                    memory_lens,
                    beam_size=int(self._setting("beam_size", beam_size)),
                    **self.decoding_settings(),
                )
        finally:
            decoder.set_target_lang(default_lang)

    def decoder_memory(self, frames: torch.Tensor, frame_lens: torch.Tensor):
        """What the decoder attends to: the projected ``[B, T, D]`` frames and their lengths.

        The one step between encoder and decoder that differs between models
        (:class:`sense.zerost.inference.ZeroSTTranslator`: the Q-Former).
        """
        return self.mods.projection(frames), frame_lens

    def decoding_settings(self) -> dict:
        """The folder's arguments of ``Seq2SeqDecoder.generate`` besides the beam size."""
        return {
            "length_penalty": float(self.hparams.length_penalty),
            "max_decode_ratio": float(self.hparams.max_decode_ratio),
            "min_decode_tokens": int(self.hparams.min_decode_tokens),
        }

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> list[str]:
        """Same as :meth:`translate_batch`."""
        return self.translate_batch(wavs, wav_lens)

    # -- recordings of any length ------------------------------------------------------

    def translate_waveforms(
        self,
        wavs: Sequence[torch.Tensor],
        beam_size: int | None = None,
        target_lang: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_duration: float | None = None,
        window: float | None = None,
    ) -> list[str | ValueError]:
        """Translate 1-D 16 kHz waveforms of any length.

        A recording longer than ``max_duration`` seconds is cut at pauses
        into windows of at most ``window`` seconds; their translations are
        joined with a space. Windows run in length-sorted batches.

        Returns
        -------
        list
            One translation per waveform, or the ``ValueError`` saying why
            that waveform could not be translated (too short, empty).
        """
        max_duration = float(self._setting("max_duration", max_duration))
        window = float(self._setting("window_duration", window))
        min_samples = getattr(self.mods.encoder, "min_samples", 1)
        results: list = [None] * len(wavs)
        pieces = []  # (waveform index, window index, samples)
        spans_of = {}
        for i, wav in enumerate(wavs):
            wav = torch.as_tensor(wav).float().reshape(-1).cpu()
            if wav.numel() < min_samples:
                ms = 1000 / self.sample_rate
                results[i] = ValueError(
                    f"too short ({wav.numel() * ms:g} ms; at least {min_samples * ms:g} ms)"
                )
                continue
            spans = split_waveform(wav, self.sample_rate, max_duration, window, 0.0, WINDOW_SPLIT)
            spans_of[i] = [None] * len(spans)
            pieces.extend((i, j, wav[s:e]) for j, (s, e) in enumerate(spans))
        pieces.sort(key=lambda p: p[2].numel(), reverse=True)
        for b in range(0, len(pieces), batch_size):
            batch = pieces[b : b + batch_size]
            padded, lens = pad_batch([p[2] for p in batch])
            texts = self.translate_batch(padded, lens, beam_size, target_lang)
            for (i, j, _), text in zip(batch, texts):
                spans_of[i][j] = text
        for i, texts in spans_of.items():
            results[i] = " ".join(t for t in texts if t)
        return results

    def translate_file(
        self, path, beam_size: int | None = None, target_lang: str | None = None, **kwargs
    ) -> str:
        """Translate an audio file (wav, flac, mp3, ogg; any rate; any channel count).

        Parameters
        ----------
        path : str
            The audio file.
        beam_size : int, optional
            Beams (default: the model's, 5 in the recipes).
        target_lang : str, optional
            Language token to force instead of the model's.
        **kwargs
            ``max_duration``, ``window``, ``batch_size`` (see :meth:`translate_waveforms`).

        Raises
        ------
        sense.dataio.AudioError
            The file is missing, unreadable, empty or too short (naming it).
        """
        (result,) = self.translate_waveforms(
            [self.load_audio(path)], beam_size=beam_size, target_lang=target_lang, **kwargs
        )
        if isinstance(result, ValueError):
            raise AudioError(os.fspath(path), str(result))
        return result

    def translate_files(
        self,
        paths: Sequence[str],
        beam_size: int | None = None,
        target_lang: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """Translate many files; those that fail are skipped and reported.

        Returns
        -------
        results : dict
            ``path -> translation`` in the order of ``paths``.
        failures : list of (str, str)
            ``(path, reason)`` of every file skipped.
        """
        results, failures = {}, []
        for g in range(0, len(paths), batch_size):
            loaded, wavs = [], []
            for path in paths[g : g + batch_size]:
                try:
                    wavs.append(self.load_audio(path))
                    loaded.append(path)
                except AudioError as err:
                    failures.append((path, audio_error_reason(err)))
            outs = self.translate_waveforms(wavs, beam_size, target_lang, batch_size)
            for path, out in zip(loaded, outs):
                if isinstance(out, ValueError):
                    failures.append((path, str(out)))
                else:
                    results[path] = out
        order = {p: i for i, p in enumerate(paths)}
        failures.sort(key=lambda f: order.get(f[0], 0))
        return {p: results[p] for p in paths if p in results}, failures


def load_translator(source: str, savedir: str | None = None, **kwargs) -> Translator:
    """The translation model of a folder or hub id, whatever its kind.

    A ZeroST folder (:func:`sense.zerost.export.export_zerost`) loads as
    :class:`sense.zerost.inference.ZeroSTTranslator`, any other as
    :class:`Translator`. Keyword arguments go to ``from_hparams``
    (``device``, ``overrides``, ``trust_remote_code``, ...).
    """
    from sense import formats

    return formats.load(
        source, formats.TRANSLATION_FORMATS, default=formats.TRANSLATOR, savedir=savedir, **kwargs
    )


__all__ = ["Translator", "load_translator"]
