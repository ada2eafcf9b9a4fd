"""The fine-tuning base's decisions on a two-layer stand-in (the mutants of ``sense/finetune.py``).

Rates, schedules, warm-up, optimizers and checkpoints of :class:`FineTuneBrain`,
each pinned by hand; the recipes' tests run the same class end to end.
"""

import math
from types import SimpleNamespace

import pytest
import speechbrain as sb
import torch

from sense.finetune import (
    FineTuneBrain,
    optimizer_steps,
    scale_learning_rates,
    three_phase_schedule,
)


def sgd(lr):
    return lambda params: torch.optim.SGD(params, lr=lr)


class Checkpointer:
    """Records what a brain asks of SpeechBrain's checkpointer."""

    def __init__(self, best=None):
        self.recoverables, self.saved, self.loaded, self.best = {}, [], [], best
        self.checkpoints_dir = "ckpts"

    def add_recoverable(self, name, obj):
        self.recoverables[name] = obj

    def save_and_keep_only(self, **kwargs):
        self.saved.append(kwargs)

    def find_checkpoint(self, min_key=None, max_key=None):
        self.asked = (min_key, max_key)
        return self.best

    def load_checkpoint(self, checkpoint):
        self.loaded.append(checkpoint)


class Logger:
    def __init__(self):
        self.calls = []

    def log_stats(self, **kwargs):
        self.calls.append(kwargs)


class Encoder(torch.nn.Linear):
    """A linear layer called as the encoders are: ``(wavs, wav_lens)``; scales by the lengths."""

    def forward(self, x, lens=None):
        return super().forward(x) * (1.0 if lens is None else lens[:, None])


def brain(checkpointer=None, encoder=None, head=None, **hparams):
    modules = {"encoder": encoder or Encoder(2, 2), "head": head or torch.nn.Linear(2, 1)}
    hparams = {"encoder_opt_class": sgd(0.1), "head_opt_class": sgd(1.0), **hparams}
    hparams.setdefault("train_logger", Logger())
    made = FineTuneBrain(
        modules=modules, hparams=hparams, run_opts={"device": "cpu"}, checkpointer=checkpointer
    )
    made.init_optimizers()
    return made


def test_optimizer_steps_is_the_most_steps_of_any_parameter():
    a, b = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.Adam([a, b])
    assert optimizer_steps(opt) == 0
    for _ in range(3):
        a.grad = torch.ones(1)
        opt.step()
    b.grad = torch.ones(1)
    opt.step()  # a at 4 steps, b at 1
    assert optimizer_steps(opt) == 4


def test_rates_keep_their_ratios_and_a_zero_rate_takes_the_new_one():
    a, b = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 2.0}, {"params": [b], "lr": 0.5}])
    scale_learning_rates(opt, 1.0)
    assert [g["lr"] for g in opt.param_groups] == [1.0, 0.25]
    zero = torch.optim.SGD([{"params": [a], "lr": 0.0}, {"params": [b], "lr": 0.5}])
    scale_learning_rates(zero, 3.0)
    assert [g["lr"] for g in zero.param_groups] == [3.0, 3.0]


def rates(schedule, steps, lr=1.0):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=lr)
    out = []
    for step in steps:
        schedule(opt, step)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_three_phases_by_hand():
    # 100 steps: 10 of warm-up from 1e-2 of the peak, 40 held, 50 of decay to 5e-2 of it
    schedule = three_phase_schedule(1.0, total_steps=100)
    assert (schedule.warmup_steps, schedule.hold_steps, schedule.decay_steps) == (10, 40, 50)
    expected = [0.01 + 0.99 * 0.5, 1.0, 1.0, 0.05 ** (25 / 50), 0.05]
    assert rates(schedule, (5, 10, 30, 75, 100)) == pytest.approx(expected, rel=1e-12)
    # other scales and shares
    schedule = three_phase_schedule(2.0, 10, phases=(0.2, 0.3, 0.5), init_lr_scale=0.5,
                                    final_lr_scale=0.25)  # fmt: skip
    assert (schedule.warmup_steps, schedule.hold_steps, schedule.decay_steps) == (2, 3, 5)
    assert rates(schedule, (1, 3, 10)) == pytest.approx([1.5, 2.0, 0.5], rel=1e-12)


def test_three_phases_of_few_steps_keep_a_step_each():
    short = three_phase_schedule(1.0, total_steps=7)  # round(0.7) = 1, round(2.8) = 3
    assert (short.warmup_steps, short.hold_steps, short.decay_steps) == (1, 3, 3)
    one = three_phase_schedule(1.0, total_steps=1)
    assert (one.warmup_steps, one.hold_steps, one.decay_steps, one.total_steps) == (1, 1, 1, 1)


@pytest.mark.parametrize(
    "phases, total, match",
    [
        ((0.5, 0.5), 10, "three"),
        ((0.1, 0.4, 0.4), 10, "adding up to 1"),
        ((0.1, 0.4, 0.6), 10, "adding up to 1"),
        ((-0.1, 0.6, 0.5), 10, "non-negative"),
        ((0.1, 0.4, 0.5), 0, "total_steps must be positive"),
    ],
)
def test_three_phases_refuse(phases, total, match):
    with pytest.raises(ValueError, match=match):
        three_phase_schedule(1.0, total, phases=phases)


def test_three_phases_take_a_zero_share():
    schedule = three_phase_schedule(1.0, 10, phases=(0.0, 0.5, 0.5))
    assert (schedule.warmup_steps, schedule.hold_steps, schedule.decay_steps) == (1, 5, 4)


