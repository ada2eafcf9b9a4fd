"""ZeroST training: knowledge distillation, then NLL, on transcribed speech only.

One :class:`ZeroSTBrain` (on :class:`sense.finetune.FineTuneBrain`) runs
either step, chosen by ``hparams.zerost_step``:

* ``"kd"``: the Q-Former's outputs learn the frozen NLLB encoder's token
  embeddings of the transcript (read from a
  :class:`sense.zerost.cache.TokenEmbeddingCache`) with
  :class:`sense.zerost.losses.ZeroSTKDLoss`;
* ``"nll"``: the Q-Former's outputs replace the NLLB encoder output for the
  frozen NLLB decoder (:class:`sense.translation.model.Seq2SeqDecoder`),
  trained with teacher forcing to emit the transcript (its language code
  first); the speech encoder gets a new adapter stage (``"nll"``, the only
  one that learns) in sequence with the KD stage's, everything started from
  the KD step's best checkpoint (``kd_checkpoint``; none: the NLL-only
  baseline).

One YAML serves both steps: the module the other step needs (``decoder`` in
KD, where it only decodes for evaluation; ``kd_loss`` in NLL) is frozen.

Modules: ``encoder`` (:class:`sense.zerost.speech.AdaptedSpeechEncoder`: its
adapters and projection learn, under ``encoder_opt_class``), ``qformer``,
and ``kd_loss`` (step 1, its projections learn) or ``decoder`` (step 2,
frozen), all under ``head_opt_class``. Checkpoints hold what learns, never
the frozen encoder or decoder: the brain registers ``speech_adapters``,
``speech_projection``, ``qformer`` (and ``kd_loss``) with the checkpointer.

:func:`translate` decodes speech into any NLLB language by its code.
"""

from __future__ import annotations

import logging
import os

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from sense.dataio import load_audio
from sense.finetune import FineTuneBrain, unwrap
from sense.translation.brain import label_smoothed_nll

logger = logging.getLogger(__name__)

KD, NLL = "kd", "nll"
STEPS = (KD, NLL)
#: Manifest columns: ``language`` is the transcript's NLLB code (``fra_Latn``).
ZEROST_FIELDS = ("ID", "duration", "wav", "language", "transcript")


def add_zerost_pipelines(
    data: DynamicItemDataset, decoder=None, token_cache=None, sample_rate: int = 16000
) -> DynamicItemDataset:
    """Add ``sig``, and ``tokens`` (NLL targets) or ``teacher`` (KD targets), to ``data``.

    Parameters
    ----------
    data : DynamicItemDataset
        Items with ``wav``, ``transcript`` and ``language`` (an NLLB code).
    decoder : Seq2SeqDecoder, optional
        Makes ``tokens``: ``[language code, transcript tokens..., </s>]``.
    token_cache : TokenEmbeddingCache, optional
        Gives ``teacher``: the ``[m, D]`` NLLB encoder matrix of the item's id.
    """

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio(wav):
        return load_audio(wav, sample_rate)

    keys = ["id", "sig", "transcript", "language"]
    data.add_dynamic_item(audio)
    if decoder is not None:

        @sb.utils.data_pipeline.takes("transcript", "language")
        @sb.utils.data_pipeline.provides("tokens")
        def targets(transcript, language):
            return decoder.target_ids(transcript, language)

        data.add_dynamic_item(targets)
        keys.append("tokens")
    if token_cache is not None:

        @sb.utils.data_pipeline.takes("id")
        @sb.utils.data_pipeline.provides("teacher")
        def teacher(uid):
            return token_cache[uid]

        data.add_dynamic_item(teacher)
        keys.append("teacher")
    data.set_output_keys(keys)
    return data


def best_kd_checkpoint(folder: str) -> str:
    """The checkpoint to start step 2 from: ``folder`` itself, or its lowest-loss ``CKPT+*``.

    Raises
    ------
    FileNotFoundError
        ``folder`` is neither a checkpoint nor a save folder holding one.
    """
    if os.path.isfile(os.path.join(folder, "qformer.ckpt")):
        return folder
    if os.path.isdir(folder):
        best = sb.utils.checkpoints.Checkpointer(folder).find_checkpoint(min_key="loss")
        if best is not None:
            return str(best.path)
    raise FileNotFoundError(
        f"ZeroST: no KD checkpoint in {folder!r}: run the KD step first "
        "(zerost_step: kd), or set kd_checkpoint: null for the NLL-only baseline"
    )


def load_kd_weights(encoder, qformer, checkpoint: str) -> None:
    """Start step 2 from step 1: the KD adapters, projection and Q-Former of ``checkpoint``.

    ``checkpoint`` is a checkpoint folder or the KD step's save folder (its
    best checkpoint is used). The encoder's adapter stages that step 1 did
    not have (``nll``) keep their identity start.

    Raises
    ------
    FileNotFoundError
        ``checkpoint`` lacks one of the files.
    """
    checkpoint = best_kd_checkpoint(checkpoint)
    logger.info("ZeroST NLL step: starting from the KD checkpoint %s", checkpoint)
    parts = {
        "speech_adapters": encoder.adapters,
        "speech_projection": encoder.projection,
        "qformer": qformer,
    }
    for name, module in parts.items():
        path = os.path.join(checkpoint, f"{name}.ckpt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ZeroST: the KD checkpoint {checkpoint!r} has no {name}.ckpt")
        state = torch.load(path, map_location="cpu", weights_only=True)
        result = module.load_state_dict(state, strict=False)
        if result.unexpected_keys or any(
            not k.startswith(f"stages.{NLL}.") for k in result.missing_keys
        ):
            raise ValueError(f"ZeroST: {path} does not fit this model: {result}")


