"""Speech translation: BLEU, CoVoST 2 preparation, the recipe (mBART and NLLB), export, CLI."""

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys

import pytest
import soundfile as sf
import torch
from covost_fixture import ENGLISH, build_covost
from cv_fixture import REPO, SENTENCES, run_recipe

from sense.prepare import PreparationReport, read_manifest
from sense.testing.tiny import DEFAULT_TEXTS, build_tiny_mbart, build_tiny_nllb
from sense.translation.brain import label_smoothed_nll
from sense.translation.metrics import BleuTable, bleu_by_language, corpus_bleu

RECIPE = os.path.join(REPO, "recipes", "CoVoST2", "ST")
sys.path.insert(0, RECIPE)
from covost_prepare import prepare_covost  # noqa: E402

TEXTS = DEFAULT_TEXTS + tuple(ENGLISH)


def test_bleu_equals_sacrebleu_command_line(tmp_path):
    hyps = ["the cat sleeps on the sofa", "a doctor reads letters", "it is raining, isn't it?"]
    refs = ["the cat sleeps on the red sofa", "a young doctor reads a letter", "it rains, no?"]
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    cli = os.path.join(os.path.dirname(sys.executable), "sacrebleu")
    out = subprocess.run(
        [cli, str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"), "-b", "-w", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert round(corpus_bleu(hyps, refs), 4) == float(out.stdout.strip())
    per_lang = bleu_by_language(hyps, refs, ["fr", "de", "fr"])
    assert per_lang["fr"] == pytest.approx(corpus_bleu([hyps[0], hyps[2]], [refs[0], refs[2]]))
    with pytest.raises(ValueError, match="one each"):
        corpus_bleu(hyps, refs[:2])


def test_label_smoothed_nll_ignores_padding():
    logits = torch.randn(2, 3, 11)
    labels = torch.tensor([[1, 2, -100], [3, 4, 5]])
    plain = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 11)[[0, 1, 3, 4, 5]], labels.flatten()[[0, 1, 3, 4, 5]]
    )
    assert label_smoothed_nll(logits, labels, 0.0) == pytest.approx(plain.item())
    assert label_smoothed_nll(logits, labels, 0.1) != pytest.approx(plain.item())


@pytest.fixture(scope="module")
def tiny_mbart(tmp_path_factory):
    return build_tiny_mbart(str(tmp_path_factory.mktemp("mbart")), texts=TEXTS)


@pytest.fixture(scope="module")
def tiny_nllb(tmp_path_factory):
    return build_tiny_nllb(str(tmp_path_factory.mktemp("nllb")), texts=TEXTS)


@pytest.mark.parametrize("which, lang", [("tiny_mbart", "en_XX"), ("tiny_nllb", "eng_Latn")])
def test_decoder_targets_generation_and_padding(which, lang, request):
    from sense.translation.model import IGNORE_INDEX, Seq2SeqDecoder

    decoder = Seq2SeqDecoder(request.getfixturevalue(which), target_lang=lang).eval()
    assert len(decoder.model.get_encoder().layers) == 0  # the text encoder is dropped
    ids = decoder.target_ids("the cat sleeps")
    assert ids[0] == decoder.lang_id and ids[-1] == decoder.eos_id
    assert decoder.decode([ids.tolist()]) == ["the cat sleeps"]
    tokens = torch.stack([ids, torch.cat([ids[:4], torch.zeros(len(ids) - 4, dtype=torch.long)])])
    inputs, labels = decoder.teacher_forcing(tokens, torch.tensor([1.0, 4 / len(ids)]))
    assert inputs[0, 0] == decoder.start_id and inputs[0, 1:].tolist() == ids[:-1].tolist()
    assert labels[1, 4:].eq(IGNORE_INDEX).all() and labels[0].tolist() == ids.tolist()
    torch.manual_seed(0)
    memory = torch.randn(2, 12, decoder.d_model)
    lens = torch.tensor([1.0, 0.5])
    out = decoder.generate_ids(memory, lens, beam_size=1, length_penalty=1.0, max_new_tokens=6)
    assert out[:, 0].eq(decoder.start_id).all() and out[:, 1].eq(decoder.lang_id).all()
    # greedy output = argmax of the teacher-forced logits on its own prefix
    logits = decoder(memory, lens, out[:, :-1])
    alive = out[:, 2:].ne(decoder.pad_id)
    alive[:, -1] = False  # at the length limit, mBART's config forces </s>
    assert logits.argmax(-1)[:, 1:][alive].tolist() == out[:, 2:][alive].tolist()
    # the padded frames of the second utterance are never attended to
    alone = decoder.generate(memory[1:, :6], torch.ones(1), beam_size=3, max_new_tokens=6)
    padded = decoder.generate(memory, lens, beam_size=3, max_new_tokens=6)
    assert padded[1] == alone[0]
    with pytest.raises(ValueError, match="not a language token"):
        decoder.set_target_lang("xx_YY")


