"""A run fails in its first seconds, before any model is loaded, or prepares without one.

``--prepare_only`` of every kind of recipe (distillation, SLU, speech
translation, summarization) succeeds offline with an encoder source that does
not exist: the data is prepared from the hparams before the YAML's models are
built. A summarization run whose BERTScore model cannot be loaded, an output
folder that cannot be written and missing manifests stop the run before its
data preparation or its first training step, with one line naming the key.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import slu_fixtures
from covost_fixture import build_covost
from cv_fixture import recipe_args
from summarization_fixture import SUMMARY_WORDS, build_mlsum

from sense.preflight import PreflightError, peek_yaml, run_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(REPO, "recipes")
#: An encoder source that loads nowhere: building it would raise.
NO_MODEL = "/nonexistent/sense-preflight/encoder"


def _recipe(folder: str):
    """A recipe's ``train.py`` as a module, its folder importable (its prepare script)."""
    path = os.path.join(RECIPES, folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    name = "preflight_" + folder.replace(os.sep, "_")
    spec = importlib.util.spec_from_file_location(name, os.path.join(path, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _yaml(folder: str, name: str) -> str:
    return os.path.join(RECIPES, folder, "hparams", name)


def _commonvoice(monkeypatch, cv: str, out: str, teacher: str, *extra: str):
    """The Common Voice recipe's ``main`` and arguments, run from its folder (languages.txt)."""
    monkeypatch.chdir(os.path.join(RECIPES, "CommonVoice", "SENSE"))
    return _recipe("CommonVoice/SENSE").main, recipe_args(cv, out, NO_MODEL, teacher, *extra)


def test_the_plan_builds_no_object():
    plan = peek_yaml(
        "out: results\n"
        "encoder: !new:sense.lobes.speech.HFSpeechEncoder\n"
        f"    source: {NO_MODEL}\n"
        "modules: {encoder: !ref <encoder>}\n"
    )
    assert plan["out"] == "results"
    assert plan["modules"]["encoder"] is plan["encoder"]  # a reference stays one object
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plan["encoder"].build()  # what the full load would have done at once


def test_commonvoice_prepare_only(cv_release, tiny_xlmr, tmp_path, monkeypatch):
    out = tmp_path / "out"
    main, args = _commonvoice(monkeypatch, cv_release[0], str(out), tiny_xlmr, "--prepare_only")
    main(args)
    assert (out / "data" / "train.csv").is_file() and (out / "data" / "teacher_cache").is_dir()


def test_slurp_prepare_only(tmp_path):
    slu_fixtures.build_slurp(str(tmp_path / "slurp"))
    out = tmp_path / "out"
    train = _recipe("SLURP/SLU")
    argv = [
        _yaml("SLURP/SLU", "train.yaml"),
        f"--data_folder={tmp_path / 'slurp'}",
        f"--output_folder={out}",
        f"--prepared_folder={out / 'data'}",
        f"--encoder_source={NO_MODEL}",
        "--device=cpu",
        "--prepare_only",
    ]
    assert train.run(argv, prepare=train.prepare) is None
    assert (out / "data" / "train.csv").is_file() and (out / "save" / "markup.json").is_file()


def test_covost_st_prepare_only(tmp_path):
    root = str(tmp_path / "covost")
    build_covost(root)
    out = tmp_path / "out"
    _recipe("CoVoST2/ST").main(
        [
            _yaml("CoVoST2/ST", "train.yaml"),
            f"--data_folder={root}",
            f"--prepared_folder={out / 'data'}",
            f"--output_folder={out}",
            "--languages=[fr, de, ru]",
            f"--encoder_source={NO_MODEL}",
            f"--decoder_source={NO_MODEL}",
            "--prepare_workers=1",
            "--device=cpu",
            "--prepare_only",
        ]
    )
    assert (out / "data" / "test.csv").is_file() and (out / "data" / "hours.json").is_file()


def test_dual_encoder_prepare_only_tokenises_without_the_llm(tmp_path, tiny_w2v_bert):
    root = str(tmp_path / "covost")
    build_covost(root)
    out = tmp_path / "out"
    _recipe("CoVoST2/dual_encoder").main(
        [
            _yaml("CoVoST2/dual_encoder", "train.yaml"),
            f"--data_folder={root}",
            f"--output_folder={out}",
            "--languages=[fr, de, ru]",
            f"--speech_source={tiny_w2v_bert}",
            "--speech_layer=1",
            "--num_audio_tokens=6",
            "--kmeans_frames=500",
            f"--llm_source={NO_MODEL}",
            "--prepare_workers=1",
            "--device=cpu",
            "--prepare_only",
        ]
    )
    assert (out / "data" / "centroids.pt").is_file() and (out / "data" / "token_cache").is_dir()


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory):
    from sense.testing.tiny import DEFAULT_TEXTS, build_tiny_bart

    texts = [*DEFAULT_TEXTS, SUMMARY_WORDS]
    return build_tiny_bart(str(tmp_path_factory.mktemp("bart")), texts=texts)


def _mlsum_args(tmp_path, teacher: str, seq2seq: str, *extra: str) -> list[str]:
    build_mlsum(str(tmp_path / "release"))
    return [
        _yaml("MLSUM/summarization", "train_bge_m3.yaml"),
        f"--data_folder={tmp_path / 'release'}",
        f"--output_folder={tmp_path / 'out'}",
        f"--teacher_source={teacher}",
        f"--seq2seq_source={seq2seq}",
        "--seq2seq_width=32",
        "--embedding_dim=32",
        "--number_of_epochs=1",
        "--batch_size=2",
        "--num_beams=2",
        "--max_new_tokens=6",
        "--device=cpu",
        *extra,
    ]


def test_mlsum_prepare_only_embeds_without_the_seq2seq(tmp_path, tiny_xlmr):
    # BERTScore (on, its model not cached offline) is not needed to prepare
    args = _mlsum_args(tmp_path, tiny_xlmr, NO_MODEL, "--prepare_only")
    _recipe("MLSUM/summarization").main(args)
    data = tmp_path / "out" / "data"
    assert (data / "train.json").is_file() and any((data / "embeddings").iterdir())


def test_summarization_without_its_bertscore_model_fails_before_anything(
    tmp_path, tiny_xlmr, tiny_bart
):
    from huggingface_hub import try_to_load_from_cache

    from sense.summarization.metrics import BERTSCORE_MODEL

    if isinstance(try_to_load_from_cache(BERTSCORE_MODEL, "config.json"), str):
        pytest.skip(f"{BERTSCORE_MODEL} is in this machine's hub cache")
    main = _recipe("MLSUM/summarization").main
    with pytest.raises(PreflightError) as err:
        main(_mlsum_args(tmp_path, tiny_xlmr, tiny_bart))  # the YAML's BERTScore: on
    message = str(err.value)
    assert "\n" not in message
    assert f"bertscore.model: the model '{BERTSCORE_MODEL}' cannot be loaded" in message
    assert "bertscore: null" in message
    out = tmp_path / "out"
    assert not (out / "data").exists()  # nothing prepared, embedded or trained
    assert not (out / "save").exists() and not (out / "train_log.txt").exists()


def test_unwritable_output_folder_fails_before_preparation(
    cv_release, tiny_xlmr, tmp_path, monkeypatch
):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    main, args = _commonvoice(monkeypatch, cv_release[0], str(blocker / "out"), tiny_xlmr)
    with pytest.raises(PreflightError, match=f"output_folder {blocker}/out: cannot be written"):
        main(args)


def test_skip_prep_without_manifests_names_them(cv_release, tiny_xlmr, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    main, args = _commonvoice(monkeypatch, cv_release[0], out, tiny_xlmr, "--skip_prep=True")
    with pytest.raises(PreflightError, match="missing: train_csv .*train.csv, valid_csv"):
        main(args)


def test_a_preflight_error_is_one_line_on_exit(monkeypatch):
    def main(argv):
        raise PreflightError("bertscore.model: cannot be loaded; set bertscore: null")

    monkeypatch.setattr(sys, "argv", ["train.py"])
    with pytest.raises(SystemExit) as exit_:
        run_main(main)
    assert exit_.value.code == "train.py: error: bertscore.model: cannot be loaded; " + (
        "set bertscore: null"
    )


def test_an_slu_yaml_without_a_required_key_is_named_before_anything(tmp_path):
    """The SLU entry point's contract is code (REQUIRED_KEYS), checked on the plan."""
    from sense.preflight import PreflightError
    from sense.slu import recipe

    keep = [k for k in recipe.REQUIRED_KEYS if k not in ("probe", "test_csvs")]
    yaml = tmp_path / "train.yaml"
    yaml.write_text(
        f"output_folder: {tmp_path / 'out'}\n"
        + "".join(f"{k}: 1\n" for k in keep if k != "output_folder"),
        encoding="utf-8",
    )
    with pytest.raises(PreflightError) as err:
        recipe.run([str(yaml), "--skip_prep=True"])
    assert str(err.value) == (
        f"{yaml}: the SLU recipe (sense.slu.recipe) needs test_csvs, probe, which the hparams "
        "do not set"
    )
