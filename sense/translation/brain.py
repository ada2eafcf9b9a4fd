"""Speech translation training: speech encoder -> projection -> mBART / NLLB decoder.

The SENSE paper's translation set-up (appendix B3) on the shared fine-tuning
base (:class:`sense.finetune.FineTuneBrain`):

* :func:`make_datasets`: SpeechBrain datasets whose items carry the waveform
  and the target token ids (``[language token, text..., </s>]``);
* :class:`TranslationBrain`: label-smoothed NLL with teacher forcing; the
  encoder has its optimizer, the head (projection and decoder) another, with
  one learning rate per parameter group (1e-3 projection, 1e-4 decoder in
  the paper); greedy decoding and per-language BLEU at validation, beam
  search at test; hypotheses written to a file; export of the best
  checkpoint for :class:`sense.translation.inference.Translator`.

Language re-balanced, duration-filled, resumable batches come from
:func:`sense.distill.make_train_loader`.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.distributed import if_main_process

from sense.dataio import load_audio
from sense.finetune import FineTuneBrain, unwrap
from sense.prepare import manifest_dataset
from sense.translation.metrics import bleu_by_language, corpus_bleu
from sense.translation.model import IGNORE_INDEX

logger = logging.getLogger(__name__)

#: Manifest columns of a translation data set.
TRANSLATION_FIELDS = ("ID", "duration", "wav", "language", "transcript", "translation")
PROJECTION = "projection"
DECODER = "decoder"


def make_datasets(
    manifests: dict[str, str], decoder, sample_rate: int = 16000
) -> dict[str, DynamicItemDataset]:
    """Datasets yielding ``id, sig, tokens, translation, language, duration``.

    Parameters
    ----------
    manifests : dict
        Split name -> manifest path (columns :data:`TRANSLATION_FIELDS`).
    decoder : sense.translation.model.Seq2SeqDecoder
        Its tokenizer makes the target ids.
    sample_rate : int
        Rate the audio is read at.
    """

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate)

    @sb.utils.data_pipeline.takes("translation")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(translation):
        return decoder.target_ids(translation)

    datasets = {}
    for split, path in manifests.items():
        data = manifest_dataset(path)
        data.add_dynamic_item(audio_pipeline)
        data.add_dynamic_item(text_pipeline)
        data.set_output_keys(["id", "sig", "tokens", "translation", "language", "duration"])
        datasets[split] = data
    return datasets


def label_smoothed_nll(
    logits: torch.Tensor, labels: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """Mean token cross-entropy with label smoothing, padding (-100) ignored.

    Example
    -------
    >>> logits = torch.zeros(1, 2, 4)
    >>> round(label_smoothed_nll(logits, torch.tensor([[1, -100]]), 0.1).item(), 4)
    1.3863
    """
    return F.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, label_smoothing=smoothing
    )


class TranslationBrain(FineTuneBrain):
    """Train ``encoder`` + ``projection`` + ``decoder`` on (speech, translation) pairs.

    Expected ``hparams`` beyond :class:`FineTuneBrain`'s: ``label_smoothing``;
    ``projection_lr`` and ``decoder_lr`` (learning rates of the head's two
    parameter groups; ``head_opt_class`` takes the groups); ``valid_beam_size``
    (1: greedy) and ``test_beam_size``, ``length_penalty``,
    ``max_decode_ratio``, ``min_decode_tokens``; optional
    ``valid_search_interval`` (decode every n-th epoch, else the loss only)
    and ``hypotheses_file`` (test hypotheses, one TSV row each).
    """

    HEAD = "head"
    #: Set by the recipe before testing: the model's name in the BLEU table.
    test_bleu: dict[str, float] | None = None

    def head_parameters(self) -> list[dict]:
        """Two parameter groups: the projection and the decoder, each with its rate."""
        groups = []
        for name, lr in (
            (PROJECTION, self.hparams.projection_lr),
            (DECODER, self.hparams.decoder_lr),
        ):
            params = [p for p in self.modules[name].parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": lr, "name": name})
        return groups

    # -- forward -----------------------------------------------------------------------

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        frames, frame_lens = self.encode(wavs, wav_lens, stage)
        memory = self.modules.projection(frames)
        decoder = unwrap(self.modules.decoder)
        inputs, labels = decoder.teacher_forcing(*batch.tokens)
        logits = self.modules.decoder(memory, frame_lens, inputs)
        hyps = None
        if stage != sb.Stage.TRAIN and self._decode_now(stage):
            beam = (
                self.hparams.test_beam_size
                if stage == sb.Stage.TEST
                else self.hparams.valid_beam_size
            )
            hyps = decoder.generate(
                memory,
                frame_lens,
                beam_size=beam,
                length_penalty=self.hparams.length_penalty,
                max_decode_ratio=self.hparams.max_decode_ratio,
                min_decode_tokens=self.hparams.min_decode_tokens,
            )
        return logits, labels, hyps

    def _decode_now(self, stage) -> bool:
        if stage == sb.Stage.TEST:
            return True
        interval = getattr(self.hparams, "valid_search_interval", 1)
        epoch = self.hparams.epoch_counter.current
        return interval > 0 and (epoch % interval == 0 or epoch == self.hparams.epoch_counter.limit)

    def compute_objectives(self, predictions, batch, stage):
        logits, labels, hyps = predictions
        loss = label_smoothed_nll(logits, labels, self.hparams.label_smoothing)
        if hyps is not None:
            store = self._store
            store["id"].extend(batch.id)
            store["hyp"].extend(hyps)
            store["ref"].extend(batch.translation)
            store["language"].extend(batch.language)
        return loss

    # -- stages ------------------------------------------------------------------------

    def on_stage_start(self, stage, epoch=None):
        self._store = defaultdict(list)

    def bleu_stats(self) -> dict[str, float]:
        """BLEU over the stage's hypotheses and of each language (empty without decoding)."""
        store = self._store
        if not store["hyp"]:
            return {}
        hyps, refs = self._gather(store["hyp"]), self._gather(store["ref"])
        langs = self._gather(store["language"])
        stats = {"BLEU": corpus_bleu(hyps, refs)}
        stats.update({f"BLEU_{k}": v for k, v in bleu_by_language(hyps, refs, langs).items()})
        return stats

    @staticmethod
    def _gather(items: list) -> list:
        """Every rank's items, in rank order (the items themselves without DDP)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return items
        gathered = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, items)
        return [x for part in gathered for x in part]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        stats = {"loss": stage_loss, **self.bleu_stats()}
        if stage == sb.Stage.VALID:
            # the best checkpoint: highest BLEU when decoded, else lowest loss
            meta = {"loss": stage_loss, "BLEU": stats.get("BLEU", -stage_loss)}
            self.end_valid_epoch(epoch, stats, meta, max_key="BLEU")
            return
        self.test_bleu = {
            k.removeprefix("BLEU_"): v for k, v in stats.items() if k.startswith("BLEU_")
        }
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
        )
        path = getattr(self.hparams, "hypotheses_file", None)
        if path and if_main_process():
            self.write_hypotheses(path)

    def write_hypotheses(self, path: str) -> None:
        """One TSV row per test utterance: id, language, hypothesis, reference."""
        from sense.prepare import write_tsv

        store = self._store
        rows = [
            {"ID": i, "language": lang, "hypothesis": h, "reference": r}
            for i, lang, h, r in zip(store["id"], store["language"], store["hyp"], store["ref"])
        ]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_tsv(path, rows, ("ID", "language", "hypothesis", "reference"))

    # -- export ------------------------------------------------------------------------

    def export(self, folder: str, extra: dict | None = None, **settings):
        """Load the best checkpoint (highest validation BLEU) and export it.

        Runs on the main process; returns the folder there and ``None``
        elsewhere. ``settings`` go to
        :func:`sense.translation.export.export_translator`.
        """
        from sense.translation.export import export_translator

        meta = self.load_best(max_key="BLEU")
        if meta is None:
            return None
        meta.update(extra or {})
        return export_translator(
            folder,
            encoder=unwrap(self.modules.encoder),
            projection=unwrap(self.modules.projection),
            decoder=unwrap(self.modules.decoder),
            extra=meta,
            **settings,
        )


__all__ = ["TRANSLATION_FIELDS", "TranslationBrain", "label_smoothed_nll", "make_datasets"]