def test_bleu_table_round_trip(tmp_path):
    table = BleuTable(title="t")
    table.add("SENSE", "fr", 21.67, hours=180.2)
    table.add("SENSE", "zh-CN", 6.33, hours=0.4)
    table.add("w2v-BERT 2.0", "fr", 21.02)
    with pytest.raises(ValueError, match="training hours"):
        table.add("x", "fr", 1.0, hours=3.0)
    table.save(tmp_path / "bleu")
    again = BleuTable.load(tmp_path / "bleu.json")
    assert again.to_markdown() == table.to_markdown()
    lines = (tmp_path / "bleu.md").read_text().splitlines()
    assert lines[2].split("|")[1:3] == [" BLEU         ", "    FR "]
    assert "| Duration (h) |   180 |  0.4 |" in lines
    assert "| w2v-BERT 2.0 | 21.02 |    - |" in lines
    assert (tmp_path / "bleu.csv").read_text().splitlines()[0] == "BLEU,FR,ZH"


@pytest.fixture(scope="module")
def covost(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("covost"))
    return root, build_covost(root)


@pytest.fixture(scope="module")
def prepared(covost, tmp_path_factory):
    root, expected = covost
    out = str(tmp_path_factory.mktemp("covost_prepared"))
    return root, out, prepare_covost(root, root, out, ["fr", "de", "ru"]), expected


def test_prepare_joins_splits_and_reports_bad_rows(prepared):
    root, out, summary, expected = prepared
    assert summary["kept"] == expected["kept"]
    train = read_manifest(summary["manifests"]["train"])
    rows = {r["ID"]: r for r in train}
    assert rows["fr_common_voice_fr_1003"]["translation"] == ENGLISH[3]  # train_covost -> train
    dev = {r["ID"]: r for r in read_manifest(summary["manifests"]["dev"])}
    assert dev["de_common_voice_de_1006"]["translation"] == ENGLISH[6]
    assert dev["de_common_voice_de_1006"]["transcript"] == SENTENCES["de"][6]
    # every kept row, hostile text included ($5, ${x}, quotes, emoji, RTL), exactly as released
    texts = {
        r["ID"]: (r["transcript"], r["translation"])
        for path in summary["manifests"].values()
        for r in read_manifest(path)
    }
    assert texts == expected["texts"]
    report = PreparationReport.read(summary["report"])
    reasons = {(r["item"], r["reason"]) for r in report}
    for item, reason in expected["bad"].items():
        assert (item, reason) in reasons
    counts = PreparationReport(rows=report).reasons()
    assert counts["empty translation"] == counts["malformed line"] == 3
    assert counts["unknown split 'other'"] == 3
    hours = summary["hours"]
    seconds = sum(float(r["duration"]) for r in train if r["language"] == "fr")
    assert hours["fr"] == pytest.approx(seconds / 3600)
    assert prepare_covost(root, root, out, ["fr", "de", "ru"])["skipped"]


def test_prepare_refuses_languages_outside_covost(covost, tmp_path):
    root, _ = covost
    with pytest.raises(ValueError, match="not CoVoST 2 X->EN"):
        prepare_covost(root, root, str(tmp_path), ["fr", "xx"])


# -- the recipe on tiny real-class models ------------------------------------------------


