"""SpeechBrain inference interface of an exported SLU model.

:class:`SLU` loads a folder written by :func:`sense.slu.export.export_slu_model`
(locally or from the model hub) and gives, for an audio file or a batch, the
annotated transcript and its ``(label, value)`` spans with their times:

>>> model = SLU.from_hparams(source="path/or/hub-id")  # doctest: +SKIP
>>> result = model.predict_file("request.flac")  # doctest: +SKIP
>>> result.annotated, result.spans[0]  # doctest: +SKIP
('wake me up at Ⓣseven am⟩', SpanTime(label='time', value='seven am', start=1.12, end=1.74))

A span's times are those of its CTC frames: from the first frame of its
opening character to the last frame of its last character (frames of
``frame_seconds``, 20 ms for w2v-BERT 2.0 and wav2vec 2.0). Greedy CTC
decoding. A recording is decoded in one piece (no windows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from sense.dataio import AudioError, abs_lengths, pad_batch
from sense.inference import DEFAULT_BATCH_SIZE, SenseModel, audio_error_reason
from sense.slu.ctc import GreedyPath, greedy_decode
from sense.slu.export import MARKUP_FILE
from sense.slu.markup import LabelMarkup

#: Decimals of the times in :meth:`SLUResult.to_dict`.
TIME_DECIMALS = 3


@dataclass
class SpanTime:
    """A labelled span of a prediction with its times (seconds)."""

    label: str
    value: str
    start: float
    end: float


@dataclass
class SLUResult:
    """What an SLU model heard in one recording.

    Attributes
    ----------
    annotated : str
        The transcript with its label openers and closers.
    transcript : str
        The transcript without them.
    spans : list of SpanTime
        Labelled spans with their times.
    duration : float
        Length of the recording in seconds.
    """

    annotated: str
    transcript: str
    spans: list[SpanTime]
    duration: float

    def to_dict(self) -> dict:
        """JSON-ready: spans as ``{label, value, start, end}`` with rounded times."""
        out = asdict(self)
        for span in out["spans"]:
            span["start"] = round(span["start"], TIME_DECIMALS)
            span["end"] = round(span["end"], TIME_DECIMALS)
        out["duration"] = round(self.duration, TIME_DECIMALS)
        return out


def path_result(
    markup: LabelMarkup, path: GreedyPath, frame_seconds: float, duration: float
) -> SLUResult:
    """The :class:`SLUResult` of one greedy CTC path.

    Example
    -------
    >>> markup = LabelMarkup.build([("at seven", [["time", 3, 8]])])
    >>> ids = markup.to_ids("Ⓐseven⟩")
    >>> frames = list(range(0, 2 * len(ids), 2))
    >>> r = path_result(markup, GreedyPath(ids, frames, frames), 0.02, 1.0)
    >>> r.transcript, r.spans[0]
    ('seven', SpanTime(label='time', value='seven', start=0.0, end=0.22))
    """
    symbols = markup.to_symbols(path.ids)
    annotated = "".join(s for s in symbols if len(s) == 1)
    transcript, spans = markup.parse(symbols)
    timed = []
    for span in spans:
        last = max(span.end - 1, span.start)
        timed.append(
            SpanTime(
                span.label,
                span.value,
                start=path.first[span.start] * frame_seconds,
                end=min((path.last[last] + 1) * frame_seconds, duration),
            )
        )
    return SLUResult(annotated, transcript, timed, duration)


class SLU(SenseModel):
    """A speech encoder with a CTC probe that transcribes and labels entities or slots.

    Load with :meth:`from_hparams` (a folder or a hub id; ``device`` and
    ``precision`` keywords as for :class:`sense.inference.SENSE`).

    Example
    -------
    >>> import tempfile, os
    >>> from sense.lobes.speech import HFSpeechEncoder
    >>> from sense.nnet.heads import CTCProbe
    >>> from sense.slu.export import export_slu_model
    >>> from sense.demo.tiny import build_tiny_w2v_bert
    >>> encoder = HFSpeechEncoder(build_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> markup = LabelMarkup.build([("at seven", [["time", 3, 8]])])
    >>> probe = CTCProbe(encoder.output_dim, len(markup), hidden_dim=8)
    >>> folder = export_slu_model(os.path.join(tempfile.mkdtemp(), "m"), encoder, probe, markup)
    >>> model = SLU.from_hparams(source=folder, device="cpu")
    >>> results = model.predict_batch(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> len(results), type(results[0].annotated).__name__
    (2, 'str')
    """

    MODULES_NEEDED = ["encoder", "probe"]
    HPARAMS_NEEDED = ["sample_rate", "model_dir"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sample_rate = int(self.hparams.sample_rate)
        self.markup = LabelMarkup.load(os.path.join(self.hparams.model_dir, MARKUP_FILE))
        if len(self.markup) != self.mods.probe.num_symbols:
            raise ValueError(
                f"{self.hparams.model_dir}: the probe has {self.mods.probe.num_symbols} outputs, "
                f"{MARKUP_FILE} {len(self.markup)} symbols"
            )

    @property
    def labels(self) -> list[str]:
        """The entity or slot types the model knows."""
        return list(self.markup.openers)

    @torch.no_grad()
    def predict_batch(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> list[SLUResult]:
        """Decode a padded batch of 16 kHz waveforms [B, T] (relative lengths [B])."""
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        wavs = wavs.to(self.device).float()
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wav_lens = wav_lens.to(self.device).float()
        with self.inference_ctx:
            frames, frame_lens = self.mods.encoder(wavs, wav_lens)
            log_probs = self.mods.probe(frames)
        paths = greedy_decode(log_probs, frame_lens, self.markup.blank_index)
        counts = abs_lengths(frame_lens.cpu(), frames.shape[1]).tolist()
        samples = abs_lengths(wav_lens.cpu(), wavs.shape[1]).tolist()
        results = []
        for path, n_frames, n_samples in zip(paths, counts, samples):
            duration = n_samples / self.sample_rate
            results.append(path_result(self.markup, path, duration / n_frames, duration))
        return results

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None):
        """Same as :meth:`predict_batch`."""
        return self.predict_batch(wavs, wav_lens)

    def predict_waveforms(self, wavs: Sequence[torch.Tensor]) -> list[SLUResult]:
        """Decode 1-D 16 kHz waveforms of any lengths, in one padded batch."""
        padded, lens = pad_batch([torch.as_tensor(w).float().reshape(-1) for w in wavs])
        return self.predict_batch(padded, lens)

    def predict_file(self, path) -> SLUResult:
        """Decode an audio file (any format soundfile reads, any rate and channel count).

        Raises
        ------
        sense.dataio.AudioError
            The file is missing, unreadable, empty or too short (naming it).
        """
        wav = self.load_audio(path)
        try:
            return self.predict_waveforms([wav])[0]
        except (ValueError, RuntimeError) as err:
            raise AudioError(os.fspath(path), str(err)) from err

    def predict_files(
        self, paths: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> tuple[dict[str, SLUResult], list[tuple[str, str]]]:
        """Decode many files, skipping (and reporting) those that fail.

        Returns
        -------
        results : dict
            ``path -> SLUResult`` in the order of ``paths``.
        failures : list of (str, str)
            ``(path, reason)`` of every file skipped.
        """
        results, failures, loaded = {}, [], []
        for path in paths:
            try:
                loaded.append((path, self.load_audio(path)))
            except AudioError as err:
                failures.append((path, audio_error_reason(err)))
            except Exception as err:  # noqa: BLE001 - skip, report, go on
                failures.append((path, f"{type(err).__name__}: {err}"))
        loaded.sort(key=lambda item: item[1].numel())  # little padding
        for start in range(0, len(loaded), batch_size):
            group = loaded[start : start + batch_size]
            try:
                outs = self.predict_waveforms([w for _, w in group])
            except (ValueError, RuntimeError):
                outs = None
            for i, (path, wav) in enumerate(group):
                if outs is not None:
                    results[path] = outs[i]
                    continue
                try:  # find the culprit: one file at a time
                    results[path] = self.predict_waveforms([wav])[0]
                except (ValueError, RuntimeError) as err:
                    failures.append((path, str(err)))
        order = {p: i for i, p in enumerate(paths)}
        failures.sort(key=lambda f: order.get(f[0], 0))
        return {p: results[p] for p in paths if p in results}, failures
