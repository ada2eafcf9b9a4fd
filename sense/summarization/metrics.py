"""Summary metrics of Table VIII: ROUGE-L and BERTScore F1.

ROUGE-L is the ``rouge-score`` package's longest-common-subsequence F-measure,
averaged over the summaries, with :class:`FrenchTokenizer`: the package's
default tokenizer replaces every character outside ``[a-z0-9]`` by a space,
so "été" becomes "t" and accented French words are cut apart.

BERTScore is the ``bert-score`` package's F1, averaged over the summaries.
Its defaults for French here are the package's own: the model
``bert-base-multilingual-cased`` (layer 9) with baseline rescaling (the
package ships the French baseline of that model), so scores are spread over a
readable range rather than packed near 0.85.

Example
-------
>>> FrenchTokenizer().tokenize("L'été, à Noël !")
['l', 'été', 'à', 'noël']
>>> round(rouge_l(["le chat dort"], ["le chat dort bien"]), 4)
0.8571
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

#: BERTScore model for French (the package's default for ``lang="fr"``) and its layer.
BERTSCORE_MODEL = "bert-base-multilingual-cased"
BERTSCORE_LAYER = 9
BERTSCORE_LANG = "fr"
# A word: letters (any script, accents included) and digits.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class FrenchTokenizer:
    """Lower-cased words, accents kept, for ``rouge_score.RougeScorer``.

    Text is NFC-normalised (a decomposed "é" and a composed one are the same
    word), lower-cased, and cut into runs of letters and digits: punctuation
    and apostrophes separate words ("l'été" -> "l", "été"). No stemming.

    Example
    -------
    >>> FrenchTokenizer().tokenize("Le cafe\\u0301 du CHÂTEAU")
    ['le', 'café', 'du', 'château']
    """

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(unicodedata.normalize("NFC", text).lower())


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no summaries to score")


def rouge_l_scores(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure of each prediction against its reference, in [0, 1].

    Example
    -------
    >>> rouge_l_scores(["a b"], ["a b"])
    [1.0]
    """
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=FrenchTokenizer())
    return [
        scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)
    ]


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure in [0, 1] (Table VIII shows it times 100)."""
    scores = rouge_l_scores(predictions, references)
    return sum(scores) / len(scores)


def check_bertscore(options: dict | None, key: str = "bertscore") -> None:
    """Raise unless BERTScore, as ``options`` configure it, can run: in seconds, before training.

    ``options`` are the keyword arguments of :func:`bertscore_f1` (a recipe's
    ``bertscore`` block; ``None`` turns BERTScore off). Its model must load
    (a local folder with ``config.json``, or a hub id reachable or cached, see
    :func:`sense.preflight.check_model_loadable`), and a model bert-score does
    not know needs ``num_layers``.

    Raises
    ------
    sense.preflight.PreflightError
        One line naming the model and the YAML key to change.

    Example
    -------
    >>> check_bertscore(None)  # off: nothing to check
    >>> check_bertscore({"model": "/no/such/folder"})
    Traceback (most recent call last):
    ...
    sense.preflight.PreflightError: bertscore.model: '/no/such/folder' is neither a folder nor a hub id; ...
    """
    from sense.preflight import PreflightError, check_model_loadable

    if not options:
        return
    model = options.get("model", BERTSCORE_MODEL)
    hint = (
        f"set {key}: null (--{key}=null) to leave BERTScore out, "
        f"or {key}.model to a local copy of the model"
    )
    if options.get("num_layers", BERTSCORE_LAYER) is None:
        from bert_score.utils import model2layers

        if model not in model2layers:
            raise PreflightError(
                f"{key}.num_layers: bert-score has no default layer for {model!r}; set it"
            )
    check_model_loadable(model, f"{key}.model", hint)


def bertscore_f1(
    predictions: Sequence[str],
    references: Sequence[str],
    model: str = BERTSCORE_MODEL,
    num_layers: int | None = BERTSCORE_LAYER,
    lang: str = BERTSCORE_LANG,
    rescale_with_baseline: bool = True,
    baseline_path: str | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> float:
    """Mean BERTScore F1 (the ``bert-score`` package's own computation).

    Parameters
    ----------
    predictions, references : sequence of str
    model : str
        Hub id or local folder of the model (``model_type`` of bert-score).
    num_layers : int, optional
        Layer whose token vectors are compared (bert-score's table gives it
        for known models; a local folder needs it).
    lang : str
        Language, which picks the shipped rescaling baseline.
    rescale_with_baseline : bool
        Rescale with the baseline (``baseline_path`` or the package's file for
        ``lang`` and ``model``).
    baseline_path : str, optional
        A baseline ``.tsv`` (needed to rescale with a model the package has
        no baseline for).
    batch_size : int
    device : str, optional

    Returns
    -------
    float
        Mean F1 (rescaled scores can fall below 0).
    """
    from bert_score import score

    _check_pairs(predictions, references)
    _, _, f1 = score(
        list(predictions),
        list(references),
        model_type=model,
        num_layers=num_layers,
        lang=lang,
        rescale_with_baseline=rescale_with_baseline,
        baseline_path=baseline_path,
        batch_size=batch_size,
        device=device,
    )
    return float(f1.mean())