def _args(covost_root, prepared_folder, out, encoder, decoder, *extra):
    names = {e.split("=", 1)[0] for e in extra}
    defaults = [
        "hparams/train.yaml",
        f"--data_folder={covost_root}",
        f"--prepared_folder={prepared_folder}",
        f"--output_folder={out}",
        f"--bleu_table={out}/bleu_table",
        "--languages=[fr, de, ru]",
        f"--encoder_source={encoder}",
        "--encoder_dim=32",
        f"--decoder_source={decoder}",
        "--decoder_dim=32",
        "--number_of_epochs=1",
        "--max_batch_size=2",
        "--prepare_workers=1",
        "--num_workers=0",
        "--valid_batch_size=4",
        "--gradient_checkpointing=False",
        "--device=cpu",
    ]
    return [a for a in defaults if a.split("=", 1)[0] not in names] + list(extra)


def _run(args, **kw):
    proc = run_recipe(args, recipe=RECIPE, **kw)
    return proc


def _log_starts(out):
    with open(os.path.join(out, "train_log.txt"), encoding="utf-8") as f:
        return re.findall(r"start_optimizer_step: (\d+), start_epoch_step: (\d+)", f.read())


@pytest.fixture(scope="module")
def mbart_run(covost, tiny_w2v_bert, tiny_mbart, tmp_path_factory):
    """One tiny epoch with mBART, killed after its first intra-epoch checkpoint, resumed."""
    root, _ = covost
    out = str(tmp_path_factory.mktemp("st_mbart"))
    args = _args(
        root,
        os.path.join(out, "data"),
        out,
        tiny_w2v_bert,
        tiny_mbart,
        "--ckpt_interval_steps=2",
        "--ckpt_interval_minutes=0",
    )
    killed = _run(args, kill_after_checkpoint=1)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return out, resumed


