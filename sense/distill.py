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
import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Sequence

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.distributed import if_main_process

from sense.dataio import load_audio
from sense.finetune import FineTuneBrain, unwrap
from sense.lobes.text import TeacherSpec
from sense.prepare import manifest_dataset, read_manifest
from sense.retrieval import recall_at_k
from sense.samplers import BalancedDurationBatchSampler, BatchBudget, save_ratios
from sense.teacher_cache import TeacherCache, TeacherCacheError, build_distributed

logger = logging.getLogger(__name__)

# Transcripts per teacher forward pass when building the cache.
DEFAULT_TEACHER_BATCH_SIZE = 128
# Validation R@1 is reported for languages with at least this many utterances.
MIN_UTTERANCES_FOR_R1 = 2


def manifest_transcripts(manifests: Sequence[str]) -> dict[str, str]:
    """``{utterance id: transcript}`` of every row of the given manifests."""
    items = {}
    for path in manifests:
        for row in read_manifest(path):
            items[row["ID"]] = row["transcript"]
    return items


def build_teacher_cache(
    spec: TeacherSpec,
    manifests: Sequence[str],
    cache_root: str,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_TEACHER_BATCH_SIZE,
    dtype: str = "float16",
) -> TeacherCache:
    """Encode every transcript of ``manifests`` with the teacher ``spec``, once.

    The cache lives in ``<cache_root>/<spec.key>``: each teacher has a folder
    of its own, so runs with different teachers can share a prepared folder.
    Under DDP every rank loads the teacher on its ``device`` and encodes its
    share (:func:`sense.teacher_cache.build_distributed`). Unchanged
    transcripts of an earlier run are never re-encoded.

    Returns
    -------
    TeacherCache
        Opened and verified on every process.
    """
    folder = os.path.join(cache_root, spec.key)
    items = manifest_transcripts(manifests)
    try:  # complete already (e.g. after --prepare_only): no teacher to load
        cache = TeacherCache.open(folder)
        cache.verify(items)
        logger.info(
            "teacher cache %s: %d rows, %d kept, 0 to encode", folder, len(items), len(items)
        )
        return cache
    except TeacherCacheError:
        pass
    return build_distributed(
        folder,
        items,
        functools.partial(spec.load, device),
        batch_size=batch_size,
        dtype=dtype,
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


def make_datasets(
    manifests: dict[str, str], cache: TeacherCache, sample_rate: int = 16000
) -> dict[str, DynamicItemDataset]:
    """Datasets yielding ``id, sig, teacher_emb, language, duration``, one per manifest.

    Parameters
    ----------
    manifests : dict
        Split name -> manifest path, e.g. ``{"train": ..., "valid": ...}``.
    cache : TeacherCache
        Holds the teacher embedding of every utterance.
    sample_rate : int
        Rate the audio is read at.
    """

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate)

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("teacher_emb")
    def teacher_pipeline(uid):
        return cache[uid]

    datasets = {}
    for split, path in manifests.items():
        data = manifest_dataset(path)
        data.add_dynamic_item(audio_pipeline)
        data.add_dynamic_item(teacher_pipeline)
        data.set_output_keys(["id", "sig", "teacher_emb", "language", "duration"])
        datasets[split] = data
    return datasets


def make_train_loader(
    dataset: DynamicItemDataset,
    budget: BatchBudget,
    epochs: int,
    balancing_alpha: float = 0.5,
    max_batch_size: int | None = None,
    seed: int = 0,
    num_workers: int = 0,
    ratios_file: str | None = None,
) -> SaveableDataLoader:
    """A resumable loader of language re-balanced batches filled by duration.

    The main process prints what the budget amounts to (steps per epoch, passes
    over the data). Hand the loader to :meth:`FineTuneBrain.use_train_loader`.

    Parameters
    ----------
    dataset : DynamicItemDataset
        Items with ``duration`` and ``language`` fields.
    budget : BatchBudget
        Seconds of padded audio per batch of this process and per step.
    epochs : int
        Planned epochs (for the printed summary).
    balancing_alpha, max_batch_size, seed
        See :class:`sense.samplers.BalancedDurationBatchSampler`.
    num_workers : int
        DataLoader workers.
    ratios_file : str, optional
        Where the main process writes the language sampling ratios (JSON).

    Returns
    -------
    SaveableDataLoader
        Records its position in intra-epoch checkpoints, so a resumed epoch
        continues with the next batch; its ``batch_sampler`` is the
        :class:`BalancedDurationBatchSampler`.

    Example
    -------
    >>> data = DynamicItemDataset({
    ...     "a": {"duration": 1.0, "language": "fr"}, "b": {"duration": 2.0, "language": "de"}})
    >>> data.set_output_keys(["id"])
    >>> loader = make_train_loader(data, BatchBudget(4, "per_gpu"), epochs=1)  # doctest: +ELLIPSIS
    batch budget (per_gpu 4 s): 4 s of padded audio per GPU batch, ...
    >>> len(loader.batch_sampler)
    1
    """
    durations, languages = [], []
    for uid in dataset.data_ids:
        row = dataset.data[uid]
        durations.append(float(row["duration"]))
        languages.append(row["language"])
    sampler = BalancedDurationBatchSampler(
        durations,
        languages,
        max_batch_duration=budget.per_gpu_seconds,
        alpha=balancing_alpha,
        max_batch_size=max_batch_size,
        seed=seed,
    )
    if if_main_process():
        if ratios_file is not None:
            save_ratios(sampler.ratios, ratios_file)
        summary = budget.describe(
            steps_per_epoch=len(sampler) // budget.grad_accumulation,
            epochs=epochs,
            epoch_seconds=sampler.epoch_seconds(),
            data_seconds=float(sampler.durations.sum()),
        )
        print(summary, flush=True)
    return SaveableDataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=sb.dataio.batch.PaddedBatch,
        num_workers=num_workers,
    )


