"""Summarization from sentence embeddings: metrics, model, stage-1 recipe, export, CLI."""

import json
import os

import pytest
import torch
from summarization_fixture import SUMMARY_WORDS, build_mlsum, load_recipe

from sense.summarization.metrics import FrenchTokenizer, bertscore_f1, rouge_l, rouge_l_scores
from sense.testing.tiny import DEFAULT_TEXTS, build_tiny_bart


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory):
    texts = list(DEFAULT_TEXTS) + [SUMMARY_WORDS]
    return build_tiny_bart(str(tmp_path_factory.mktemp("bart")), texts=texts)


# -- metrics -------------------------------------------------------------------------


def test_rouge_l_hand_computed_on_accented_french():
    # prediction: le médecin lit une lettre à l hôpital           (8 words)
    # reference:  un jeune médecin lit la lettre à l hôpital      (9 words)
    # LCS: médecin lit lettre à l hôpital = 6 -> F = 2*6 / (8 + 9) = 12/17
    pred = "Le médecin lit une lettre à l'hôpital."
    ref = "Un jeune médecin lit la lettre à l'hôpital."
    assert rouge_l([pred], [ref]) == pytest.approx(12 / 17)


def test_rouge_l_keeps_accented_words_the_default_tokenizer_breaks():
    from rouge_score import rouge_scorer

    pred, ref = "lève médecin", "élève médecin"
    # the package's default deletes "é" and "è": both become "l ve m decin"
    default = rouge_scorer.RougeScorer(["rougeL"]).score(ref, pred)["rougeL"].fmeasure
    assert default == 1.0
    assert rouge_l_scores([pred], [ref]) == [pytest.approx(0.5)]
    assert FrenchTokenizer().tokenize("E\u0301te\u0301 À NOËL") == ["été", "à", "noël"]


def test_rouge_l_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge_l(["a", "b"], ["a"])


def test_bertscore_is_the_packages_own(tiny_bert):
    from bert_score import score

    preds = ["le chat dort", "un jeune médecin lit"]
    refs = ["le chat dort sur le canapé", "une lettre dans le jardin"]
    ours = bertscore_f1(preds, refs, model=tiny_bert, num_layers=1, rescale_with_baseline=False)
    _, _, f1 = score(preds, refs, model_type=tiny_bert, num_layers=1, lang="fr")
    assert ours == pytest.approx(float(f1.mean()))
    same = bertscore_f1(preds, preds, model=tiny_bert, num_layers=1, rescale_with_baseline=False)
    assert same == pytest.approx(1.0, abs=1e-5) and ours < same


# -- model ---------------------------------------------------------------------------


def test_projection_and_seq2seq_shapes(tiny_bart):
    from sense.summarization.model import EmbeddingProjection, Seq2SeqSummarizer

    seq2seq = Seq2SeqSummarizer(tiny_bart)
    proj = EmbeddingProjection(48, seq2seq.width)
    x = proj(torch.randn(2, 4, 48))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    labels = seq2seq.labels(["le chat dort", "un jeune médecin lit une longue lettre"])
    assert (labels[0] == -100).any() and not (labels[1] == -100).any()
    logits = seq2seq(x, mask, labels)
    assert logits.shape == (*labels.shape, seq2seq.model.config.vocab_size)
    # a padded sentence changes nothing: the mask hides it
    x2 = x.clone()
    x2[1, 2:] = 100.0
    seq2seq.eval()
    assert torch.allclose(seq2seq(x, mask, labels)[1], seq2seq(x2, mask, labels)[1], atol=1e-5)
    assert EmbeddingProjection(seq2seq.width, seq2seq.width).linear is None


# -- stage 1 recipe (MLSUM) ----------------------------------------------------------


@pytest.fixture(scope="module")
def mlsum_run(tmp_path_factory, tiny_bart, tiny_xlmr):
    root = tmp_path_factory.mktemp("mlsum")
    counts = build_mlsum(str(root / "release"))
    main, folder = load_recipe("MLSUM/summarization")
    out = root / "out"
    args = [
        os.path.join(folder, "hparams/train_bge_m3.yaml"),
        f"--data_folder={root / 'release'}",
        f"--output_folder={out}",
        f"--teacher_source={tiny_xlmr}",
        f"--seq2seq_source={tiny_bart}",
        "--seq2seq_width=32",
        "--embedding_dim=32",
        "--number_of_epochs=1",
        "--batch_size=2",
        "--num_beams=2",
        "--max_new_tokens=6",
        "--bertscore=null",
        "--valid_generate=True",
        "--device=cpu",
    ]
    main(args)
    return {"out": out, "args": args, "main": main, "counts": counts}


def test_mlsum_prepare_reads_the_release_and_reports_bad_rows(mlsum_run):
    data = mlsum_run["out"] / "data"
    train = json.loads((data / "train.json").read_text(encoding="utf-8"))
    assert len(train) == mlsum_run["counts"]["train"]
    first = next(iter(train.values()))
    assert first["units"][0] == "M. Dupont est arrivé à Paris."  # "M." kept in its sentence
    assert first["topic"] == "societe" and first["summary"] == "M. Dupont visite Paris."
    report = json.loads((data / "report.json").read_text(encoding="utf-8"))
    assert [s["reason"] for s in report["skipped"]] == ["empty summary"]


def test_mlsum_embeddings_cached_once(mlsum_run):
    from sense.teacher_cache import TeacherCache

    (folder,) = (mlsum_run["out"] / "data" / "embeddings").iterdir()
    cache = TeacherCache.open(str(folder))
    assert cache.dim == 32 and "fr-train-000000/0002" in cache
    assert len(cache) == 3 * 4 * 3  # 3 splits x 4 articles x 3 sentences


def test_mlsum_writes_table_predictions_and_export(mlsum_run):
    out = mlsum_run["out"]
    table = json.loads((out / "table_viii.json").read_text(encoding="utf-8"))
    row = table["rows"]["SENSE text (MLSUM test)"]
    assert 0.0 <= row["ROUGE-L"] <= 100.0
    assert "SENSE (paper)" in (out / "table_viii.md").read_text(encoding="utf-8")
    assert (out / "table_viii.csv").is_file()
    lines = (out / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and {"prediction", "reference"} <= set(json.loads(lines[0]))
    assert "ROUGE-L" in (out / "train_log.txt").read_text(encoding="utf-8")


def test_mlsum_export_loads_and_summarizes_texts(mlsum_run):
    from sense.summarization.inference import Summarizer

    model = Summarizer.from_hparams(source=str(mlsum_run["out"] / "model"), device="cpu")
    summary = model.summarize_texts("Le chat dort. Il pleut sur le jardin.")
    assert isinstance(summary, str)
    with pytest.raises(ValueError, match="speech side"):
        model.summarize_file("x.wav")


def test_mlsum_resume_continues_without_reencoding(mlsum_run, caplog):
    out = mlsum_run["out"]
    args = [a for a in mlsum_run["args"] if not a.startswith("--number_of_epochs")]
    cache_dir = next((out / "data" / "embeddings").iterdir())
    matrix = next(cache_dir.glob("embeddings-*.npy"))
    before = matrix.stat().st_mtime_ns
    mlsum_run["main"]([*args, "--number_of_epochs=2"])
    log = (out / "train_log.txt").read_text(encoding="utf-8")
    assert "epoch: 1" in log and "epoch: 2" in log
    assert log.count("epoch: 1,") == 1  # epoch 1 was not trained again
    assert "start_optimizer_step: 2" in log  # both optimizers resumed after epoch 1's 2 steps
    assert matrix.stat().st_mtime_ns == before