@pytest.mark.slow
def test_recipe_resumes_mid_epoch_and_writes_the_bleu_table(mbart_run):
    out, proc = mbart_run
    # the resumed run starts after the two steps of the saved checkpoint, both optimizers too
    assert _log_starts(out)[-1] == ("2", "2")
    with open(os.path.join(out, "train_log.txt"), encoding="utf-8") as f:
        log = f.read()
    assert "train head_state_steps: 2" in log and "encoder_state_steps: 2" in log
    assert re.search(r"valid loss: [0-9.e+-]+, valid BLEU: [0-9.e+-]+, valid BLEU_de", log)
    table = BleuTable.load(os.path.join(out, "bleu_table"))
    assert table.models == ["SENSE"] and sorted(table.languages) == ["de", "fr", "ru"]
    hours = json.load(open(os.path.join(out, "data", "hours.json")))
    assert "| Duration (h) |" in (open(os.path.join(out, "bleu_table.md")).read())
    train = read_manifest(os.path.join(out, "data", "train.csv"))
    seconds = sum(float(r["duration"]) for r in train if r["language"] == "fr")
    assert hours["fr"] == pytest.approx(seconds / 3600) and seconds > 0
    with open(os.path.join(out, "test_hypotheses.tsv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))  # TSV with CSV quoting
    assert list(rows[0]) == ["ID", "language", "hypothesis", "reference"]
    # the test references are the released translations, hostile text included
    assert sorted(r["reference"] for r in rows) == sorted(3 * ENGLISH[4:6])
    assert "BLEU" in proc.stdout


def test_nllb_decoder_exports_and_translates(tiny_w2v_bert, tiny_nllb, tmp_path):
    """The alternative decoder block (NLLB, M2M100 class) through export and loading."""
    from sense.lobes.speech import HFSpeechEncoder
    from sense.translation import Translator
    from sense.translation.export import export_translator
    from sense.translation.model import FrameProjection, Seq2SeqDecoder

    encoder = HFSpeechEncoder(tiny_w2v_bert)
    decoder = Seq2SeqDecoder(tiny_nllb, target_lang="eng_Latn")
    projection = FrameProjection(encoder.output_dim, decoder.d_model)
    folder = export_translator(str(tmp_path / "st"), encoder, projection, decoder, beam_size=2)
    meta = json.load(open(os.path.join(folder, "meta.json")))
    assert meta["decoder"] == {
        "model_type": "m2m_100",
        "trained_from": tiny_nllb,
        "target_lang": "eng_Latn",
    }
    model = Translator.from_hparams(source=folder, device="cpu")
    wavs, lens = torch.randn(2, 16000), torch.tensor([1.0, 0.6])
    expected = decoder.eval().generate(
        projection.eval()(encoder.eval()(wavs, lens)[0]), encoder(wavs, lens)[1], beam_size=2
    )
    assert model.translate_batch(wavs, lens) == expected
    with pytest.raises(FileExistsError):
        export_translator(str(tmp_path), encoder, projection, decoder)


@pytest.mark.slow
def test_export_translates_files_and_the_cli_reports_bad_audio(mbart_run, tmp_path, capsys):
    from sense.cli import main
    from sense.translation import Translator
    from sense.windows import split_waveform

    out, _ = mbart_run
    folder = os.path.join(out, "model")
    model = Translator.from_hparams(source=folder, device="cpu")
    # seeded: where the silence cut falls depends on the noise (seed 0 gives 3 windows)
    wav = torch.randn(16000 * 2, generator=torch.Generator().manual_seed(0)) * 0.1
    sf.write(tmp_path / "a.flac", wav.numpy(), 16000)
    sf.write(tmp_path / "b.ogg", wav[:8000].numpy(), 16000)
    text = model.translate_file(str(tmp_path / "a.flac"), beam_size=5)
    assert isinstance(text, str)
    assert model.translate_batch(wav[None], torch.ones(1), beam_size=5) == [text]
    # a long recording is cut into windows and translated piece by piece
    long = torch.cat([wav, torch.zeros(8000), wav])
    pieces = model.translate_waveforms([long], beam_size=1, max_duration=2.0, window=2.0)
    spans = split_waveform(long, 16000, 2.0, 2.0, 0.0, "silence")
    assert len(spans) == 3 and spans[0][0] == 0 and spans[-1][1] == len(long)
    windows = [model.translate_batch(long[a:b][None], torch.ones(1), 1)[0] for a, b in spans]
    assert pieces == [" ".join(t for t in windows if t)]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    status = main(
        [
            "translate",
            "-m",
            folder,
            str(tmp_path / "a.flac"),
            str(tmp_path / "b.ogg"),
            str(tmp_path / "empty.wav"),
            str(tmp_path / "notes.txt"),
            "--json",
            "-q",
        ]
    )
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [os.path.basename(r["path"]) for r in lines] == ["a.flac", "b.ogg"]
    assert lines[0]["translation"] == text
    assert (
        "empty.wav: empty file" in captured.err and "notes.txt: not an audio file" in captured.err
    )
    assert "Traceback" not in captured.err
    assert status == 0
    assert main(["translate", "-m", folder, str(tmp_path / "empty.wav"), "-q"]) == 1
    assert "sense: error: nothing to translate" in capsys.readouterr().err


def test_bleu_is_case_sensitive_as_sacrebleu():
    """Mixed case, where lower-casing would change the score: ours is sacrebleu's default."""
    import sacrebleu

    hyps = ["The Cat sleeps on the sofa.", "A doctor reads Letters in Paris", "it is raining?"]
    refs = [
        "the cat sleeps on the red sofa.",
        "A young doctor reads letters in paris",
        "It is raining, no?",
    ]
    # 13a leaves guillemets on the words (sacrebleu's intl tokenizer would split them)
    hyps.append("«Bonjour», dit le Chat.")
    refs.append("« Bonjour », dit le chat.")
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score  # 13a, exp smoothing, cased
    lowered = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score
    assert lowered > expected + 10  # the case really matters here
    assert sacrebleu.corpus_bleu(hyps, [refs], tokenize="intl").score > expected + 10
    assert corpus_bleu(hyps, refs) == pytest.approx(expected, abs=1e-9)
    assert bleu_by_language(hyps, refs, ["fr", "fr", "de", "fr"])["de"] == pytest.approx(
        sacrebleu.corpus_bleu(hyps[2:3], [refs[2:3]]).score, abs=1e-9
    )
    # a perfect match up to case is not 100
    assert corpus_bleu(["The Cat Sleeps On The Sofa"], ["the cat sleeps on the sofa"]) < 100.0


def _sharp_decoder(folder, lang):
    """A decoder whose random weights are large enough for its output to follow the memory.

    The tiny checkpoint's own initialisation gives nearly uniform logits
    that hardly depend on the frames: greedy and beam search then agree.
    """
    from sense.translation.model import Seq2SeqDecoder

    decoder = Seq2SeqDecoder(folder, target_lang=lang).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in decoder.model.parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return decoder


@torch.no_grad()
def _best_two_token_outputs(decoder, memory):
    """Exhaustive search: the best output of at most two free tokens, for each utterance.

    The output is ``[language, t1, t2, </s>]``, ``[language, t1, </s>]`` or
    ``[language, </s>]``; its score is the sum of the log-probabilities of the
    free tokens (the forced language token, and the ``</s>`` forced at the
    length limit, score 0, as in transformers' forced-token processors),
    not length-normalised (``length_penalty=0``).
    """
    vocab = decoder.model.config.vocab_size
    best = []
    for row in memory:
        prefix = torch.tensor([[decoder.start_id, decoder.lang_id]])
        first = decoder(row[None], torch.ones(1), prefix)[0, -1].double().log_softmax(-1)
        grown = torch.cat([prefix.repeat(vocab, 1), torch.arange(vocab)[:, None]], dim=1)
        second = decoder(row.expand(vocab, -1, -1), torch.ones(vocab), grown)[:, -1]
        total = first[:, None] + second.double().log_softmax(-1)  # [t1, t2]
        total[decoder.eos_id] = float("-inf")  # t1 = </s> ends the output: scored below
        t1, t2 = divmod(int(total.argmax()), vocab)
        pair = [t1, t2] if t2 == decoder.eos_id else [t1, t2, decoder.eos_id]
        candidates = [
            (first[decoder.eos_id].item(), [decoder.eos_id]),
            (total[t1, t2].item(), pair),
        ]
        best.append(max(candidates)[1])
    return best


def test_beam_search_finds_the_best_output_greedy_misses(tiny_mbart):
    """Beam search (4 beams) equals exhaustive search where greedy decoding does not."""
    decoder = _sharp_decoder(tiny_mbart, "en_XX")
    torch.manual_seed(0)
    memory = torch.randn(6, 6, decoder.d_model)
    ones = torch.ones(len(memory))

    def outputs(beam_size):
        ids = decoder.generate_ids(memory, ones, beam_size, 0.0, max_new_tokens=4)
        assert ids[:, 1].eq(decoder.lang_id).all()
        return [[t for t in row[2:].tolist() if t != decoder.pad_id] for row in ids]

    best = _best_two_token_outputs(decoder, memory)
    greedy, beam = outputs(1), outputs(4)
    assert beam == best
    assert sum(g != b for g, b in zip(greedy, best)) >= 1, (greedy, best)
    texts = decoder.generate(memory, ones, beam_size=4, length_penalty=0.0, max_new_tokens=4)
    assert texts == decoder.decode([[decoder.lang_id, *b] for b in best])


@pytest.fixture(scope="module")
def tiny_translator(tiny_w2v_bert, tiny_mbart, tmp_path_factory):
    """An exported (untrained) Translator folder: beam size 3, length penalty 0.5."""
    from sense.lobes.speech import HFSpeechEncoder
    from sense.translation.export import export_translator
    from sense.translation.model import FrameProjection, Seq2SeqDecoder

    encoder = HFSpeechEncoder(tiny_w2v_bert)
    decoder = Seq2SeqDecoder(tiny_mbart, target_lang="en_XX")
    projection = FrameProjection(encoder.output_dim, decoder.d_model)
    folder = str(tmp_path_factory.mktemp("st") / "model")
    return export_translator(folder, encoder, projection, decoder, beam_size=3, length_penalty=0.5)


def test_the_beam_size_reaches_transformers_generate(tiny_translator):
    """A Translator searches with its folder's beam size, or the one asked for."""
    from transformers import MBartForConditionalGeneration

    from sense.translation import Translator

    model = Translator.from_hparams(source=tiny_translator, device="cpu")
    calls = []
    generate = MBartForConditionalGeneration.generate

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return generate(self, *args, **{**kwargs, "max_new_tokens": 2})

    wav = torch.randn(16000) * 0.1
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MBartForConditionalGeneration, "generate", spy)
        model.translate_batch(wav)
        model.translate_batch(wav, beam_size=1)
        model.translate_batch(wav, beam_size=4)
        model.translate_waveforms([wav], beam_size=2)
    beams = [(c["num_beams"], c.get("length_penalty"), c["do_sample"]) for c in calls]
    assert beams == [(3, 0.5, False), (1, None, False), (4, 0.5, False), (2, 0.5, False)]


def test_long_recordings_are_translated_window_by_window_in_order(tiny_translator, monkeypatch):
    """Windows cut at the pause, translated in length-sorted batches, joined back in order.

    Each window's "translation" is its number of samples (empty below 0.5 s).
    """
    from sense.translation import Translator

    model = Translator.from_hparams(source=tiny_translator, device="cpu")

    def translate_batch(wavs, lens, beam_size=None, target_lang=None):
        counts = (lens * wavs.shape[1]).round().long().tolist()
        return [str(n) if n >= 8000 else "" for n in counts]

    monkeypatch.setattr(model, "translate_batch", translate_batch)
    t = torch.arange(16000 * 2) / 16000
    tone = 0.5 * torch.sin(2 * math.pi * 220 * t)
    # 2 s of tone, a 0.5 s pause, 1.5 s of tone: at most 2.5 s a window, cut in the pause
    long = torch.cat([tone, torch.zeros(8000), tone[:24000]])
    waves = [tone[:4000], long, tone[:16000], torch.zeros(100)]
    out = model.translate_waveforms(waves, max_duration=2.5, window=2.5, batch_size=2)
    assert out[0] == "" and out[2] == "16000"  # one window each; the first too short to say
    first, second = (int(n) for n in out[1].split(" "))
    assert 32000 <= first < 40000 and first + second == 64000
    assert isinstance(out[3], ValueError) and "too short" in str(out[3])


def test_a_folder_that_names_the_former_decoder_module_loads_and_translates_alike(
    tiny_translator, tmp_path
):
    """Folders exported before translation/decoder.py became model.py still load, untrusted.

    Their ``hyperparams.yaml`` builds ``sense.translation.decoder.Seq2SeqDecoder``
    and ``...FrameProjection``: the same classes, the same weights, the same
    translations as the folder written today, which names ``sense.translation.model``.
    """
    import shutil

    from sense.translation import Translator

    text = open(os.path.join(tiny_translator, "hyperparams.yaml"), encoding="utf-8").read()
    assert "!new:sense.translation.model.Seq2SeqDecoder" in text
    assert "!new:sense.translation.model.FrameProjection" in text
    assert "sense.translation.decoder" not in text
    old = str(tmp_path / "exported_before_the_rename")
    shutil.copytree(tiny_translator, old)
    old_text = text.replace("sense.translation.model.", "sense.translation.decoder.")
    assert old_text.count("!new:sense.translation.decoder.") == 2
    with open(os.path.join(old, "hyperparams.yaml"), "w", encoding="utf-8") as f:
        f.write(old_text)

    new_model = Translator.from_hparams(source=tiny_translator, device="cpu")
    old_model = Translator.from_hparams(source=old, device="cpu")
    for name in ("encoder", "projection", "decoder"):
        new_state, old_state = new_model.mods[name].state_dict(), old_model.mods[name].state_dict()
        assert list(old_state) == list(new_state)
        assert all(torch.equal(old_state[k], new_state[k]) for k in new_state), name
    torch.manual_seed(0)
    wavs, lens = 0.1 * torch.randn(2, 16000), torch.tensor([1.0, 0.7])
    with torch.no_grad():
        new_memory, _ = new_model.decoder_memory(*new_model.mods.encoder(wavs, lens))
        old_memory, _ = old_model.decoder_memory(*old_model.mods.encoder(wavs, lens))
    assert torch.equal(old_memory, new_memory)
    expected = new_model.translate_batch(wavs, lens, beam_size=2)
    assert old_model.translate_batch(wavs, lens, beam_size=2) == expected
