"""SLU metrics: NEER, COER and CVER (error rates over concepts) and SLURP's SLU-F1.

**NEER / COER** (named-entity / concept error rate) are computed like a word
error rate over the sequence of labels of each utterance, **CVER** over the
sequence of ``(label, value)`` pairs, summed over a data set and given in
percent. They follow SpeechBrain's ``ErrorRateStats(extract_concepts_values=
True)`` (the MEDIA evaluation) exactly, including its convention that an
utterance without any concept is aligned as one empty token that does not
count in the reference length: a concept-free reference predicted
concept-free adds nothing, one predicted with concepts adds a substitution
(and insertions) over zero reference tokens.

**SLU-F1** is SLURP's span F-measure (Bastianelli et al., 2020): each
predicted span whose label is in the reference is matched to the reference
span of that label whose value is closest; the match counts one true
positive, and its distance counts both as a false positive and a false
negative. With the word distance (the WER of the value, not capped) this is
Word-F1, with the character distance (Levenshtein over the longer length)
Char-F1; SLU-F1 is the F-measure of the two confusion counts summed.

Example
-------
>>> stats = ConceptErrorStats()
>>> stats.append(["u1"], [[("time", "seven am"), ("date", "today")]], [[("time", "seven")]])
>>> s = stats.summarize()
>>> s["COER"], s["CVER"]
(50.0, 100.0)
"""

from __future__ import annotations

from collections.abc import Sequence

from speechbrain.utils.edit_distance import (
    count_ops,
    op_table,
    wer_details_for_batch,
    wer_summary,
)

Pairs = Sequence[tuple[str, str]]

#: Token of an utterance without concepts (SpeechBrain's convention).
EMPTY = ""


def concept_tokens(pairs: Pairs, keep_values: bool) -> list[str]:
    """The tokens compared for COER (labels) or CVER (``"label value"``).

    Example
    -------
    >>> concept_tokens([("time", "seven am")], keep_values=True)
    ['time seven am']
    >>> concept_tokens([], keep_values=False)
    ['']
    """
    if keep_values:
        tokens = [f"{label} {value}" if value else label for label, value in pairs]
    else:
        tokens = [label for label, _ in pairs]
    return tokens or [EMPTY]


