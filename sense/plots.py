"""Figures: training curves and where the attention pooling looks in an utterance.

:func:`plot_attention` draws the per-frame attention weights of the pooling
over one utterance with its word boundaries and voice activity, like Figures 3
and 4 of the SENSE paper (section VII); :func:`plot_position_curves` draws the
mean attention logit against relative position (Figure 2);
:func:`plot_training_curve` draws the losses and validation R@1 per epoch from
a SpeechBrain ``train_log.txt``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURE_DPI = 120
_STAT = re.compile(r"(train|valid) ([^:,]+): ([-+0-9.e]+)")
_EPOCH = re.compile(r"^epoch: (\d+)")


def read_train_log(path: str) -> list[dict[str, float]]:
    """Per-epoch statistics of a SpeechBrain ``FileTrainLogger`` file.

    Returns
    -------
    list of dict
        One dict per epoch line, e.g. ``{"epoch": 1, "train loss": 0.9,
        "valid loss": 0.8, "valid R@1": 0.1}``.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "log.txt")
    >>> _ = open(p, "w").write("epoch: 1, lr: 1.0 - train loss: 0.9 - valid loss: 0.8, valid R@1: 0.1\\n")
    >>> read_train_log(p)
    [{'epoch': 1, 'train loss': 0.9, 'valid loss': 0.8, 'valid R@1': 0.1}]
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = _EPOCH.match(line)
            if not match:
                continue
            row: dict[str, float] = {"epoch": int(match.group(1))}
            for stage, name, value in _STAT.findall(line):
                row[f"{stage} {name.strip()}"] = float(value)
            rows.append(row)
    return rows


def plot_training_curve(train_log: str, path: str, title: str = "Distillation") -> str:
    """Losses (left) and mean validation R@1 (right) per epoch, saved as PNG."""
    rows = read_train_log(train_log)
    if not rows:
        raise ValueError(f"{train_log}: no epoch statistics to plot")
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_r1) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, style in (("train loss", "o-"), ("valid loss", "s-")):
        if any(key in r for r in rows):
            ax_loss.plot(epochs, [r.get(key, float("nan")) for r in rows], style, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cosine distance to the teacher")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    if any("valid R@1" in r for r in rows):
        ax_r1.plot(
            epochs, [100 * r.get("valid R@1", float("nan")) for r in rows], "o-", color="tab:green"
        )
    ax_r1.set_xlabel("epoch")
    ax_r1.set_ylabel("valid R@1 speech → own transcript (%)")
    ax_r1.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_attention(
    times: Sequence[float],
    weights: Sequence[float],
    path: str,
    words: Sequence[tuple[str, float, float]] = (),
    title: str = "",
    duration: float | None = None,
    vad: tuple[Sequence[float], Sequence[float]] | None = None,
) -> str:
    """Attention weight of each frame over time, with word boundaries (paper's Figs. 3-4).

    Parameters
    ----------
    times, weights : sequence of float
        Frame times (seconds) and attention weights (summing to one).
    path : str
        PNG file to write.
    words : sequence of (word, start, end)
        Word boundaries in seconds, drawn as shaded spans with the word.
    title : str
        Figure title (e.g. the transcript).
    duration : float, optional
        Length of the recording (x-axis limit).
    vad : (times, probabilities), optional
        Speech probability of a voice activity detector, drawn in orange on
        a second axis (0 to 1).

    Example
    -------
    >>> import tempfile
    >>> p = plot_attention([0.0, 0.02, 0.04], [0.2, 0.5, 0.3],
    ...                    os.path.join(tempfile.mkdtemp(), "a.png"), [("bonjour", 0.0, 0.04)])
    >>> os.path.isfile(p)
    True
    """
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.plot(list(times), list(weights), color="tab:blue", lw=1.5, label="attention weight")
    top = max(weights) if len(weights) else 1.0
    for i, (word, start, end) in enumerate(words):
        ax.axvspan(start, end, color="tab:orange" if i % 2 else "tab:olive", alpha=0.12, lw=0)
        ax.text(
            (start + end) / 2, top * 1.02, word, ha="center", va="bottom", fontsize=8, rotation=30
        )
    uniform = 1.0 / max(len(weights), 1)
    ax.axhline(uniform, color="grey", ls=":", lw=1, label="uniform")
    ax.set_xlim(0, duration if duration else (max(times) if len(times) else 1.0))
    ax.set_ylim(0, top * 1.25)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("attention weight")
    if vad is not None:
        ax_vad = ax.twinx()
        ax_vad.plot(list(vad[0]), list(vad[1]), color="tab:orange", lw=1.2, alpha=0.8)
        ax_vad.set_ylim(0, 1.25)
        ax_vad.set_ylabel("speech probability (VAD)", color="tab:orange")
        ax.plot([], [], color="tab:orange", lw=1.2, label="VAD")
    # Outside the axes, so it never hides the word labels above the curve.
    anchor = (1.08, 1.0) if vad is not None else (1.01, 1.0)  # past the VAD axis
    ax.legend(loc="upper left", bbox_to_anchor=anchor, fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10, pad=28)
    fig.tight_layout()
    return _save(fig, path)


def plot_position_curves(curves, path: str, title: str = "") -> str:
    """Mean attention logit against relative position, one line per group (paper's Fig. 2).

    Parameters
    ----------
    curves : dict
        Label (e.g. a language) -> an object with ``grid``, ``mean``, ``low``,
        ``high`` and ``count`` (:class:`sense.analysis.attention.PositionCurve`);
        the band between ``low`` and ``high`` is shaded.
    path : str
        PNG file to write.
    title : str
        Figure title.

    Example
    -------
    >>> import tempfile
    >>> from types import SimpleNamespace as C
    >>> c = C(grid=[0, 1], mean=[2.0, 1.0], low=[1.5, 0.5], high=[2.5, 1.5], count=3)
    >>> os.path.isfile(plot_position_curves({"fr": c}, os.path.join(tempfile.mkdtemp(), "f.png")))
    True
    """
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for label, curve in curves.items():
        (line,) = ax.plot(curve.grid, curve.mean, lw=1.6, label=f"{label} ({curve.count} utt.)")
        ax.fill_between(curve.grid, curve.low, curve.high, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlim(0, 1)
    ax.set_xlabel("relative position i / (T - 1)")
    ax.set_ylabel("mean attention logit")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(curves) > 3 else 1)
    ax.set_title(title or "Average attention logit (normalised position), 95% band", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)
    return path
