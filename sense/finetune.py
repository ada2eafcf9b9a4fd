"""The one fine-tuning base: a pre-trained speech encoder with a new head.

Distillation (SENSE, SAMU-XLSR), spoken language understanding, speech
translation and summarization all fine-tune a pre-trained encoder with a head
of their own. :class:`FineTuneBrain` holds what they share:

* two optimizers, one for ``modules.encoder`` and one for every other module
  (the head), both stepping and both checkpointed, so a resumed run continues
  with the saved optimizer states;
* an encoder warm-up (``encoder_freeze_steps``): while it lasts the encoder
  runs without autograd, so it gets no gradient at all and its optimizer's
  first step starts from clean state;
* learning-rate annealing of each optimizer on the validation loss, or a
  per-step schedule (:func:`three_phase_schedule`, the ZeroST paper's);
* a log of each optimizer's step count at start (resume audits) and of the
  peak device memory after the first step;
* no read of the device between the forward and the backward pass:
  SpeechBrain's non-finite loss check (count, ``--nonfinite_patience``) runs
  on the loss the step already copies to the host.

AMP (``--precision``), DDP (``torchrun``) and resume mid-epoch come from
SpeechBrain's ``Brain``. A task subclass implements ``compute_forward`` (with
:meth:`FineTuneBrain.encode` for the encoder) and ``compute_objectives``.

Expected ``hparams``: ``encoder_opt_class`` and ``<head>_opt_class``
(partials taking the parameters), optional ``encoder_lr_annealing`` /
``<head>_lr_annealing`` (SpeechBrain schedulers called with the validation
loss), optional ``encoder_lr_schedule`` / ``<head>_lr_schedule`` (called as
``schedule(optimizer, step)`` before every optimizer step, like SpeechBrain's
``TriStageLRSchedule``), ``encoder_freeze_steps`` and ``train_logger``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from types import SimpleNamespace

import speechbrain as sb
import torch
from speechbrain.nnet.schedulers import TriStageLRSchedule
from speechbrain.utils.distributed import if_main_process

logger = logging.getLogger(__name__)

# Name under which the train loader's position is checkpointed (SpeechBrain's own key).
TRAIN_LOADER_KEY = "dataloader-TRAIN"
ENCODER = "encoder"
# Bytes in a GiB, for the peak-memory log.
GIB = 1024**3
#: Warm-up, hold and decay shares of the training steps (ZeroST, after wav2vec 2.0).
THREE_PHASES = (0.1, 0.4, 0.5)
#: Rates at the start of warm-up and at the end of decay, relative to the peak.
THREE_PHASE_START_SCALE = 0.01
THREE_PHASE_END_SCALE = 0.05


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP / DataParallel wrapper (or the module itself)."""
    return module.module if hasattr(module, "module") else module


def optimizer_steps(opt: torch.optim.Optimizer) -> int:
    """The largest per-parameter ``step`` in an optimizer's state (0 when fresh).

    Example
    -------
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = torch.optim.Adam([w])
    >>> w.sum().backward(); opt.step()
    >>> optimizer_steps(opt)
    1
    """
    steps = [int(s["step"]) for s in opt.state.values() if "step" in s]
    return max(steps, default=0)


def scale_learning_rates(opt: torch.optim.Optimizer, new_lr: float) -> None:
    """Set the first parameter group's rate to ``new_lr``, the others in proportion.

    An optimizer whose groups have rates of their own (a projection at 1e-3
    beside a decoder at 1e-4) keeps their ratios when a scheduler anneals it.

    Example
    -------
    >>> a, b = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    >>> opt = torch.optim.Adam([{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 1e-4}])
    >>> scale_learning_rates(opt, 5e-4)
    >>> [round(g["lr"], 6) for g in opt.param_groups]
    [0.0005, 5e-05]
    """
    reference = opt.param_groups[0]["lr"]
    for group in opt.param_groups:
        group["lr"] = new_lr if reference == 0 else group["lr"] * new_lr / reference


