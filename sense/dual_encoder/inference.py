"""Loading a trained LLM dual encoder the SENSE way: ``from_hparams``, ``encode_file``, ``encode_text``.

:func:`sense.dual_encoder.export.export_dual_encoder` writes a folder that
:class:`DualEncoder` loads (locally or from the hub), and that ``sense index`` /
``sense search`` use as they use a SENSE model (:func:`load_model` picks the
class from the folder).

Speech is tokenised (the speech encoder's layer at 25 Hz, nearest centroid),
the tokens go through the LLM with the speech prefix; text goes through the
same LLM with the text prefix. A recording is encoded whole, up to the
LLM's ``max_tokens`` (longer ones are cut there).

Example
-------
>>> model = DualEncoder.from_hparams(source="path/to/folder")  # doctest: +SKIP
>>> model.encode_file("talk.wav").shape, model.encode_text(["Bonjour."]).shape  # doctest: +SKIP
(torch.Size([256]), torch.Size([1, 256]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sense import formats
from sense.dataio import AudioError
from sense.inference import SENSE, WindowEmbeddings, audio_error_reason

TEXT_BATCH_SIZE = 32


class DualEncoder(SENSE):
    """A trained LLM dual encoder: speech and text into one space with one transformer.

    Loaded with :meth:`from_hparams` (as :class:`sense.inference.SENSE`) from
    a folder written by :func:`~sense.dual_encoder.export.export_dual_encoder`, or a hub id holding one.

    Example
    -------
    >>> model = DualEncoder.from_hparams(source="path/to/folder", device="cpu")  # doctest: +SKIP
    >>> model.encode_batch(torch.randn(2, 16000), torch.tensor([1.0, 0.5])).shape  # doctest: +SKIP
    torch.Size([2, 256])
    """

    MODULES_NEEDED = ["audio_tokenizer", "llm", "projection"]
    HPARAMS_NEEDED = ["sample_rate", "model_dir"]

    @property
    def output_dim(self) -> int:
        return int(self.mods.projection.out_features)

    def _embed(self, sequences: list[list[int]], normalize: bool | None) -> torch.Tensor:
        ids, mask = self.mods.llm.collate(sequences)
        with self.inference_ctx:
            emb = self.mods.projection(self.mods.llm(ids.to(self.device), mask.to(self.device)))
        return self._normalize(emb.float(), normalize).cpu()

    @torch.no_grad()
    def encode_tokens(
        self, token_seqs: Sequence[torch.Tensor], batch_size: int = TEXT_BATCH_SIZE, normalize=None
    ) -> torch.Tensor:
        """Embed utterances already tokenised (e.g. read from a token cache): [B, D]."""
        inputs = self.mods.llm.audio_inputs(list(token_seqs))
        rows = [
            self._embed(inputs[i : i + batch_size], normalize)
            for i in range(0, len(inputs), batch_size)
        ]
        return torch.cat(rows)

    @torch.no_grad()
    def encode_batch(self, wavs, wav_lens=None, normalize: bool | None = None) -> torch.Tensor:
        """Embed a padded batch of 16 kHz waveforms: [B, T] -> [B, D] ([T] -> [D])."""
        single = wavs.dim() == 1
        wavs = wavs.reshape(-1, wavs.shape[-1]).to(self.device).float()
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        tokens, token_lens = self.mods.audio_tokenizer(wavs, wav_lens.to(self.device).float())
        counts = torch.round(token_lens * tokens.shape[1]).long().tolist()
        emb = self._embed(
            self.mods.llm.audio_inputs([t[:n] for t, n in zip(tokens, counts)]), normalize
        )
        return emb[0] if single else emb

    @torch.no_grad()
    def encode_waveforms(
        self, wavs: Sequence[torch.Tensor], windows: bool = False, normalize=None, **settings
    ):
        """Embed waveforms of any lengths, each whole: a [D] tensor each (or one window each)."""
        tokens = self.mods.audio_tokenizer.tokenize_waveforms([w.reshape(-1) for w in wavs])
        embs = self._embed(self.mods.llm.audio_inputs(tokens), normalize)
        if not windows:
            return list(embs)
        return [
            WindowEmbeddings(
                e[None],
                torch.tensor([[0.0, len(w) / self.sample_rate]]).double(),
                len(w) / self.sample_rate,
            )
            for e, w in zip(embs, wavs)
        ]

    def encode_files(
        self,
        paths,
        windows: bool = False,
        batch_size: int = 8,
        normalize=None,
        progress: bool = False,
        **settings,
    ):
        """Embed audio files, skipping (and reporting) unreadable ones: ``(results, failures)``."""
        results, failures = {}, []
        for start in range(0, len(paths), batch_size):
            loaded, wavs = [], []
            for path in paths[start : start + batch_size]:
                try:
                    wavs.append(self.load_audio(path))
                    loaded.append(path)
                except AudioError as err:
                    failures.append((path, audio_error_reason(err)))
            if wavs:
                embs = self.encode_waveforms(wavs, windows=windows, normalize=normalize)
                results.update(zip(loaded, embs))
        return results, failures

    @torch.no_grad()
    def encode_text(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
        normalize: bool | None = None,
    ) -> torch.Tensor:
        """Embed sentences with the same LLM (text prefix): [B, D] float32 on the CPU."""
        if isinstance(texts, str):
            texts = [texts]
        step = batch_size or TEXT_BATCH_SIZE
        rows = [
            self._embed(self.mods.llm.text_inputs(list(texts[i : i + step])), normalize)
            for i in range(0, len(texts), step)
        ]
        return torch.cat(rows)

    def attention_file(self, path, **kwargs):
        raise ValueError("a dual encoder has no attention pooling: attention needs a SENSE model")


def load_model(source: str, savedir: str | None = None, **kwargs):
    """A SENSE model or a dual encoder, whichever the folder (or hub id) holds.

    Keyword arguments go to ``from_hparams`` (``device``, ``precision``,
    ``trust_remote_code``, ...).
    """
    return formats.load(
        source, formats.EMBEDDING_FORMATS, default=formats.SENSE_MODEL, savedir=savedir, **kwargs
    )