@torch.no_grad()
def translate(
    encoder,
    qformer,
    decoder,
    wavs: torch.Tensor,
    wav_lens: torch.Tensor,
    target_lang: str,
    beam_size: int = 5,
    max_new_tokens: int = 200,
) -> list[str]:
    """Translate speech into ``target_lang`` (an NLLB code, e.g. ``"deu_Latn"``).

    ``generate`` beam search on the Q-Former's outputs, the output forced to
    start with the language code: any language of NLLB, seen in training or not.
    """
    frames, frame_lens = encoder(wavs, wav_lens)
    queries = qformer(frames, frame_lens)
    decoder.set_target_lang(target_lang)
    ones = torch.ones(queries.shape[0], device=queries.device)
    return decoder.generate(queries, ones, beam_size=beam_size, max_new_tokens=max_new_tokens)


class ZeroSTBrain(FineTuneBrain):
    """Step 1 (KD) or step 2 (NLL) of ZeroST; see the module docstring.

    Expected ``hparams`` beyond :class:`FineTuneBrain`'s: ``zerost_step``
    (``"kd"`` or ``"nll"``); ``label_smoothing`` (step 2); optional
    ``kd_checkpoint`` (step 2: the step-1 checkpoint folder to start from)
    and ``checkpoints_to_keep``.
    """

    HEAD = "head"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.zerost_step = self.hparams.zerost_step
        if self.zerost_step not in STEPS:
            raise ValueError(f"zerost_step must be one of {STEPS}, got {self.zerost_step!r}")
        needed = "kd_loss" if self.zerost_step == KD else "decoder"
        if needed not in self.modules:
            raise ValueError(f"ZeroST step {self.zerost_step!r} needs the module {needed!r}")
        unused = "decoder" if self.zerost_step == KD else "kd_loss"
        if unused in self.modules:
            self.modules[unused].requires_grad_(False)
        encoder = self.modules["encoder"]
        if self.zerost_step == NLL:
            if NLL not in encoder.adapters.stages:
                encoder.adapters.add_stage(NLL)
            encoder.adapters.set_trainable([NLL])
            kd = getattr(self.hparams, "kd_checkpoint", None)
            if kd:
                load_kd_weights(encoder, self.modules["qformer"], kd)
        if self.checkpointer is not None:
            parts = {
                "speech_adapters": encoder.adapters,
                "speech_projection": encoder.projection,
                "qformer": self.modules["qformer"],
            }
            if self.zerost_step == KD:
                parts["kd_loss"] = self.modules["kd_loss"]
            for name, module in parts.items():
                if name not in self.checkpointer.recoverables:
                    self.checkpointer.add_recoverable(name, module)

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        frames, frame_lens = self.encode(*batch.sig, stage)
        queries = self.modules.qformer(frames, frame_lens)
        if self.zerost_step == KD:
            return queries
        decoder = unwrap(self.modules.decoder)
        inputs, labels = decoder.teacher_forcing(*batch.tokens)
        ones = torch.ones(queries.shape[0], device=queries.device)
        return self.modules.decoder(queries, ones, inputs), labels

    def compute_objectives(self, predictions, batch, stage):
        if self.zerost_step == KD:
            loss, parts = self.modules.kd_loss(predictions, *batch.teacher)
            for name, value in parts.items():
                self._parts[name] = self._parts.get(name, 0.0) + float(value)
            self._parts["batches"] = self._parts.get("batches", 0) + 1
            return loss
        logits, labels = predictions
        return label_smoothed_nll(logits, labels, getattr(self.hparams, "label_smoothing", 0.0))

    def on_stage_start(self, stage, epoch=None):
        self._parts = {}

    def _part_stats(self) -> dict[str, float]:
        batches = self._parts.get("batches", 0)
        return {f"kd_{k}": v / batches for k, v in self._parts.items() if k != "batches"}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss, **self._part_stats()}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            self.end_valid_epoch(epoch, stats, step=self.zerost_step)
            return
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
        )

    def export(self, folder: str, extra: dict | None = None, **settings):
        """Load the best checkpoint (lowest validation loss) of step 2 and export it.

        Runs on the main process; returns the folder there and ``None``
        elsewhere. ``settings`` go to :func:`sense.zerost.export.export_zerost`
        (``target_lang``: the model's default language, ...).
        """
        from sense.zerost.export import export_zerost

        if self.zerost_step != NLL:
            raise ValueError("only a ZeroST step-2 (nll) model, with its decoder, can be exported")
        meta = self.load_best(min_key="loss")
        if meta is None:
            return None
        meta.update(extra or {})
        return export_zerost(
            folder,
            encoder=unwrap(self.modules.encoder),
            qformer=unwrap(self.modules.qformer),
            decoder=unwrap(self.modules.decoder),
            extra=meta,
            **settings,
        )


__all__ = [
    "STEPS",
    "ZEROST_FIELDS",
    "ZeroSTBrain",
    "add_zerost_pipelines",
    "best_kd_checkpoint",
    "load_kd_weights",
    "translate",
]
