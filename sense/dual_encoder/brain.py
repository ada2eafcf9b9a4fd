"""Contrastive training of the LLM dual encoder (SpeechBrain ``Brain``), with bitext mixing.

Each batch holds utterances (their audio tokens) and their transcripts; the
one transformer (``modules.encoder``, an :class:`~sense.dual_encoder.model.LLMEncoder`)
encodes both sides in a single forward pass, a linear ``modules.projection``
maps the pooled states into the shared space, and the loss is the symmetric
in-batch contrastive loss (``hparams.loss``, :class:`sense.losses.InfoNCELoss`).

With ``bitext`` pairs (X text, EN text) and ``bitext_ratio`` (the paper:
0.25), each training batch is topped up with translation pairs so that they
make that share of it: X text on the speech side, its English translation on
the transcript side (section 4.3 of the paper, "Transcriptions +
Translations"). The draw depends on the seed and the optimizer step only, so
a resumed run draws the same pairs.

:class:`DualEncoderBrain` is a :class:`sense.finetune.FineTuneBrain`: two
optimizers (transformer and projection), both checkpointed, the warm-up and
the annealing; AMP, DDP and mid-epoch resume come from SpeechBrain.

Example
-------
>>> bitext_count(12, 0.25)
4
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from sense.finetune import FineTuneBrain, unwrap
from sense.retrieval import recall_at_k

logger = logging.getLogger(__name__)

#: Fewest validation utterances of a language for its R@1 to be logged.
MIN_UTTERANCES_FOR_R1 = 2


def bitext_count(batch_size: int, ratio: float) -> int:
    """Translation pairs added to ``batch_size`` utterances so that they make ``ratio`` of the batch."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"bitext_ratio must lie in [0, 1), got {ratio}")
    return round(batch_size * ratio / (1.0 - ratio))


def make_datasets(
    manifests: Mapping[str, Mapping[str, dict]],
    tokens: Mapping[str, torch.Tensor],
    llm,
    text_key: str = "wrd",
) -> dict[str, DynamicItemDataset]:
    """Datasets yielding ``id, speech_ids, text_ids, text, language, duration``.

    Parameters
    ----------
    manifests : dict
        Split -> ``{uid: {"wav", "duration", "language", <text_key>}}``.
    tokens : dict
        Audio file -> its audio tokens (:func:`~sense.dual_encoder.tokens.tokenize_files`).
    llm : LLMEncoder
        Turns tokens and text into input ids (its tokenizer and prefix).
    """

    @sb.utils.data_pipeline.takes("wav", "language")
    @sb.utils.data_pipeline.provides("speech_ids")
    def speech_pipeline(wav, lang):
        if wav not in tokens:
            raise KeyError(f"{wav}: not tokenised (run tokenize_files on the manifest first)")
        return llm.audio_inputs([tokens[wav]], [lang])[0]

    @sb.utils.data_pipeline.takes(text_key, "language")
    @sb.utils.data_pipeline.provides("text_ids", "text")
    def text_pipeline(text, lang):
        yield llm.text_inputs([text], [lang])[0]
        yield text

    datasets = {}
    for split, manifest in manifests.items():
        data = DynamicItemDataset(dict(manifest))
        data.add_dynamic_item(speech_pipeline)
        data.add_dynamic_item(text_pipeline)
        data.set_output_keys(["id", "speech_ids", "text_ids", "text", "language", "duration"])
        datasets[split] = data
    return datasets


class DualEncoderBrain(FineTuneBrain):
    """Train ``modules.encoder`` (the LLM) and ``modules.projection`` contrastively.

    Expected ``hparams``: ``loss`` (``(speech_emb, text_emb) -> scalar``),
    ``encoder_opt_class`` and ``projection_opt_class``, optional
    ``*_lr_annealing``, ``encoder_freeze_steps``, ``train_logger``,
    ``bitext_ratio`` and ``seed``. Set :attr:`bitext` to a list of
    ``(x_text, x_lang, en_text)`` to mix translation pairs into training batches.
    """

    HEAD = "projection"
    bitext: Sequence[tuple[str, str, str]] = ()

    def _bitext_inputs(self, batch_size: int) -> tuple[list, list]:
        ratio = float(getattr(self.hparams, "bitext_ratio", 0.0) or 0.0)
        count = bitext_count(batch_size, ratio) if self.bitext else 0
        if not count:
            return [], []
        rng = random.Random(f"{getattr(self.hparams, 'seed', 0)}-{self.optimizer_step}-{self.step}")
        pairs = rng.sample(list(self.bitext), min(count, len(self.bitext)))
        llm = unwrap(self.modules.encoder)
        left = llm.text_inputs([x for x, _, _ in pairs], [lang for _, lang, _ in pairs])
        right = llm.text_inputs([en for _, _, en in pairs], ["en"] * len(pairs))
        return left, right

    def compute_forward(self, batch, stage):
        left, right = list(batch.speech_ids), list(batch.text_ids)
        if stage == sb.Stage.TRAIN:
            extra_left, extra_right = self._bitext_inputs(len(left))
            left, right = left + extra_left, right + extra_right
        ids, mask = unwrap(self.modules.encoder).collate(left + right)
        pooled = self.encode(ids.to(self.device), mask.to(self.device), stage)
        emb = self.modules.projection(pooled)
        return emb[: len(left)], emb[len(left) :]

    def compute_objectives(self, predictions, batch, stage):
        speech, text = predictions
        loss = self.hparams.loss(speech.float(), text.float())
        if stage != sb.Stage.TRAIN:
            self._valid_store["speech"].append(speech.detach().float().cpu())
            self._valid_store["text"].append(text.detach().float().cpu())
            self._valid_store["language"].extend(batch.language)
        return loss

    def on_stage_start(self, stage, epoch=None):
        self._valid_store = defaultdict(list)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        stats = {"loss": stage_loss, **self.retrieval_stats()}
        if stage == sb.Stage.VALID:
            self.end_valid_epoch(epoch, stats, {"loss": stage_loss, "R@1": stats.get("R@1", 0.0)})
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )

    def export(self, folder: str, tokenizer, extra: dict | None = None) -> str | None:
        """Load the best checkpoint (lowest validation loss) and export it for inference.

        Runs on every rank (all load the checkpoint); the main process writes
        and returns the folder, the others return ``None``.
        """
        from sense.dual_encoder.export import export_dual_encoder

        meta = self.load_best(min_key="loss")
        if meta is None:
            return None
        meta.update(extra or {})
        return export_dual_encoder(
            folder,
            tokenizer,
            unwrap(self.modules.encoder),
            unwrap(self.modules.projection),
            extra=meta,
        )

    def retrieval_stats(self) -> dict[str, float]:
        """Speech -> own transcript R@1 within each language of the stage, and their mean."""
        store = self._valid_store
        if not store["speech"]:
            return {}
        speech, text = torch.cat(store["speech"]), torch.cat(store["text"])
        by_lang = defaultdict(list)
        for i, lang in enumerate(store["language"]):
            by_lang[lang].append(i)
        stats = {}
        for lang in sorted(by_lang):
            idx = torch.tensor(by_lang[lang])
            if len(idx) >= MIN_UTTERANCES_FOR_R1:
                stats[f"R@1_{lang}"] = recall_at_k(speech[idx], text[idx], torch.arange(len(idx)))
        if stats:
            stats["R@1"] = sum(stats.values()) / len(stats)
        return stats
