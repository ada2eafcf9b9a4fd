"""Fine-tuning a speech encoder with a CTC probe for SLU (named entities, slots).

:class:`SLUBrain` is the fine-tuning base (:class:`sense.finetune.FineTuneBrain`:
two optimizers, warm-up, annealing, AMP, DDP, resume mid-epoch) with the CTC
probe of the SENSE paper as its head, the CTC loss, and greedy decoding into
labelled spans on validation and test, scored with COER (or NEER) and CVER
(and SLURP's SLU-F1 on request).
"""

from __future__ import annotations

import json
import logging
import os

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process

from sense.finetune import FineTuneBrain, unwrap
from sense.io import write_text_atomic
from sense.slu.ctc import ctc_loss, greedy_decode
from sense.slu.markup import LabelMarkup, reference_pairs
from sense.slu.metrics import ConceptErrorStats, slu_f1

logger = logging.getLogger(__name__)

#: Checkpoint key of the markup's probe and optimizer.
HEAD = "probe"


class SLUBrain(FineTuneBrain):
    """Train ``modules.encoder`` + ``modules.probe`` (:class:`sense.nnet.heads.CTCProbe`) with CTC.

    Expected ``hparams`` (beyond :class:`~sense.finetune.FineTuneBrain`'s
    ``encoder_opt_class``, ``probe_opt_class``, optional
    ``encoder_lr_annealing`` / ``probe_lr_annealing``, ``encoder_freeze_steps``,
    ``train_logger``): ``epoch_counter``; optional ``label_metric`` (``"COER"``
    or ``"NEER"``, default ``"COER"``), ``select_metric`` (validation metric
    that picks the best checkpoint, default ``"CVER"``), ``compute_slu_f1``
    (default False), ``checkpoints_to_keep`` (default 2).

    Parameters
    ----------
    markup : LabelMarkup
        Output alphabet and label openers of the probe.
    *args, **kwargs
        Those of ``speechbrain.Brain``.
    """

    HEAD = HEAD

    def __init__(self, *args, markup: LabelMarkup, **kwargs):
        super().__init__(*args, **kwargs)
        self.markup = markup
        self.test_outputs: dict[str, dict] = {}

    @property
    def label_metric(self) -> str:
        return getattr(self.hparams, "label_metric", "COER")

    # -- forward and loss --------------------------------------------------------------

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        frames, frame_lens = self.encode(wavs, wav_lens, stage)
        return self.modules.probe(frames), frame_lens

    def compute_objectives(self, predictions, batch, stage):
        log_probs, frame_lens = predictions
        tokens, token_lens = batch.tokens
        loss = ctc_loss(log_probs, frame_lens, tokens, token_lens, self.markup.blank_index)
        if stage != sb.Stage.TRAIN:
            self._score(batch, log_probs, frame_lens)
        return loss

    def _score(self, batch, log_probs, frame_lens) -> None:
        refs, hyps = [], []
        for uid, transcript, spans_text, path in zip(
            batch.id,
            batch.transcript,
            batch.spans,
            greedy_decode(log_probs.detach(), frame_lens, self.markup.blank_index),
        ):
            spans = json.loads(spans_text) if spans_text.strip() else []
            annotated = self.markup.decode_ids(path.ids)
            text, pairs = self.markup.decode(annotated)
            ref = reference_pairs(transcript, spans)
            refs.append(ref)
            hyps.append(pairs)
            self._predictions.append(
                {
                    "id": uid,
                    "annotated": annotated,
                    "transcript": text,
                    "spans": [list(p) for p in pairs],
                    "reference": [list(p) for p in ref],
                }
            )
        self._stats.append(list(batch.id), refs, hyps)

    # -- stages ------------------------------------------------------------------------

    def on_stage_start(self, stage, epoch=None):
        self._stats = ConceptErrorStats(self.label_metric)
        self._predictions = []

    def stage_metrics(self) -> dict[str, float]:
        """COER (or NEER) and CVER of the stage (percent), and SLU-F1 on request."""
        summary = self._stats.summarize()
        stats = {self.label_metric: summary[self.label_metric], "CVER": summary["CVER"]}
        if getattr(self.hparams, "compute_slu_f1", False):
            f1 = slu_f1(
                [p["reference"] for p in self._predictions],
                [p["spans"] for p in self._predictions],
            )
            stats.update({k: 100.0 * f1[k] for k in ("word_f1", "char_f1", "slu_f1")})
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        stats = {"loss": stage_loss, **self.stage_metrics()}
        if stage == sb.Stage.VALID:
            self.end_valid_epoch(
                epoch, stats, min_key=getattr(self.hparams, "select_metric", "CVER")
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            self.last_test = {
                "metrics": stats,
                "num_utterances": len(self._predictions),
                "predictions": self._predictions,
            }

    # -- evaluation --------------------------------------------------------------------

    def evaluate_split(self, name: str, dataset, output_folder: str, **loader_kwargs) -> dict:
        """Evaluate the best checkpoint on one split; write its metrics and predictions.

        Writes ``<output_folder>/<name>.json`` (metrics) and
        ``<output_folder>/<name>_predictions.jsonl`` on the main process.

        Returns
        -------
        dict
            ``{"metrics": {...}, "num_utterances": N}``.
        """
        select = getattr(self.hparams, "select_metric", "CVER")
        self.evaluate(dataset, min_key=select, test_loader_kwargs=loader_kwargs)
        result = self.last_test
        if if_main_process():
            os.makedirs(output_folder, exist_ok=True)
            summary = {"split": name, **{k: v for k, v in result.items() if k != "predictions"}}
            write_text_atomic(
                os.path.join(output_folder, f"{name}.json"),
                json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
            )
            lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in result["predictions"])
            write_text_atomic(os.path.join(output_folder, f"{name}_predictions.jsonl"), lines)
        return {"metrics": result["metrics"], "num_utterances": result["num_utterances"]}

    def export(self, folder: str, extra: dict | None = None) -> str | None:
        """Load the best checkpoint and export encoder, probe and markup for :class:`~sense.slu.SLU`.

        Runs on the main process; returns the folder there and ``None`` elsewhere.
        """
        from sense.slu.export import export_slu_model

        select = getattr(self.hparams, "select_metric", "CVER")
        meta = self.load_best(min_key=select)
        if meta is None:
            return None
        meta.update(extra or {})
        return export_slu_model(
            folder,
            encoder=unwrap(self.modules.encoder),
            probe=unwrap(self.modules.probe),
            markup=self.markup,
            extra=meta,
        )


def check_probe(encoder, probe, markup: LabelMarkup) -> None:
    """Fail at start, naming the mismatch, when the blocks' sizes disagree."""
    encoder, probe = unwrap(encoder), unwrap(probe)
    if probe.input_dim != encoder.output_dim:
        raise ValueError(
            f"the encoder gives {encoder.output_dim}-dim frames, the probe takes "
            f"{probe.input_dim}: set encoder_dim: {encoder.output_dim}"
        )
    if probe.num_symbols != len(markup):
        raise ValueError(
            f"the probe has {probe.num_symbols} outputs, the markup {len(markup)} symbols"
        )