class DistillationBrain(FineTuneBrain):
    """Train ``modules.encoder`` + ``modules.pooling`` towards teacher embeddings.

    The fine-tuning base (:class:`sense.finetune.FineTuneBrain`) gives the two
    optimizers (``encoder`` and ``pooling``), the warm-up and the annealing.

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

    HEAD = "pooling"
    teacher_center: torch.Tensor | None = None

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        frames, frame_lens = self.encode(wavs, wav_lens, stage)
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

    def _audit(self, suffix: str, line: str) -> None:
        """Append ``line`` to this rank's ``batch_log`` file (data-order and DDP audits)."""
        folder = getattr(self.hparams, "batch_log", None)
        if folder:
            os.makedirs(folder, exist_ok=True)
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            with open(os.path.join(folder, f"rank{rank}{suffix}"), "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def on_fit_batch_start(self, batch, should_step):
        super().on_fit_batch_start(batch, should_step)
        self._audit(".txt", " ".join(batch.id))

    # -- stages ----------------------------------------------------------------------

    def on_stage_start(self, stage, epoch=None):
        self._valid_store = defaultdict(list)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            # ranks whose gradients are synchronised hold the same parameters, bit for bit
            self._audit(".params.txt", f"{epoch} {parameter_fingerprint(self.modules)}")
            return
        stats = {"loss": stage_loss, **self._retrieval_stats()}
        if stage == sb.Stage.VALID:
            self.end_valid_epoch(epoch, stats, {"loss": stage_loss, "R@1": stats.get("R@1", 0.0)})
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )

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

    def export(self, folder: str, teacher: TeacherSpec | None, extra: dict | None = None):
        """Load the best checkpoint (lowest validation loss) and export it for inference.

        ``teacher`` is recorded whole, so ``SENSE.encode_text`` embeds text as
        the training targets were. Runs on the main process; returns the
        folder there and ``None`` elsewhere.
        """
        from sense.export import export_model

        meta = self.load_best(min_key="loss")
        if meta is None:
            return None
        meta.update(extra or {})
        return export_model(
            folder,
            encoder=unwrap(self.modules.encoder),
            pooling=unwrap(self.modules.pooling),
            teacher=teacher,
            teacher_center=self.teacher_center,
            extra=meta,
        )


def check_dimensions(encoder, pooling, teacher_dim: int) -> None:
    """Fail at start, naming the setting to change, when the blocks' sizes disagree.

    Example
    -------
    >>> from sense.nnet.pooling import AttentivePooling
    >>> class Enc: output_dim = 32
    >>> check_dimensions(Enc(), AttentivePooling(32, 16), teacher_dim=16)
    >>> check_dimensions(Enc(), AttentivePooling(32), teacher_dim=16)
    Traceback (most recent call last):
    ...
    ValueError: the pooling head gives 32-dim embeddings, the teacher 16-dim: set teacher_dim: 16 (a projection) or use a teacher of the student's width
    """
    encoder, pooling = unwrap(encoder), unwrap(pooling)
    if pooling.input_dim != encoder.output_dim:
        raise ValueError(
            f"the student gives {encoder.output_dim}-dim frames, the pooling head takes "
            f"{pooling.input_dim}: set encoder_dim: {encoder.output_dim}"
        )
    if pooling.output_dim != teacher_dim:
        raise ValueError(
            f"the pooling head gives {pooling.output_dim}-dim embeddings, the teacher "
            f"{teacher_dim}-dim: set teacher_dim: {teacher_dim} (a projection) or use a "
            "teacher of the student's width"
        )


def parameter_fingerprint(modules: torch.nn.Module) -> str:
    """A hash of every parameter's bytes (hex): equal on ranks that stay in sync.

    Example
    -------
    >>> lin = torch.nn.Linear(2, 2)
    >>> parameter_fingerprint(lin) == parameter_fingerprint(lin)
    True
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, param in sorted(modules.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
