"""The LLM speech-text dual encoder: audio tokens, extended vocabulary, loss, training, loading."""

import numpy as np
import pytest
import torch

from sense.dual_encoder.model import LLMEncoder
from sense.dual_encoder.tokens import (
    AudioTokenizer,
    TokenCache,
    fit_kmeans,
    nearest_centroid,
    reduce_frames,
    tokenize_files,
)
from sense.losses import info_nce
from sense.testing import tiny

NUM_TOKENS = 6


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return tiny.build_tiny_llm(str(tmp_path_factory.mktemp("llm")))


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    import soundfile as sf

    folder = tmp_path_factory.mktemp("wavs")
    gen = torch.Generator().manual_seed(0)
    paths = []
    for i, seconds in enumerate((1.0, 1.5, 0.7)):
        path = str(folder / f"u{i}.wav")
        sf.write(path, (0.1 * torch.randn(int(16000 * seconds), generator=gen)).numpy(), 16000)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def tokenizer(tiny_w2v_bert, audio_files):
    tok = AudioTokenizer(tiny_w2v_bert, output_layer=1, num_tokens=NUM_TOKENS)
    tok.set_centroids(fit_kmeans(tok.sample_frames(audio_files, max_frames=1000), NUM_TOKENS))
    return tok


def test_kmeans_assignment_is_the_brute_force_nearest_centroid(tokenizer, audio_files):
    from sense.dataio import load_audio

    wav = load_audio(audio_files[1], 16000)[None]
    frames, _ = tokenizer.frames(wav, torch.ones(1))
    tokens, _ = tokenizer(wav, torch.ones(1))
    brute = torch.stack(
        [torch.stack([(f - c).norm() for c in tokenizer.centroids]).argmin() for f in frames[0]]
    )
    assert torch.equal(tokens[0], brute)
    assert len(set(tokens[0].tolist())) > 1  # the centroids split the frames


#: Five separated blobs (10 apart on the axes, spread 0.5), two of them small:
#: faiss's uniform random start seeds the small ones rarely and merges them.
BLOB_SIZES = (600, 600, 600, 40, 40)
BLOB_DIM = 8
BLOB_SEEDS = range(5)


def _blobs(seed):
    rng = np.random.default_rng(seed)
    centres = 10.0 * np.eye(len(BLOB_SIZES), BLOB_DIM)
    x = np.concatenate([rng.normal(c, 0.5, (n, BLOB_DIM)) for c, n in zip(centres, BLOB_SIZES)])
    return x.astype(np.float32), np.repeat(np.arange(len(BLOB_SIZES)), BLOB_SIZES)


@pytest.mark.parametrize("seed", BLOB_SEEDS)
def test_kmeans_recovers_separated_clusters_exactly(seed):
    x, blob = _blobs(seed)
    centroids = fit_kmeans(x, len(BLOB_SIZES), seed=seed)
    assigned = nearest_centroid(torch.from_numpy(x), centroids).numpy()
    per_blob = [set(assigned[blob == b].tolist()) for b in range(len(BLOB_SIZES))]
    assert all(len(ids) == 1 for ids in per_blob), per_blob  # no blob split
    assert len(set().union(*per_blob)) == len(BLOB_SIZES), per_blob  # no two merged


def test_tokens_are_at_25_hz_and_reduction_averages_real_frames_only(tokenizer):
    assert tokenizer.reduction == 2  # w2v-BERT frames are 50 Hz
    x = torch.randn(2, 7, 3)
    y, lens = reduce_frames(x, torch.tensor([1.0, 3 / 7]), 2)
    assert torch.allclose(y[0, 3], x[0, 6]) and torch.allclose(y[1, 1], x[1, 2])
    assert lens.tolist() == [1.0, 0.5]
    assert torch.equal(nearest_centroid(x, x[0, :3]), nearest_centroid(x, x[0, :3]))


def test_token_cache_tokenises_once(tokenizer, audio_files, tmp_path, monkeypatch):
    cache = TokenCache(str(tmp_path))
    first = tokenize_files(tokenizer, audio_files, cache, batch_size=2)
    reopened = TokenCache(str(tmp_path))
    monkeypatch.setattr(tokenizer, "tokenize_waveforms", lambda w: pytest.fail("re-tokenised"))
    again = tokenize_files(tokenizer, audio_files, reopened)
    assert all(torch.equal(first[p], again[p]) for p in audio_files)
    assert first[audio_files[0]].shape[0] == 25  # 1 s: 49 frames at 50 Hz -> 25 tokens