def error_rate(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> dict:
    """Word error rate (percent) and its counts over token sequences, as SpeechBrain's.

    Example
    -------
    >>> error_rate([["a", "b"]], [["a", "c", "d"]])["WER"]
    100.0
    """
    ids = [str(i) for i in range(len(refs))]
    details = wer_details_for_batch(ids, refs, hyps, compute_alignments=False)
    summary = wer_summary(details)
    summary["num_ref_tokens"] = summary["num_scored_tokens"]
    return summary


class ConceptErrorStats:
    """Accumulates COER and CVER over batches of ``(label, value)`` pair lists.

    Parameters
    ----------
    label_metric : str
        Name of the label error rate in :meth:`summarize`: ``"COER"`` for
        slots, ``"NEER"`` for named entities (the same computation).
    """

    def __init__(self, label_metric: str = "COER"):
        self.label_metric = label_metric
        self.clear()

    def clear(self) -> None:
        self.ids: list[str] = []
        self.refs: list[list[tuple[str, str]]] = []
        self.hyps: list[list[tuple[str, str]]] = []

    def append(self, ids: Sequence[str], refs: Sequence[Pairs], hyps: Sequence[Pairs]) -> None:
        """Add utterances: their references and hypotheses as ``(label, value)`` lists."""
        if not len(ids) == len(refs) == len(hyps):
            raise ValueError(f"got {len(ids)} ids, {len(refs)} references, {len(hyps)} hypotheses")
        self.ids.extend(ids)
        self.refs.extend([list(map(tuple, r)) for r in refs])
        self.hyps.extend([list(map(tuple, h)) for h in hyps])

    def __len__(self) -> int:
        return len(self.ids)

    def summarize(self) -> dict[str, float]:
        """``{label_metric, "CVER"}`` in percent, with the counts of each."""
        out = {}
        for name, keep in ((self.label_metric, False), ("CVER", True)):
            stats = error_rate(
                [concept_tokens(r, keep) for r in self.refs],
                [concept_tokens(h, keep) for h in self.hyps],
            )
            out[name] = stats["WER"]
            for key in ("insertions", "deletions", "substitutions", "num_ref_tokens"):
                out[f"{name}_{key}"] = stats.get(key, 0)
        return out


# ---------------------------------------------------------------------------
# SLU-F1 (SLURP)
# ---------------------------------------------------------------------------


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance between two sequences.

    Example
    -------
    >>> edit_distance("kitten", "sitting")
    3
    """
    ops = count_ops(op_table(list(ref), list(hyp)))
    return ops["insertions"] + ops["deletions"] + ops["substitutions"]


def word_distance(ref: str, hyp: str) -> float:
    """WER of ``hyp`` against ``ref`` (a fraction, not capped; 0/1 for an empty ``ref``).

    Example
    -------
    >>> word_distance("seven am", "seven")
    0.5
    """
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words:
        return float(bool(hyp_words))
    return edit_distance(ref_words, hyp_words) / len(ref_words)


def char_distance(ref: str, hyp: str) -> float:
    """Levenshtein distance over the length of the longer string (in [0, 1]).

    Example
    -------
    >>> char_distance("seven", "sevn")
    0.2
    """
    longest = max(len(ref), len(hyp))
    return edit_distance(ref, hyp) / longest if longest else 0.0


DISTANCES = {"word": word_distance, "char": char_distance}


def f_measure(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall and F1 from (fractional) counts (0 where undefined).

    Example
    -------
    >>> f_measure(1.0, 1.0, 0.0)
    (0.5, 1.0, 0.6666666666666666)
    """
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def span_distance_counts(gold: Pairs, pred: Pairs, distance: str) -> tuple[float, float, float]:
    """SLURP's span-distance ``(tp, fp, fn)`` of one utterance.

    Each predicted span, in order, is matched to the closest unmatched gold
    span of its label (the first on ties).
    """
    measure = DISTANCES[distance]
    remaining = list(gold)
    tp = fp = fn = 0.0
    for label, value in pred:
        candidates = [(measure(g_value, value), i) for i, (g_label, g_value) in enumerate(remaining)
                      if g_label == label]  # fmt: skip
        if not candidates:
            fp += 1
            continue
        dist, index = min(candidates)
        tp += 1
        fp += dist
        fn += dist
        remaining.pop(index)
    fn += len(remaining)
    return tp, fp, fn


def slu_f1(golds: Sequence[Pairs], preds: Sequence[Pairs]) -> dict[str, float]:
    """Word-F1, Char-F1 and SLU-F1 (fractions) of a data set, micro-averaged.

    Parameters
    ----------
    golds, preds : sequence of list of (label, value)
        Reference and predicted spans of each utterance, in the same order.
        Values are compared as given (normalise case beforehand if wanted).

    Example
    -------
    >>> r = slu_f1([[("time", "seven am")]], [[("time", "seven")]])
    >>> round(r["word_f1"], 4), round(r["char_f1"], 4), round(r["slu_f1"], 4)
    (0.6667, 0.7273, 0.6957)
    """
    if len(golds) != len(preds):
        raise ValueError(f"got {len(golds)} references and {len(preds)} predictions")
    totals = {}
    for distance in DISTANCES:
        counts = [span_distance_counts(g, p, distance) for g, p in zip(golds, preds)]
        totals[distance] = [sum(c[k] for c in counts) for k in range(3)]
    summed = [totals["word"][k] + totals["char"][k] for k in range(3)]
    out = {}
    for name, (tp, fp, fn) in (
        ("word", totals["word"]),
        ("char", totals["char"]),
        ("slu", summed),
    ):
        p, r, f = f_measure(tp, fp, fn)
        out.update({f"{name}_precision": p, f"{name}_recall": r, f"{name}_f1": f})
    return out