def three_phase_schedule(
    lr: float,
    total_steps: int,
    phases: Sequence[float] = THREE_PHASES,
    init_lr_scale: float = THREE_PHASE_START_SCALE,
    final_lr_scale: float = THREE_PHASE_END_SCALE,
) -> TriStageLRSchedule:
    """Warm up to ``lr``, hold, decay: SpeechBrain's tri-stage schedule over ``total_steps``.

    ``phases`` are the shares of the steps of each stage (they must add up to 1).

    Example
    -------
    >>> schedule = three_phase_schedule(1e-4, total_steps=100)
    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(1))])
    >>> rates = []
    >>> for step in (0, 10, 49, 100):
    ...     schedule(opt, step)
    ...     rates.append(f"{opt.param_groups[0]['lr']:.1e}")
    >>> rates
    ['1.0e-06', '1.0e-04', '1.0e-04', '5.0e-06']
    """
    if len(phases) != 3 or abs(sum(phases) - 1) > 1e-6 or min(phases) < 0:
        raise ValueError(f"phases must be three non-negative shares adding up to 1, got {phases}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    warmup, hold = (max(1, round(share * total_steps)) for share in phases[:2])
    return TriStageLRSchedule(
        lr=lr,
        warmup_steps=warmup,
        hold_steps=hold,
        decay_steps=max(1, total_steps - warmup - hold),
        total_steps=total_steps,
        init_lr_scale=init_lr_scale,
        final_lr_scale=final_lr_scale,
    )


@dataclasses.dataclass
class Experiment:
    """A recipe's command line read, its hparams not loaded yet (see :func:`open_experiment`).

    Attributes
    ----------
    hparams_file : str
    overrides : str
        The command line's overrides, as SpeechBrain parses them.
    run_opts : dict
        SpeechBrain's run options, this process's device set.
    plan : sense.preflight.Plan
        The hparams with no object built: folders, sources and sizes to check
        and prepare from; models stay :class:`~sense.preflight.Deferred`.
    """

    hparams_file: str
    overrides: str
    run_opts: dict
    plan: dict

    def load(self) -> dict:
        """The full hparams: every object (the models) built, as ``load_hyperpyyaml`` does."""
        from hyperpyyaml import load_hyperpyyaml

        with open(self.hparams_file, encoding="utf-8") as fin:
            return load_hyperpyyaml(fin, self.overrides)


def open_experiment(argv: Sequence[str]) -> Experiment:
    """A recipe's start, before any model is loaded: parse, check the outputs, join DDP.

    Parses the command line as SpeechBrain does, reads the YAML with its
    overrides *without building its objects* (:func:`sense.preflight.peek_hparams`),
    checks that every output path it names can be written
    (:func:`sense.preflight.check_outputs`), runs its ``__`` hooks (the seed),
    joins the DDP group (under ``torchrun``), sets this process's device
    (:func:`resolve_device`) and creates the experiment folder
    (``output_folder``, the YAML and the overrides saved in it). The recipe
    then checks and prepares its data from ``experiment.plan`` and calls
    ``experiment.load()`` for the models.

    Raises
    ------
    sense.preflight.PreflightError
        An output path cannot be written.
    """
    from sense.preflight import check_outputs, peek_hparams

    hparams_file, run_opts, overrides = sb.parse_arguments(list(argv))
    plan = peek_hparams(hparams_file, overrides)
    check_outputs(plan)
    plan.run_hooks()
    sb.utils.distributed.ddp_init_group(run_opts)
    run_opts = resolve_device(run_opts)
    sb.create_experiment_directory(
        experiment_directory=plan["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    return Experiment(hparams_file, overrides, run_opts, plan)


def start_experiment(argv: Sequence[str]):
    """A recipe's start: ``(hparams_file, hparams, run_opts)`` of ``train.py hparams/x.yaml --k=v``.

    :func:`open_experiment`, then the full hparams loaded (every model built):
    for a recipe with nothing to check or prepare before its models.
    """
    experiment = open_experiment(argv)
    return experiment.hparams_file, experiment.load(), experiment.run_opts


def resolve_device(run_opts):
    """``run_opts`` (a dict or SpeechBrain's RunOptions) with this process's device set.

    ``--device=cuda`` under ``torchrun`` means each rank's own GPU
    (``cuda:<LOCAL_RANK>``), not ``cuda:0`` for every rank; no ``--device``
    means the best available.

    Example
    -------
    >>> resolve_device({"device": "cpu"})["device"]
    'cpu'
    """
    from speechbrain.utils.distributed import get_local_rank, infer_device

    device = run_opts.get("device") or infer_device()
    local_rank = get_local_rank()
    if device == "cuda" and local_rank is not None:
        device = f"cuda:{local_rank}"
    if isinstance(run_opts, dict):
        return {**run_opts, "device": device}
    return dataclasses.replace(run_opts, device=device)  # RunOptions is frozen


class FineTuneBrain(sb.Brain):
    """A pre-trained ``modules.encoder`` fine-tuned with a new head.

    Every module but ``encoder`` belongs to the head. The head's optimizer
    and annealing are read from ``hparams.<HEAD>_opt_class`` and
    ``hparams.<HEAD>_lr_annealing``; a subclass names its head with ``HEAD``
    (``"pooling"`` for distillation), which also names the optimizer in the
    checkpoint (``<HEAD>_optimizer``).
    """

    HEAD = "head"

    # -- the encoder -------------------------------------------------------------------

    @property
    def encoder_frozen(self) -> bool:
        """Whether the encoder is held still at this step (warm-up)."""
        return self.optimizer_step < getattr(self.hparams, "encoder_freeze_steps", 0)

    def encode(self, wavs: torch.Tensor, wav_lens: torch.Tensor, stage):
        """Encoder frames ``[B,T,D]`` and relative lengths ``[B]``.

        During warm-up the training forward runs without autograd: the
        encoder's parameters get no gradient, and no backward pass runs
        through it.
        """
        if stage == sb.Stage.TRAIN and self.encoder_frozen:
            with torch.no_grad():
                return self.modules.encoder(wavs, wav_lens)
        return self.modules.encoder(wavs, wav_lens)

    # -- data ---------------------------------------------------------------------------

    def use_train_loader(self, loader) -> None:
        """Train on ``loader``: resumable mid-epoch, its batch sampler re-seeded each epoch.

        The loader's position is checkpointed under SpeechBrain's own key, and
        SpeechBrain calls ``train_sampler.set_epoch`` at the start of each epoch.
        """
        self.train_sampler = loader.batch_sampler
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable(TRAIN_LOADER_KEY, loader)

    def end_valid_epoch(
        self,
        epoch: int,
        stats: dict,
        meta: dict | None = None,
        min_key: str = "loss",
        max_key: str | None = None,
        **stats_meta,
    ) -> None:
        """After validation: anneal on the loss, log, keep the best checkpoints.

        Parameters
        ----------
        epoch : int
        stats : dict
            Validation statistics (``loss`` among them), logged.
        meta : dict, optional
            Recorded with the checkpoint (default: ``stats``).
        min_key, max_key : str
            The best checkpoints have the lowest ``min_key`` or, when given,
            the highest ``max_key`` of their ``meta``.
        **stats_meta
            Logged beside the epoch (e.g. the training step).
        """
        lrs = self.anneal(stats["loss"])
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, **stats_meta, **lrs},
            train_stats=getattr(self, "train_stats", None),
            valid_stats=stats,
        )
        if self.checkpointer is None:
            return
        best = {"max_keys": [max_key]} if max_key else {"min_keys": [min_key]}
        self.checkpointer.save_and_keep_only(
            meta=dict(stats if meta is None else meta),
            num_to_keep=getattr(self.hparams, "checkpoints_to_keep", 2),
            **best,
        )

    # -- export ------------------------------------------------------------------------

    def load_best(self, min_key: str | None = None, max_key: str | None = None) -> dict | None:
        """Load the best checkpoint into the modules; its description on the main process.

        Every rank loads it (so all hold the same weights); the main process
        gets ``{"checkpoint": path, "valid": {metric: value}}`` for the
        export's ``meta.json``, the others ``None``.
        """
        best = self.checkpointer.find_checkpoint(min_key=min_key, max_key=max_key)
        if best is None:
            raise RuntimeError(f"no checkpoint in {self.checkpointer.checkpoints_dir} to export")
        self.checkpointer.load_checkpoint(best)
        if not if_main_process():
            return None
        return {"checkpoint": str(best.path), "valid": dict(best.meta)}

    # -- the step ----------------------------------------------------------------------

    def check_loss_isfinite(self, loss):
        """Nothing here: SpeechBrain's check reads the loss before ``backward``.

        That read makes the host wait for the whole forward pass before it
        queues the backward one. :meth:`update_average` runs the same check
        on the loss ``fit_batch`` returns, already on the host.
        """

    def update_average(self, loss: torch.Tensor, avg_loss: float) -> float:
        """SpeechBrain's running average, after its non-finite check of the host loss.

        Example
        -------
        >>> brain = FineTuneBrain(modules={}, run_opts={"device": "cpu"})
        >>> brain.step, brain.nonfinite_count, brain.nonfinite_patience = 2, 0, 0
        >>> brain.update_average(torch.tensor(3.0), avg_loss=1.0)
        2.0
        >>> brain.update_average(torch.tensor(float("nan")), avg_loss=2.0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Loss is not finite and patience is exhausted. ...
        """
        if not torch.isfinite(loss):
            sb.Brain.check_loss_isfinite(self, loss)
        return super().update_average(loss, avg_loss)

    # -- optimizers --------------------------------------------------------------------

    def head_parameters(self) -> list[torch.nn.Parameter]:
        """Trainable parameters of every module but the encoder."""
        return [
            p
            for name, module in self.modules.items()
            if name != ENCODER
            for p in module.parameters()
            if p.requires_grad
        ]

    def init_optimizers(self):
        """One optimizer for the encoder, one for the head; both checkpointed."""
        self.optimizers_dict = {}
        encoder_params = [p for p in self.modules[ENCODER].parameters() if p.requires_grad]
        if encoder_params:
            self.optimizers_dict[ENCODER] = self.hparams.encoder_opt_class(encoder_params)
        else:
            logger.info("The encoder is frozen: only the %s is trained", self.HEAD)
        head_params = self.head_parameters()
        if head_params:  # a head may have no weights (e.g. an activation alone)
            opt_class = getattr(self.hparams, f"{self.HEAD}_opt_class")
            self.optimizers_dict[self.HEAD] = opt_class(head_params)
        if self.checkpointer is not None:
            for name, opt in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(f"{name}_optimizer", opt)

    def freeze_optimizers(self, optimizers):
        """Leave the encoder's optimizer out during warm-up."""
        if self.encoder_frozen:
            return {k: v for k, v in optimizers.items() if k != ENCODER}
        return optimizers

    def on_fit_batch_start(self, batch, should_step):
        """Before an optimizer step, set each rate from its per-step schedule."""
        if should_step:
            self.follow_schedules()

    def follow_schedules(self) -> None:
        """Set each optimizer's rate from ``<name>_lr_schedule`` at this optimizer step.

        The schedule gives the first parameter group's rate; the other groups
        keep their ratios to it (:func:`scale_learning_rates`).
        """
        for name, opt in self.optimizers_dict.items():
            schedule = getattr(self.hparams, f"{name}_lr_schedule", None)
            if schedule is not None:
                probe = SimpleNamespace(param_groups=[{"lr": opt.param_groups[0]["lr"]}])
                schedule(probe, self.optimizer_step)
                scale_learning_rates(opt, probe.param_groups[0]["lr"])

    def anneal(self, valid_loss: float) -> dict[str, float]:
        """Step each optimizer's annealing on the validation loss; the new rates."""
        lrs = {}
        for name, opt in self.optimizers_dict.items():
            scheduler = getattr(self.hparams, f"{name}_lr_annealing", None)
            if scheduler is not None:
                _, new_lr = scheduler(valid_loss)
                scale_learning_rates(opt, new_lr)
            lrs[f"lr_{name}"] = opt.param_groups[0]["lr"]
        return lrs

    # -- logs --------------------------------------------------------------------------

    def on_fit_start(self):
        super().on_fit_start()
        steps = {name: optimizer_steps(opt) for name, opt in self.optimizers_dict.items()}
        logger.info(
            "Starting at optimizer step %d (epoch step %d); optimizer states: %s",
            self.optimizer_step,
            self.step,
            steps,
        )
        if self.device_type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._peak_logged = False
        # Every rank calls the logger: SpeechBrain writes on rank 0 only and
        # broadcasts from it, so a call made on rank 0 alone would deadlock.
        self.hparams.train_logger.log_stats(
            stats_meta={"start_optimizer_step": self.optimizer_step, "start_epoch_step": self.step},
            train_stats={f"{k}_state_steps": v for k, v in steps.items()},
        )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step and not getattr(self, "_peak_logged", True):
            self._peak_logged = True
            if self.device_type == "cuda":
                peak = torch.cuda.max_memory_allocated(self.device) / GIB
                total = torch.cuda.get_device_properties(self.device).total_memory / GIB
                logger.info(
                    "Peak device memory after the first step: %.1f GiB of %.1f GiB", peak, total
                )