def test_extended_vocabulary_ids(tiny_llm):
    from transformers import AutoModel

    text_rows = AutoModel.from_pretrained(tiny_llm).get_input_embeddings().weight.detach()
    llm = LLMEncoder(tiny_llm, num_audio_tokens=NUM_TOKENS)
    t = llm.num_text_tokens
    assert t == text_rows.shape[0] == len(llm.tokenizer)
    table = llm.backbone.get_input_embeddings().weight
    assert table.shape[0] == t + NUM_TOKENS
    assert not torch.allclose(table[:t], text_rows)  # the paper: the whole table drawn anew
    ids = llm.audio_ids(torch.tensor([0, NUM_TOKENS - 1, 2]))
    assert ids.tolist() == [t, t + NUM_TOKENS - 1, t + 2]
    with pytest.raises(ValueError, match="audio tokens must lie"):
        llm.audio_ids(torch.tensor([NUM_TOKENS]))
    (speech,) = llm.audio_inputs([torch.tensor([1, 2])])
    assert speech[-2:] == [t + 1, t + 2] and all(i < t for i in speech[:-2])  # text prefix
    (text,) = llm.text_inputs(["le chat"])
    assert max(text) < t
    kept = LLMEncoder(tiny_llm, num_audio_tokens=NUM_TOKENS, keep_text_embeddings=True)
    assert torch.equal(kept.backbone.get_input_embeddings().weight[:t], text_rows)


