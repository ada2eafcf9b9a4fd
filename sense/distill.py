"""Teacher-student distillation of sentence embeddings into a speech encoder.

The training logic every distillation recipe shares (SENSE on Common Voice,
the SAMU-XLSR setting, the embedded demo):

* :func:`build_teacher_cache`: the teacher encodes every transcript once,
  before training, on the main process (never per step);
* :func:`make_datasets`: SpeechBrain datasets whose items carry the waveform
  and the cached teacher embedding;
* :func:`make_train_loader`: language re-balanced, duration-filled batches,
  DDP-aware, resumable mid-epoch;
* :class:`DistillationBrain`: encoder + masked attentive pooling trained with
  the cosine distance, two optimizers (encoder and pooling head) that both
  step and are both checkpointed, validation loss and per-language
  speech-to-own-transcript R@1, export of the best checkpoint.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import defaultdict

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.distributed import if_main_process

from sense.dataio import load_audio
from sense.prepare import read_manifest
from sense.retrieval import recall_at_k
from sense.samplers import BalancedDurationBatchSampler, save_ratios
from sense.teacher_cache import TeacherCache, build_on_main

logger = logging.getLogger(__name__)

# Name under which the train loader's position is checkpointed (SpeechBrain's own key).
TRAIN_LOADER_KEY = "dataloader-TRAIN"
# Validation R@1 is reported for languages with at least this many utterances.
MIN_UTTERANCES_FOR_R1 = 2


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if hasattr(module, "module") else module


def build_teacher_cache(hparams: dict, manifests: list[str]) -> TeacherCache:
    """Encode every transcript of ``manifests`` with the teacher, once.

    ``hparams["teacher"]`` is a partial (``!name:sense.lobes.text.load_teacher``)
    so that only the main process ever loads the teacher; the others wait and
    open the cache. Unchanged transcripts of an earlier run are not re-encoded.

    Returns
    -------
    TeacherCache
        Opened and verified on every process.
    """
    items = {}
    for path in manifests:
        for row in read_manifest(path):
            items[row["ID"]] = row["transcript"]
    teacher = hparams["teacher"]
    return build_on_main(
        hparams["teacher_cache_folder"],
        items,
        teacher,
        batch_size=hparams.get("teacher_batch_size", 64),
        dtype=hparams.get("teacher_cache_dtype", "float16"),
        progress=if_main_process(),
    )


def teacher_mean(cache: TeacherCache, manifest: str) -> torch.Tensor:
    """[D] mean teacher embedding of the utterances of ``manifest``.

    With ``teacher_centering``, targets are centred on it: when the transcripts
    share most of their meaning (a narrow domain, a small grammar), the raw
    teacher vectors share a large common direction, and a student that only
    predicts that direction already gets a low cosine distance without telling
    sentences apart. Centred targets remove that shortcut.
    """
    ids = [row["ID"] for row in read_manifest(manifest)]
    return cache.get_batch(ids).float().mean(dim=0)


def make_datasets(hparams: dict, cache: TeacherCache) -> dict[str, DynamicItemDataset]:
    """Train and valid datasets yielding ``id, sig, teacher_emb, language, duration``."""
    sample_rate = hparams.get("sample_rate", 16000)

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate)

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("teacher_emb")
    def teacher_pipeline(uid):
        return cache[uid]

    datasets = {}
    for split in ("train", "valid"):
        path = hparams[f"{split}_csv"]
        read_manifest(path)  # a clear error when it is missing
        data = DynamicItemDataset.from_csv(path)
        data.add_dynamic_item(audio_pipeline)
        data.add_dynamic_item(teacher_pipeline)
        data.set_output_keys(["id", "sig", "teacher_emb", "language", "duration"])
        datasets[split] = data
    return datasets


def make_train_loader(hparams: dict, dataset: DynamicItemDataset):
    """A resumable loader of language re-balanced batches filled by duration.

    Returns
    -------
    loader : SaveableDataLoader
        Records its position in intra-epoch checkpoints, so a resumed epoch
        continues with the next batch.
    sampler : BalancedDurationBatchSampler
        Its ``set_epoch`` is called by SpeechBrain at each epoch.
    """
    durations, languages = [], []
    for uid in dataset.data_ids:
        row = dataset.data[uid]
        durations.append(float(row["duration"]))
        languages.append(row["language"])
    sampler = BalancedDurationBatchSampler(
        durations,
        languages,
        max_batch_duration=hparams["max_batch_duration"],
        alpha=hparams.get("balancing_alpha", 0.5),
        max_batch_size=hparams.get("max_batch_size"),
        seed=hparams.get("seed", 0),
    )
    if if_main_process():
        save_ratios(sampler.ratios, os.path.join(hparams["output_folder"], "language_ratios.json"))
    loader = SaveableDataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=sb.dataio.batch.PaddedBatch,
        num_workers=hparams.get("num_workers", 0),
    )
    return loader, sampler


class DistillationBrain(sb.Brain):
    """Train ``modules.encoder`` + ``modules.pooling`` towards teacher embeddings.

    Expected ``hparams``: ``loss`` (callable ``(student, teacher) -> scalar``),
    ``encoder_opt_class`` and ``pooling_opt_class`` (partials taking the
    parameters), optional ``encoder_lr_annealing`` / ``pooling_lr_annealing``
    (SpeechBrain schedulers called with the validation loss),
    ``encoder_freeze_steps`` (optimizer steps during which only the pooling
    head learns), ``train_logger``, and optional ``batch_log`` (a folder where
    each rank writes the ids of every training batch, for data-order audits).

    Both optimizers step, and both are registered with the checkpointer, so a
    resumed run continues with the saved optimizer states (faults 1 and 2 of
    the SpeechBrain recipe).

    ``teacher_center`` ([D], optional; see :func:`teacher_mean`) is subtracted
    from every target, which is then renormalised.
    """

    teacher_center: torch.Tensor | None = None

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        frames, frame_lens = self.modules.encoder(wavs, wav_lens)
        emb, _ = self.modules.pooling(frames, frame_lens)
        return emb

    def compute_objectives(self, emb, batch, stage):
        target = batch.teacher_emb.data.to(emb.device).float()
        if self.teacher_center is not None:
            target = F.normalize(target - self.teacher_center.to(target.device), dim=-1)
        loss = self.hparams.loss(emb.float(), target.float())
        if stage != sb.Stage.TRAIN:
            self._valid_store["student"].append(emb.detach().float().cpu())
            self._valid_store["teacher"].append(target.detach().float().cpu())
            self._valid_store["language"].extend(batch.language)
        return loss

    # -- optimizers ----------------------------------------------------------------

    def init_optimizers(self):
        """One optimizer for the encoder, one for the pooling head; both checkpointed."""
        self.optimizers_dict = {}
        encoder_params = [p for p in self.modules.encoder.parameters() if p.requires_grad]
        if encoder_params:
            self.optimizers_dict["encoder"] = self.hparams.encoder_opt_class(encoder_params)
        else:
            logger.info("The encoder is frozen: only the pooling head is trained")
        self.optimizers_dict["pooling"] = self.hparams.pooling_opt_class(
            self.modules.pooling.parameters()
        )
        if self.checkpointer is not None:
            for name, opt in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(f"{name}_optimizer", opt)

    def freeze_optimizers(self, optimizers):
        """Hold the encoder still for the first ``encoder_freeze_steps`` steps."""
        warmup = getattr(self.hparams, "encoder_freeze_steps", 0)
        if self.optimizer_step < warmup:
            return {k: v for k, v in optimizers.items() if k != "encoder"}
        return optimizers

    def on_fit_start(self):
        super().on_fit_start()
        steps = {name: _optimizer_steps(opt) for name, opt in self.optimizers_dict.items()}
        logger.info(
            "Starting at optimizer step %d (epoch step %d); optimizer states: %s",
            self.optimizer_step,
            self.step,
            steps,
        )
        # Every rank calls the logger: SpeechBrain writes on rank 0 only and
        # broadcasts from it, so a call made on rank 0 alone would deadlock.
        self.hparams.train_logger.log_stats(
            stats_meta={"start_optimizer_step": self.optimizer_step, "start_epoch_step": self.step},
            train_stats={f"{k}_state_steps": v for k, v in steps.items()},
        )

    def on_fit_batch_start(self, batch, should_step):
        folder = getattr(self.hparams, "batch_log", None)
        if folder:
            os.makedirs(folder, exist_ok=True)
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            with open(os.path.join(folder, f"rank{rank}.txt"), "a", encoding="utf-8") as f:
                f.write(" ".join(batch.id) + "\n")

    # -- stages ----------------------------------------------------------------------

    def on_stage_start(self, stage, epoch=None):
        self._valid_store = defaultdict(list)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        stats = {"loss": stage_loss, **self._retrieval_stats()}
        if stage == sb.Stage.VALID:
            lrs = self._anneal(stage_loss)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, **lrs},
                train_stats=getattr(self, "train_stats", None),
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"loss": stage_loss, "R@1": stats.get("R@1", 0.0)},
                min_keys=["loss"],
                num_to_keep=getattr(self.hparams, "checkpoints_to_keep", 2),
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )

    def _anneal(self, valid_loss: float) -> dict[str, float]:
        lrs = {}
        for name, opt in self.optimizers_dict.items():
            scheduler = getattr(self.hparams, f"{name}_lr_annealing", None)
            if scheduler is not None:
                _, new_lr = scheduler(valid_loss)
                sb.nnet.schedulers.update_learning_rate(opt, new_lr)
            lrs[f"lr_{name}"] = opt.param_groups[0]["lr"]
        return lrs

    def _retrieval_stats(self) -> dict[str, float]:
        """Speech-to-own-transcript R@1 for each language, and their mean."""
        store = self._valid_store
        if not store["student"]:
            return {}
        student = torch.cat(store["student"])
        teacher = torch.cat(store["teacher"])
        by_lang = defaultdict(list)
        for i, lang in enumerate(store["language"]):
            by_lang[lang].append(i)
        stats = {}
        for lang in sorted(by_lang):
            idx = torch.tensor(by_lang[lang])
            if len(idx) < MIN_UTTERANCES_FOR_R1:
                continue
            stats[f"R@1_{lang}"] = recall_at_k(
                student[idx], teacher[idx], torch.arange(len(idx)), k=1
            )
        if stats:
            stats["R@1"] = sum(stats.values()) / len(stats)
        return stats

    # -- export ----------------------------------------------------------------------

    def export(
        self,
        folder: str,
        teacher_source: str,
        teacher_kind: str = "auto",
        extra: dict | None = None,
    ) -> str | None:
        """Load the best checkpoint (lowest validation loss) and export it for inference.

        Runs on the main process; returns the folder there and ``None`` elsewhere.
        """
        from sense.export import export_model

        best = self.checkpointer.find_checkpoint(min_key="loss")
        if best is None:
            raise RuntimeError(f"no checkpoint in {self.checkpointer.checkpoints_dir} to export")
        self.checkpointer.load_checkpoint(best)
        if not if_main_process():
            return None
        meta = {
            "checkpoint": str(best.path),
            "valid_loss": best.meta.get("loss"),
            "valid_R@1": best.meta.get("R@1"),
            **(extra or {}),
        }
        return export_model(
            folder,
            encoder=_unwrap(self.modules.encoder),
            pooling=_unwrap(self.modules.pooling),
            teacher_source=teacher_source,
            teacher_kind=teacher_kind,
            teacher_center=self.teacher_center,
            extra=meta,
        )


def _optimizer_steps(opt: torch.optim.Optimizer) -> int:
    """The largest per-parameter ``step`` in an optimizer's state (0 when fresh)."""
    steps = [int(s["step"]) for s in opt.state.values() if "step" in s]
    return max(steps, default=0)


def teacher_partial_source(teacher) -> tuple[str, str]:
    """``(source, kind)`` of a ``!name:sense.lobes.text.load_teacher`` partial."""
    if isinstance(teacher, functools.partial):
        source = teacher.keywords.get("source", teacher.args[0] if teacher.args else None)
        return source, teacher.keywords.get("kind", "auto")
    return getattr(teacher, "source", "unknown"), "auto"
