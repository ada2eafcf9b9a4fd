"""Training a seq2seq summarizer on sentence embeddings (appendix B2).

:class:`SummarizationBrain` is a :class:`sense.finetune.FineTuneBrain`: its
pre-trained part (the ``encoder`` slot) is the whole seq2seq model
(:class:`~sense.summarization.model.Seq2SeqSummarizer`), its head the
randomly initialised :class:`~sense.summarization.model.EmbeddingProjection`.
The base gives what the paper asks for and what a resumed run needs: two
optimizers (AdamW, lr 1e-5 for the seq2seq model and 1e-3 for the projection
in the paper), both checkpointed, optional annealing of each, and a warm-up
(``encoder_freeze_steps``) during which only the projection steps.

Training minimises the token cross-entropy of the reference summary under
teacher forcing. Validation computes the same loss (checkpoints are kept on
it) and, with ``valid_generate``, ROUGE-L of generated summaries; the test
stage generates with beam search and scores ROUGE-L and, when
``bertscore`` is configured, BERTScore F1, and writes every summary to
``predictions_file``.

Expected ``hparams``: ``encoder_opt_class``, ``projection_opt_class``,
``train_logger``; optional ``num_beams``, ``max_new_tokens``,
``valid_generate``, ``bertscore`` (keyword arguments of
:func:`sense.summarization.metrics.bertscore_f1`), ``predictions_file``,
``checkpoints_to_keep``, ``encoder_lr_annealing``, ``projection_lr_annealing``.
"""

from __future__ import annotations

import json
import logging

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import if_main_process

from sense.dataio import length_mask
from sense.finetune import FineTuneBrain, unwrap
from sense.io import write_text_atomic
from sense.summarization.metrics import bertscore_f1, rouge_l
from sense.summarization.model import DEFAULT_MAX_NEW_TOKENS, DEFAULT_NUM_BEAMS, IGNORE_INDEX

logger = logging.getLogger(__name__)

#: Metrics are logged in percent, as Table VIII shows them.
PERCENT = 100.0


class SummarizationBrain(FineTuneBrain):
    """Sentence vectors -> projection -> seq2seq model -> summary."""

    HEAD = "projection"

    def _inputs(self, batch):
        embs, lens = batch.embs
        embs = embs.to(self.device).float()
        mask = length_mask(lens.to(self.device), embs.shape[1]).long()
        return self.modules.projection(embs), mask

    def compute_forward(self, batch, stage):
        x, mask = self._inputs(batch)
        seq2seq = unwrap(self.modules.encoder)
        labels = seq2seq.labels(batch.summary)
        logits = self.modules.encoder(x, mask, labels)
        hyps = None
        if stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID and getattr(self.hparams, "valid_generate", False)
        ):
            hyps = self.generate(x, mask)
        return logits, labels, hyps

    def generate(self, x: torch.Tensor, mask: torch.Tensor) -> list[str]:
        """Beam-search summaries of projected inputs ``[B, N, W]``."""
        with torch.no_grad():
            return unwrap(self.modules.encoder).generate(
                x,
                mask,
                num_beams=getattr(self.hparams, "num_beams", DEFAULT_NUM_BEAMS),
                max_new_tokens=getattr(self.hparams, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
            )

    def compute_objectives(self, predictions, batch, stage):
        logits, labels, hyps = predictions
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX
        )
        if hyps is not None:
            self._store["id"].extend(batch.id)
            self._store["hyp"].extend(hyps)
            self._store["ref"].extend(batch.summary)
        return loss

    # -- stages ----------------------------------------------------------------------

    def on_stage_start(self, stage, epoch=None):
        self._store = {"id": [], "hyp": [], "ref": []}

    def summary_metrics(self) -> dict[str, float]:
        """ROUGE-L (and BERTScore F1 when configured), in percent, of the stored summaries."""
        store = self._store
        if not store["hyp"]:
            return {}
        stats = {"ROUGE-L": PERCENT * rouge_l(store["hyp"], store["ref"])}
        options = getattr(self.hparams, "bertscore", None)
        if options:
            stats["BERTScore-F1"] = PERCENT * bertscore_f1(store["hyp"], store["ref"], **options)
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        if stage == sb.Stage.VALID:
            stats = {"loss": stage_loss}
            if self._store["hyp"]:
                stats["ROUGE-L"] = PERCENT * rouge_l(self._store["hyp"], self._store["ref"])
            self.end_valid_epoch(epoch, stats)
            return
        stats = {"loss": stage_loss, **self.summary_metrics()}
        self.test_stats = stats
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
        )
        path = getattr(self.hparams, "predictions_file", None)
        if path and if_main_process():
            self.write_predictions(path)

    def write_predictions(self, path: str) -> None:
        """Every test summary as JSON lines ``{id, prediction, reference}``."""
        store = self._store
        lines = [
            json.dumps({"id": i, "prediction": h, "reference": r}, ensure_ascii=False) + "\n"
            for i, h, r in zip(store["id"], store["hyp"], store["ref"])
        ]
        write_text_atomic(path, "".join(lines))