def test_warm_up_freezes_the_encoder_for_its_steps():
    made = brain(encoder_freeze_steps=2)
    x, lens = torch.ones(2, 2), torch.tensor([1.0, 0.5])
    expected = made.modules.encoder(x, lens)
    for step, frozen in ((0, True), (1, True), (2, False)):
        made.optimizer_step = step
        assert made.encoder_frozen is frozen
        kept = made.freeze_optimizers(made.optimizers_dict)
        assert sorted(kept) == (["head"] if frozen else ["encoder", "head"])
        out = made.encode(x, lens, sb.Stage.TRAIN)
        assert out.requires_grad is not frozen and torch.equal(out, expected)
        out = made.encode(x, lens, sb.Stage.VALID)
        assert out.requires_grad and torch.equal(out, expected)  # validation: as it is
    assert brain().encoder_frozen is False  # no warm-up unless asked


def test_head_parameters_are_the_trainable_ones_outside_the_encoder():
    head = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    head[0].weight.requires_grad_(False)
    made = brain(head=head)
    expected = [head[0].bias, head[1].weight, head[1].bias]
    assert [id(p) for p in made.head_parameters()] == [id(p) for p in expected]


def test_two_optimizers_checkpointed_under_their_names():
    checkpointer = Checkpointer()
    made = brain(checkpointer)
    assert sorted(made.optimizers_dict) == ["encoder", "head"]
    optimizers = {k: v for k, v in checkpointer.recoverables.items() if k != "brain"}
    assert optimizers == {
        "encoder_optimizer": made.optimizers_dict["encoder"],
        "head_optimizer": made.optimizers_dict["head"],
    }
    assert made.optimizers_dict["encoder"].param_groups[0]["lr"] == 0.1
    assert made.optimizers_dict["head"].param_groups[0]["lr"] == 1.0


def test_a_frozen_encoder_or_a_weightless_head_gets_no_optimizer():
    encoder = Encoder(2, 2).requires_grad_(False)
    assert sorted(brain(encoder=encoder).optimizers_dict) == ["head"]
    assert sorted(brain(head=torch.nn.Tanh()).optimizers_dict) == ["encoder"]


def test_schedules_set_each_optimizers_rate_at_the_optimizer_step():
    def halve_per_step(opt, step):  # reads the current rate, as SpeechBrain's schedules do
        opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"] / 2**step

    made = brain(head_lr_schedule=halve_per_step)
    made.optimizer_step = 3
    made.on_fit_batch_start(None, should_step=False)  # not a step: nothing changes
    assert made.optimizers_dict["head"].param_groups[0]["lr"] == 1.0
    made.on_fit_batch_start(None, should_step=True)
    assert made.optimizers_dict["head"].param_groups[0]["lr"] == 0.125
    assert made.optimizers_dict["encoder"].param_groups[0]["lr"] == 0.1  # no schedule


def test_anneal_scales_the_annealed_optimizers_and_reports_every_rate():
    made = brain(encoder_lr_annealing=lambda loss: (0.1, loss / 100))
    assert made.anneal(5.0) == {"lr_encoder": pytest.approx(0.05, rel=1e-12), "lr_head": 1.0}


def test_end_of_validation_logs_and_keeps_the_best():
    checkpointer, logger = Checkpointer(), Logger()
    made = brain(checkpointer, train_logger=logger, head_lr_annealing=lambda loss: (1.0, loss))
    made.end_valid_epoch(2, {"loss": 1.75})  # a validation before any training
    assert logger.calls.pop()["train_stats"] is None
    made.train_stats = {"loss": 2.0}
    made.end_valid_epoch(3, {"loss": 1.5, "acc": 0.7}, step=40)
    assert logger.calls == [
        {
            "stats_meta": {"epoch": 3, "step": 40, "lr_encoder": 0.1, "lr_head": 1.5},
            "train_stats": {"loss": 2.0},
            "valid_stats": {"loss": 1.5, "acc": 0.7},
        }
    ]
    made.end_valid_epoch(4, {"loss": 1.0, "acc": 0.9}, meta={"acc": 0.9}, max_key="acc")
    assert checkpointer.saved[1:] == [
        {"meta": {"loss": 1.5, "acc": 0.7}, "num_to_keep": 2, "min_keys": ["loss"]},
        {"meta": {"acc": 0.9}, "num_to_keep": 2, "max_keys": ["acc"]},
    ]
    made.hparams.checkpoints_to_keep = 5
    made.end_valid_epoch(5, {"loss": 0.5}, min_key="loss")
    assert checkpointer.saved[-1]["num_to_keep"] == 5


def test_load_best_loads_and_describes_it():
    best = SimpleNamespace(path="ckpts/CKPT+1", meta={"loss": 0.5})
    checkpointer = Checkpointer(best)
    made = brain(checkpointer)
    assert made.load_best(max_key="acc") == {"checkpoint": "ckpts/CKPT+1", "valid": {"loss": 0.5}}
    assert checkpointer.asked == (None, "acc") and checkpointer.loaded == [best]
    made.load_best(min_key="loss")
    assert checkpointer.asked == ("loss", None)
    with pytest.raises(RuntimeError, match="no checkpoint in ckpts"):
        brain(Checkpointer(None)).load_best(min_key="loss")


def test_a_non_finite_loss_counts_against_patience_after_the_step():
    made = brain()
    made.step, made.nonfinite_count, made.nonfinite_patience = 4, 0, 1
    assert made.update_average(torch.tensor(2.0), avg_loss=1.0) == 1.25  # 1 - 1/4 + 2/4
    made.check_loss_isfinite(torch.tensor(math.nan))  # before backward: nothing read
    assert made.nonfinite_count == 0
    made.update_average(torch.tensor(math.nan), avg_loss=1.0)
    assert made.nonfinite_count == 1
    with pytest.raises(ValueError, match="Loss is not finite"):
        made.update_average(torch.tensor(math.inf), avg_loss=1.0)