def test_pooled_embedding_ignores_padding(tiny_llm):
    llm = LLMEncoder(tiny_llm, num_audio_tokens=NUM_TOKENS).eval()
    short, long = llm.text_inputs(["le chat"]) + llm.text_inputs(
        ["un jeune médecin lit une lettre"]
    )
    alone = llm(*llm.collate([short]))
    padded = llm(*llm.collate([short, long]))[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_contrastive_loss_is_symmetric():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    assert torch.allclose(info_nce(a, b), info_nce(b, a))
    assert info_nce(a, a) < info_nce(a, b)


def test_lora_trains_adapters_and_the_embeddings_only_and_merges_on_export(tiny_llm, tmp_path):
    torch.manual_seed(0)
    llm = LLMEncoder(tiny_llm, num_audio_tokens=NUM_TOKENS, lora_rank=2)
    trainable = [n for n, p in llm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "embed_tokens" in n for n in trainable)
    frozen = [n for n, p in llm.named_parameters() if not p.requires_grad]
    assert any("q_proj.base_layer" in n for n in frozen)  # the LLM's own weights stay
    # a step moves the adapters (B starts at zero) and so the output
    inputs = llm.collate(llm.text_inputs(["le chat dort", "il pleut"]))
    before = llm(*inputs).detach()
    loss = llm(*inputs).pow(2).mean()
    loss.backward()
    torch.optim.SGD([p for p in llm.parameters() if p.requires_grad], lr=1.0).step()
    llm.eval()
    with torch.no_grad():
        after = llm(*inputs)
    assert not torch.allclose(before, after)
    # the saved backbone has the adapters merged into plain weights: same outputs
    folder = str(tmp_path / "merged")
    llm.save_pretrained(folder)
    reloaded = LLMEncoder(
        folder, num_audio_tokens=NUM_TOKENS, num_text_tokens=llm.num_text_tokens
    ).eval()
    assert not reloaded.lora
    with torch.no_grad():
        assert torch.allclose(reloaded(*inputs), after, atol=1e-5)


# -- export, loading, the sense command, the FLEURS recipe ---------------------------


@pytest.fixture(scope="module")
def exported(tokenizer, tiny_llm, tmp_path_factory):
    from sense.dual_encoder.export import export_dual_encoder

    torch.manual_seed(0)
    llm = LLMEncoder(tiny_llm, num_audio_tokens=NUM_TOKENS)
    projection = torch.nn.Linear(llm.output_dim, 16)
    folder = str(tmp_path_factory.mktemp("dual") / "model")
    export_dual_encoder(folder, tokenizer, llm, projection, extra={"note": "untrained"})
    return folder, llm.eval(), projection


def test_exported_model_loads_with_from_hparams_and_matches(exported, tokenizer, audio_files):
    from sense.dual_encoder.inference import DualEncoder, load_model

    folder, llm, projection = exported
    model = load_model(folder, device="cpu")  # trusted constructors only (sense.trust)
    assert isinstance(model, DualEncoder)
    (tokens,) = tokenizer.tokenize_waveforms([model.load_audio(audio_files[0])])
    with torch.no_grad():
        expected = projection(llm(*llm.collate(llm.audio_inputs([tokens]))))[0]
        text = projection(llm(*llm.collate(llm.text_inputs(["le chat dort"]))))
    emb = model.encode_file(audio_files[0])
    assert emb.shape == (16,)
    assert torch.allclose(emb, torch.nn.functional.normalize(expected, dim=-1), atol=1e-5)
    assert torch.allclose(
        model.encode_text(["le chat dort"]), torch.nn.functional.normalize(text, dim=-1), atol=1e-5
    )
    results, failures = model.encode_files([audio_files[1], "/no/such.wav"])
    assert list(results) == [audio_files[1]] and failures[0][0] == "/no/such.wav"


def test_sense_index_and_search_use_a_dual_encoder(exported, audio_files, tmp_path, capsys):
    import json

    from sense.cli import main

    folder, _, _ = exported
    sentences = tmp_path / "s.txt"
    sentences.write_text("le chat dort\nil pleut\n", encoding="utf-8")
    index = tmp_path / "idx"
    argv = ["index", "-m", folder, *audio_files, str(sentences), "-o", str(index), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["search", str(index), "il pleut", "--json", "--quiet", "-k", "1"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["hits"][0]["text"] == "il pleut"


def test_fleurs_recipe_r1_matches_our_retrieval_code(exported, tmp_path):
    import importlib.util
    import os

    from test_retrieval_recipes import build_fleurs

    from sense.dual_encoder.evaluation import DualEncoderBenchmark
    from sense.evaluation import embed_manifest, load_pair
    from sense.retrieval import recall_at_k

    folder, _, _ = exported
    recipe = os.path.join(os.path.dirname(__file__), "..", "recipes", "FLEURS", "dual_encoder")
    spec = importlib.util.spec_from_file_location("_dual_fleurs", f"{recipe}/evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data, out = str(tmp_path / "fleurs"), str(tmp_path / "out")
    build_fleurs(data)
    model = f"{{type: 'sense.dual_encoder.evaluation:DualEncoderBenchmark', source: {folder}, name: DE}}"
    tables = "{transcripts: {pairs: [fr-fr, en-en]}, x_en: {pairs: [fr-en]}}"
    results = module.main(
        [f"{recipe}/hparams/evaluate.yaml", f"--data_folder={data}", f"--output_folder={out}",
         f"--models=[{model}]", f"--tables={tables}", "--language_groups={fr: WE, en: WE}"]
    )  # fmt: skip
    import jiwer
    import sacrebleu

    encoder = DualEncoderBenchmark(folder)
    for pair in ("fr-fr", "en-en", "fr-en"):
        query, search, targets = load_pair(os.path.join(out, "manifests", pair))
        q, s = embed_manifest(encoder, query), embed_manifest(encoder, search)
        direct = recall_at_k(q, s, targets)
        assert results["retrieval"]["DE"][pair]["R@1"] == pytest.approx(direct)
        # the retrieved text: the search entry of highest cosine after each side's mean is
        # taken away (first on ties), scored by jiwer and sacrebleu against the target's
        texts = [entry["text"] for entry in search.values()]
        centred = [
            torch.nn.functional.normalize(x.double() - x.double().mean(0), dim=-1) for x in (q, s)
        ]
        hyps = [texts[i] for i in (centred[0] @ centred[1].T).argmax(dim=1).tolist()]
        refs = [texts[t] for t in targets.tolist()]
        text = results["text"]["DE"][pair]
        assert text["WER"] == pytest.approx(jiwer.wer(refs, hyps))
        assert text["BLEU"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    for name in ("transcripts", "x_en", "groups"):
        assert os.path.isfile(os.path.join(out, f"{name}.md"))


# -- the CoVoST 2 training recipe ------------------------------------------------------


@pytest.mark.slow
def test_covost_recipe_trains_on_the_release_and_exports(tiny_w2v_bert, tiny_llm, tmp_path):
    import os

    from covost_fixture import build_covost
    from cv_fixture import REPO, run_recipe

    from sense.dual_encoder.inference import load_model
    from sense.prepare import PreparationReport, read_manifest

    release = str(tmp_path / "covost")
    expected = build_covost(release)
    out = tmp_path / "run"
    args = [
        "hparams/train.yaml",
        f"--data_folder={release}",
        f"--output_folder={out}",
        "--languages=[fr, de, ru]",
        f"--speech_source={tiny_w2v_bert}",
        "--speech_layer=1",
        f"--num_audio_tokens={NUM_TOKENS}",
        "--kmeans_frames=500",
        f"--llm_source={tiny_llm}",
        "--max_tokens=128",
        "--embedding_dim=16",
        "--number_of_epochs=2",
        "--batch_seconds=20",
        "--bitext_ratio=0.25",
        "--prepare_workers=1",
        "--num_workers=0",
        "--device=cpu",
    ]
    recipe = os.path.join(REPO, "recipes", "CoVoST2", "dual_encoder")
    proc = run_recipe(args, recipe=recipe)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for split in ("train", "dev"):  # every kept row, hostile text included, as released
        rows = read_manifest(str(out / "data" / f"{split}.csv"))
        assert len(rows) == expected["kept"][split]
        for row in rows:
            assert (row["transcript"], row["translation"]) == expected["texts"][row["ID"]]
    # CoVoST 2's own splits, every bad row reported with its reason
    report = PreparationReport.read(str(out / "data" / "preparation_report.tsv"))
    assert set(expected["bad"].items()) <= {(r["item"], r["reason"]) for r in report}
    with open(out / "train_log.txt", encoding="utf-8") as f:
        assert f.read().count("valid R@1:") == 2  # two epochs, validated
    model = load_model(str(out / "model"), device="cpu")
    wav = out / "data" / "wavs" / "fr" / "common_voice_fr_1000.flac"
    speech, text = model.encode_file(str(wav)), model.encode_text(["the cat sleeps"])
    assert speech.shape == (16,) and text.shape == (1, 16)
