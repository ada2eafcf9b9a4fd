"""sense.summarization.metrics: values that mutation testing (make mutation) found unpinned."""

import pytest

from sense.summarization.metrics import bertscore_f1, rouge_l


def test_rouge_l_is_the_mean_over_the_summaries():
    """An exact summary (F = 1), a disjoint one (0) and "le chat dort" against
    "le chat dort bien" (LCS 3: P = 1, R = 3/4, F = 6/7): the mean is (1 + 0 + 6/7) / 3."""
    got = rouge_l(
        ["le chat dort", "un chien", "le chat dort"],
        ["le chat dort", "trois oiseaux", "le chat dort bien"],
    )
    assert got == pytest.approx((1 + 0 + 6 / 7) / 3)


def test_rouge_l_refuses_an_empty_list():
    with pytest.raises(ValueError, match="no summaries to score"):
        rouge_l([], [])


def test_bertscore_rescales_with_the_given_baseline(tiny_bert, tmp_path):
    """Rescaling is ``(F - b) / (1 - b)`` with ``b`` the F baseline of the layer used
    (here 0.6 at layer 1): the mean of the rescaled F1 is the rescaled mean of the raw
    F1 that bert-score gives without a baseline."""
    from bert_score import score

    baseline = tmp_path / "baseline.tsv"
    baseline.write_text("LAYER,P,R,F\n0,0.1,0.1,0.1\n1,0.5,0.55,0.6\n")
    preds = ["le chat dort", "un jeune médecin lit"]
    refs = ["le chat dort sur le canapé", "une lettre dans le jardin"]
    _, _, raw = score(preds, refs, model_type=tiny_bert, num_layers=1)
    ours = bertscore_f1(preds, refs, model=tiny_bert, num_layers=1, baseline_path=str(baseline))
    assert ours == pytest.approx((float(raw.double().mean()) - 0.6) / (1 - 0.6), abs=1e-6)
    assert ours != pytest.approx(float(raw.mean()), abs=1e-3)


def test_bertscore_defaults_are_the_papers_settings(monkeypatch):
    """What bert-score is asked for: the multilingual BERT at layer 9, French, rescaled
    with the package's baseline (no file of ours), 32 summaries a batch; the device as
    given. The value returned is the mean F1 of what it gives back."""
    import bert_score
    import torch

    calls = []

    def spy(cands, refs, **kwargs):
        calls.append((cands, refs, kwargs))
        f1 = torch.tensor([0.25, 0.75, 0.2])
        return f1, f1, f1

    monkeypatch.setattr(bert_score, "score", spy)
    assert bertscore_f1(("a", "b", "c"), ("d", "e", "f")) == pytest.approx(0.4)
    bertscore_f1(["a"], ["d"], baseline_path="/b.tsv", device="cuda:3", batch_size=4)
    (cands, refs, defaults), (_, _, given) = calls
    assert (cands, refs) == (["a", "b", "c"], ["d", "e", "f"])
    assert defaults == {
        "model_type": "bert-base-multilingual-cased",
        "num_layers": 9,
        "lang": "fr",
        "rescale_with_baseline": True,
        "baseline_path": None,
        "batch_size": 32,
        "device": None,
    }
    assert (given["baseline_path"], given["device"], given["batch_size"]) == ("/b.tsv", "cuda:3", 4)


def test_check_bertscore_checks_the_model_it_will_load(monkeypatch, tmp_path):
    """The model checked is the one given, else bert-score's French default; a model
    bert-score has no layer for needs ``num_layers`` (the default model does not)."""
    import sense.preflight
    from sense.preflight import PreflightError
    from sense.summarization.metrics import check_bertscore

    checked = []
    monkeypatch.setattr(sense.preflight, "check_model_loadable", lambda *args: checked.append(args))
    hint = "set bertscore: null (--bertscore=null) to leave BERTScore out, "
    hint += "or bertscore.model to a local copy of the model"
    check_bertscore({"num_layers": None})  # the default model: bert-score knows its layer
    check_bertscore({"model": str(tmp_path)}, key="metric")
    assert checked == [
        ("bert-base-multilingual-cased", "bertscore.model", hint),
        (str(tmp_path), "metric.model", hint.replace("bertscore", "metric")),
    ]
    with pytest.raises(PreflightError, match="^bertscore.num_layers: bert-score has no default"):
        check_bertscore({"model": str(tmp_path), "num_layers": None})
    assert len(checked) == 2
