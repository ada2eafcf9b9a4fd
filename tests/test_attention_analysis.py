"""The attention analysis of section VII: numbers, alignment sources, VAD, `sense attention`.

The numbers are checked against known answers (a synthetic logit curve, a
hand-computed first-frames mass, a hand-made alignment); each alignment source
that runs offline is exercised (CTM, TextGrid, forced alignment with a tiny
random ``Wav2Vec2ForCTC`` saved in the hub layout); the Silero VAD runs from its
package on espeak-ng speech; the command runs end to end on espeak-ng
utterances with their exact word boundaries.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from sense.analysis.alignment import (
    AlignmentFiles,
    CTCAligner,
    WordAligner,
    align_emission,
    read_ctm,
    read_textgrid,
)
from sense.analysis.attention import (
    edge_mass,
    frequent_words,
    nonspeech_mass,
    position_curve,
    top_occurrences,
    word_class_stats,
    word_scores,
)
from sense.cli import main
from sense.testing.tiny import build_tiny_wav2vec2_ctc

SR = 16000

# ---------------------------------------------------------------------------
# Figure 2: interpolation to relative positions
# ---------------------------------------------------------------------------


def _curve(x):
    """A known attention profile: a peak at the start, a slow fall, a rise at the end."""
    return 3.0 * np.exp(-25.0 * x) - 0.8 * x + 1.5 * np.exp(-30.0 * (1.0 - x))


def test_position_curve_recovers_a_known_curve_from_utterances_of_any_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(60, 400, size=40)
    utterances = [_curve(np.arange(t) / (t - 1)) for t in lengths]
    curve = position_curve(utterances, grid_size=101)
    assert curve.count == 40 and curve.grid[0] == 0.0 and curve.grid[-1] == 1.0
    # linear interpolation between frames at most 1/59 apart: error < h^2/8 max|f''|
    assert np.abs(curve.mean - _curve(curve.grid)).max() < 0.01
    # a straight line is recovered exactly, whatever the lengths
    lines = [2.0 - 3.0 * np.arange(t) / (t - 1) for t in (2, 7, 50)]
    assert np.allclose(position_curve(lines, grid_size=11).mean, 2.0 - 3.0 * np.linspace(0, 1, 11))
    # with noise, the band covers the true curve at most grid points (95%)
    noisy = [u + rng.normal(0, 0.5, u.size) for u in utterances]
    band = position_curve(noisy, grid_size=101)
    inside = (band.low <= _curve(band.grid)) & (_curve(band.grid) <= band.high)
    assert inside.mean() > 0.8 and (band.high > band.low).all()


def test_position_curve_places_frames_at_i_over_t_minus_one():
    # a one-frame peak at frame 0 of a 5-frame utterance: 2.0 at 0, 1.0 at 0.125, 0 from 0.25
    curve = position_curve([[2.0, 0.0, 0.0, 0.0, 0.0]], grid_size=9)
    assert curve.mean.tolist() == [2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert position_curve([[5.0]], grid_size=3).mean.tolist() == [5.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="no utterances"):
        position_curve([])


# ---------------------------------------------------------------------------
# The first-frames mass
# ---------------------------------------------------------------------------


def test_first_frames_mass_hand_computed():
    # utterance A: 10 frames, exp(logits) = [4, 2, 1, 1, 1, 1, 1, 1, 1, 1] (sum 14)
    # utterance B: 30 frames, all equal
    a = np.log([4.0, 2.0] + [1.0] * 8)
    b = np.zeros(30)
    first = edge_mass([a, b], frames=2)
    assert first.mass == pytest.approx(((4 + 2) / 14 + 2 / 30) / 2)
    assert first.frame_share == pytest.approx(2 / 20)  # 2 frames of 20 on average
    assert first.mean_frame_share == pytest.approx((2 / 10 + 2 / 30) / 2)
    assert first.mean_frames == 20 and first.utterances == 2
    last = edge_mass([a, b], frames=2, edge="last")
    assert last.mass == pytest.approx((2 / 14 + 2 / 30) / 2)
    # an utterance shorter than the edge counts whole
    assert edge_mass([np.zeros(3)], frames=5).mass == pytest.approx(1.0)
    with pytest.raises(ValueError, match="edge"):
        edge_mass([a], edge="middle")


# ---------------------------------------------------------------------------
# Table IX: word sums
# ---------------------------------------------------------------------------


def test_word_sums_tables_and_classes_from_a_hand_made_alignment():
    times = (np.arange(12) + 0.5) * 0.02  # 20 ms frames: centres 0.01 .. 0.23
    logits = np.array([5.0, 4.0, -1.0, -2.0, 3.0, 3.0, 3.0, -1.0, -1.0, 0.0, 0.0, 2.0])
    words = [
        ("La", 0.00, 0.04),  # frames 0, 1 -> 9
        ("maison", 0.08, 0.14),  # frames 4, 5, 6 -> 9
        ("de", 0.14, 0.18),  # frames 7, 8 -> -2
        ("Mayotte,", 0.22, 0.24),  # frame 11 -> 2
        ("de", 0.201, 0.205),  # no frame centre inside: the nearest frame (10) -> 0
    ]
    scores = word_scores(times, logits, words, utterance="u1", lang="fr")
    assert [(s.word, s.logit_sum, s.frames) for s in scores] == [
        ("La", 9.0, 2),
        ("maison", 9.0, 3),
        ("de", -2.0, 2),
        ("Mayotte,", 2.0, 1),
        ("de", 0.0, 1),
    ]
    mean = logits.mean()
    assert scores[2].centred_logit == pytest.approx(-1.0 - mean)
    weights = np.exp(logits) / np.exp(logits).sum()
    assert scores[1].weight == pytest.approx(weights[4:7].sum())
    assert [s.word for s in top_occurrences(scores, n=3)] == ["La", "maison", "Mayotte,"]
    freq = frequent_words(scores, n=2)
    assert [(w.word, w.count, w.mean_sum) for w in freq] == [("de", 2, -1.0), ("la", 1, 9.0)]
    classes = word_class_stats(scores, {"la", "de"})
    assert classes["function"].count == 3
    assert classes["function"].mean_sum == pytest.approx((9.0 - 2.0 + 0.0) / 3)
    assert classes["content"].mean_sum == pytest.approx((9.0 + 2.0) / 2)
    assert classes["content"].mean_logit == pytest.approx(11.0 / 4)


def test_nonspeech_mass_interpolates_the_vad_curve():
    # frames at 0.1 s (silence) and 0.3 s (speech); weights 0.25 / 0.75
    m = nonspeech_mass([([0.1, 0.3], np.log([1.0, 3.0]), [0.0, 0.2, 0.4], [0.0, 0.1, 1.0])])
    assert m.mass == pytest.approx(0.25) and m.frame_share == 0.5
    assert nonspeech_mass([]) is None


# ---------------------------------------------------------------------------
# Alignment sources
# ---------------------------------------------------------------------------

TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.2
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 1.2
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 1.2
            text = "x"
    item [2]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 1.2
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.2
            text = ""
        intervals [2]:
            xmin = 0.2
            xmax = 0.5
            text = "bonjour"
        intervals [3]:
            xmin = 0.5
            xmax = 0.6
            text = "sil"
        intervals [4]:
            xmin = 0.6
            xmax = 1.2
            text = "madame"
"""


def test_ctm_and_textgrid_files(tmp_path):
    ctm = tmp_path / "align" / "all.ctm"
    ctm.parent.mkdir()
    ctm.write_text(
        ";; a comment\nutt2 1 0.50 0.25 chat 0.9\nutt2 1 0.10 0.30 le\nutt2 1 0.80 0.1 <eps>\n"
    )
    (tmp_path / "align" / "utt1.TextGrid").write_text(TEXTGRID)
    assert read_ctm(str(ctm)) == {"utt2": [("le", 0.1, 0.4), ("chat", 0.5, 0.75)]}
    expected = [("bonjour", 0.2, 0.5), ("madame", 0.6, 1.2)]
    assert read_textgrid(str(tmp_path / "align" / "utt1.TextGrid")) == expected
    assert read_textgrid(str(tmp_path / "align" / "utt1.TextGrid"), tier="phones") == [
        ("x", 0.0, 1.2)
    ]
    files = AlignmentFiles(str(tmp_path / "align"))
    assert len(files) == 2
    # found by id, or by the audio file's name
    assert files.lookup("utt1") == expected
    assert files.lookup("some/id", "/data/clips/utt2.wav") == [
        ("le", 0.1, 0.4),
        ("chat", 0.5, 0.75),
    ]
    assert files.lookup("utt3") is None
    words, source, _ = WordAligner(files).words("utt1", {"text": "bonjour madame"}, None)
    assert (words, source) == (expected, "file")
    words, source, problem = WordAligner(files).words("utt3", {"text": "salut"}, None)
    assert words is None and "not in" in problem
    bad = tmp_path / "bad.ctm"
    bad.write_text("utt1 1 0.1 0.2 le\nutt1 1 zero 0.2 chat\n")
    with pytest.raises(ValueError, match=r"bad\.ctm:2"):
        read_ctm(str(bad))
    with pytest.raises(ValueError, match="no interval tier 'syllables'"):
        read_textgrid(str(tmp_path / "align" / "utt1.TextGrid"), tier="syllables")
    with pytest.raises(FileNotFoundError):
        AlignmentFiles(str(tmp_path / "missing.ctm"))


def test_forced_alignment_of_a_known_emission():
    # vocabulary: 0 blank, 1 '|', 2 'a', 3 'b'; frames say a a _ | b b b _ b
    path = [2, 2, 0, 1, 3, 3, 3, 0, 3]
    log_probs = torch.full((len(path), 4), -20.0)
    log_probs[torch.arange(len(path)), torch.tensor(path)] = 0.0
    words = align_emission(
        log_probs, ["a", "bb"], [[2], [3, 3]], blank=0, seconds_per_frame=0.02, delimiter=1
    )
    assert words == [("a", 0.0, 0.04), ("bb", 0.08, 0.18)]
    with pytest.raises(ValueError, match="tokens for 2 frames"):
        align_emission(log_probs[:2], ["ab"], [[2, 3, 2]], blank=0, seconds_per_frame=0.02)


def test_forced_alignment_with_a_tiny_wav2vec2_ctc_model(tmp_path):
    folder = build_tiny_wav2vec2_ctc(str(tmp_path / "ctc"))
    aligner = CTCAligner(folder)
    wav = torch.randn(2 * SR) * 0.1
    # "2009" has no character in the vocabulary: left out; accents and case are mapped
    words = aligner.align(wav, "Le chat dort à l'École 2009")
    assert [w for w, _, _ in words] == ["Le", "chat", "dort", "à", "l'École"]
    starts, ends = [s for _, s, _ in words], [e for _, _, e in words]
    assert all(s < e for s, e in zip(starts, ends))
    assert all(e <= s for e, s in zip(ends, starts[1:]))  # in order, no overlap
    assert 0.0 <= starts[0] and ends[-1] <= 2.0 + 1e-6
    got, source, _ = WordAligner(ctc=aligner).words("u", {"text": "le chat"}, wav)
    assert source == "ctc" and [w for w, _, _ in got] == ["le", "chat"]
    _, _, problem = WordAligner(ctc=aligner).words("u", {"text": "2009"}, wav)
    assert "vocabulary" in problem
    with pytest.raises(OSError, match="cannot load a wav2vec2 CTC model"):
        CTCAligner(str(tmp_path))


# ---------------------------------------------------------------------------
# Real speech: espeak-ng with exact word boundaries
# ---------------------------------------------------------------------------

SENTENCES = {
    "fr_0": ("fr", "Le boulanger ouvre deux bouteilles le dimanche.", {"de": "de_0"}),
    "de_0": ("de", "Sonntags öffnet der Bäcker zwei Flaschen.", {"fr": "fr_0"}),
    "fr_1": ("fr", "Notre voisin boit du lait à l'école.", {}),
}


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Three espeak-ng utterances (22.05 kHz wav) and a manifest with their words."""
    from sense.demo.synth import EspeakSynthesizer

    root = tmp_path_factory.mktemp("speech")
    synth = EspeakSynthesizer()
    manifest = {}
    for key, (lang, text, parallel) in SENTENCES.items():
        out = synth.synthesize(text, lang, rate=170)
        pad = np.zeros(int(0.4 * out.sample_rate), dtype=np.float32)  # silence before and after
        path = root / f"{key}.wav"
        sf.write(path, np.concatenate([pad, out.waveform, pad]), out.sample_rate)
        words = [[w, b + 0.4, e + 0.4] for w, b, e in out.words]
        manifest[key] = {
            "path": path.name,
            "lang": lang,
            "text": text,
            "words": words,
            "parallel": parallel,
        }
    (root / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    return root


def test_silero_vad_runs_offline_from_its_package(speech):
    from sense.analysis.vad import SileroVAD
    from sense.dataio import load_audio

    threads = torch.get_num_threads()
    vad = SileroVAD()
    assert torch.get_num_threads() == threads  # importing silero_vad does not leave 1 thread
    wav = load_audio(str(speech / "fr_0.wav"), SR)
    times, probs = vad.speech_probabilities(wav)
    assert times.shape == probs.shape and times[-1] <= wav.numel() / SR
    speaking = (times > 0.6) & (times < wav.numel() / SR - 0.6)
    silent = (times < 0.3) | (times > wav.numel() / SR - 0.2)
    assert probs[speaking].mean() > 0.7 and probs[silent].mean() < 0.3
    again = vad.speech_probabilities(wav)[1]
    assert np.allclose(again, probs)  # the model's state is reset between calls


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_w2v_bert):
    from sense.export import export_model
    from sense.lobes.speech import HFSpeechEncoder
    from sense.nnet.pooling import AttentivePooling

    torch.manual_seed(0)
    encoder = HFSpeechEncoder(tiny_w2v_bert)
    pooling = AttentivePooling(encoder.output_dim, output_dim=16)
    with torch.no_grad():
        pooling.attention.weight.mul_(5.0)
    folder = str(tmp_path_factory.mktemp("attention-model") / "model")
    return export_model(folder, encoder, pooling, teacher=None)


def test_uniform_attention_is_mean_pooling_over_the_same_frames(model_dir, speech):
    from sense.analysis.pooling import uniform_attention
    from sense.dataio import load_audio
    from sense.inference import SENSE

    model = SENSE.from_hparams(source=model_dir, device="cpu")
    wav = load_audio(str(speech / "fr_1.wav"), SR)
    with torch.no_grad():
        frames, _ = model.mods.encoder(wav[None], torch.ones(1))
        expected = model.mods.pooling.projection(frames[0].mean(0))
    with uniform_attention(model):
        uniform = model.encode_waveforms([wav], normalize=False)[0]
    learned = model.encode_waveforms([wav], normalize=False)[0]
    assert torch.allclose(uniform, expected, atol=1e-5)
    assert not torch.allclose(learned, expected, atol=1e-3)  # the hook is gone again


def _pair(folder, speech):
    """A speech -> speech pair: each utterance must find its own recording."""
    from sense.evaluation import PrepReport, audio_entry, write_pair

    query = {k: audio_entry(str(speech / f"{k}.wav"), k[:2], target=f"s_{k}") for k in SENTENCES}
    search = {f"s_{k}": audio_entry(str(speech / f"{k}.wav"), k[:2]) for k in SENTENCES}
    return write_pair(str(folder), query, search, PrepReport(name="self"), {})


def test_sense_attention_command_end_to_end(model_dir, speech, tmp_path, capsys):
    from sense.inference import SENSE

    out = tmp_path / "out"
    pair = _pair(tmp_path / "self", speech)
    status = main(
        ["attention", "-m", model_dir, str(speech / "manifest.json"), "-o", str(out)]
        + ["--pair", pair, "--edge-frames", "3", "--device", "cpu", "-q"]
    )
    assert status == 0
    names = set(os.listdir(out))
    for name in ("figure2_position.png", "position_curve.csv", "position_curve.json"):
        assert name in names
    assert {"figure3_fr_0.png", "figure4_de_0.png", "word_scores.csv", "report.md"} <= names
    assert {"pooling.md", "pooling.json", "summary.json", "words.json"} <= names
    summary = json.loads((out / "summary.json").read_text())
    fr = summary["languages"]["fr"]
    assert fr["utterances"] == 2 and fr["aligned"] == 2 and fr["word_sources"] == {"manifest": 2}
    # the numbers are those of the model's own attention
    model = SENSE.from_hparams(source=model_dir, device="cpu")
    logits = [
        model.attention_file(str(speech / f"{k}.wav")).logits.numpy() for k in ("fr_0", "fr_1")
    ]
    # the command runs padded batches, this one file at a time: float32 rounding differs
    assert fr["first_frames"]["mass"] == pytest.approx(edge_mass(logits, 3).mass, rel=1e-3)
    curve = position_curve(logits)
    assert fr["position_curve"]["0.50"] == pytest.approx(curve.mean[50], rel=1e-3, abs=1e-6)
    # non-speech: the frames whose Silero speech probability (interpolated at the frame
    # time) is below 0.5; their share of frames and of attention, averaged over files
    from sense.analysis.vad import SileroVAD
    from sense.dataio import load_audio

    vad, shares, masses = SileroVAD(), [], []
    for key in ("fr_0", "fr_1"):
        frames = model.attention_file(str(speech / f"{key}.wav"))
        speech_prob = np.interp(
            frames.times.double().numpy(),
            *vad.speech_probabilities(load_audio(str(speech / f"{key}.wav"), SR)),
        )
        silent = speech_prob < 0.5
        shares.append(silent.mean())
        masses.append(torch.softmax(frames.logits.double(), 0).numpy()[silent].sum())
    assert 0 < np.mean(shares) < 1  # the padding is silence, the words are not
    assert fr["nonspeech"]["frame_share"] == pytest.approx(np.mean(shares))
    assert fr["nonspeech"]["mass"] == pytest.approx(np.mean(masses), rel=1e-3)
    rows = list(csv.DictReader(open(out / "word_scores.csv", encoding="utf-8")))
    assert [r["word"] for r in rows if r["utterance"] == "fr_0"] == [
        "Le", "boulanger", "ouvre", "deux", "bouteilles", "le", "dimanche",
    ]  # fmt: skip
    assert {r["word_class"] for r in rows if r["lang"] == "fr"} == {"content", "function"}
    table = {k: fr["frequent_words"][0][k] for k in ("word", "count")}
    assert table == {"word": "le", "count": 2}
    assert set(summary["pooling"]) == {"learned attention", "uniform mean pooling"}
    report = (out / "report.md").read_text()
    assert "Table IX (fr)" in report and "uniform mean pooling" in report


def test_without_alignments_the_analysis_is_the_curve_only(model_dir, speech, tmp_path, capsys):
    manifest = json.loads((speech / "manifest.json").read_text())
    for entry in manifest.values():
        del entry["words"]
        entry["path"] = str(speech / entry["path"])
    path = tmp_path / "nowords.json"
    path.write_text(json.dumps(manifest))
    out = tmp_path / "out"
    status = main(
        ["attention", "-m", model_dir, str(path), str(tmp_path / "missing.wav"), "-o", str(out)]
        + ["--no-vad", "--no-whisperx", "--device", "cpu"]
    )
    printed, err = capsys.readouterr()
    assert status == 0
    assert "figure2_position.png" in os.listdir(out) and "word_scores.csv" not in os.listdir(out)
    assert "curve only for the others: 2 x no alignment file, CTC model or WhisperX" in printed
    assert "missing.wav: no such file or folder" in err


def test_sense_attention_user_errors(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["attention", "-m", model_dir, str(bad), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "sense: error:" in err and "bad.json: a list manifest holds objects" in err
    status = main(
        ["attention", "-m", model_dir, str(tmp_path / "nothing.wav"), "-o", str(tmp_path / "o")]
    )
    assert status == 1
    assert "no utterance to analyse" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The VoxPopuli recipe, on a release in its real layout
# ---------------------------------------------------------------------------

VOX = {  # src_id suffix: (year, French, English, German or None)
    0: ("2009", "Le boulanger ouvre deux bouteilles.", "The baker opens two bottles.", None),
    1: ("2009", "Notre voisin boit du lait.", "Our neighbour drinks milk.", "Unser Nachbar trinkt Milch."),
    2: ("2010", "Le médecin lit une lettre.", "The doctor reads a letter.", None),
}  # fmt: skip


def _voxpopuli(root):
    """transcribed_data/fr/{<year>, en, de} as the VoxPopuli scripts write it, spoken by
    espeak-ng; returns a CTM file of the French words."""
    from sense.demo.synth import EspeakSynthesizer

    synth, base, ctm = EspeakSynthesizer(), root / "transcribed_data", []
    tables = {"en": [], "de": []}
    for i, (year, fr, en, de) in VOX.items():
        session = f"{year}0312-0900-PLENARY-{i}"
        src_id = f"{session}-fr_{session}_{i}"
        out = synth.synthesize(fr, "fr", rate=170)
        (base / "fr" / year).mkdir(parents=True, exist_ok=True)
        sf.write(base / "fr" / year / f"{src_id}.ogg", out.waveform, out.sample_rate)
        ctm += [f"{src_id} 1 {b:.3f} {e - b:.3f} {w}" for w, b, e in out.words]
        for lang, text in (("en", en), ("de", de)):
            if text is None:
                continue
            tgt_id = f"{session}-{lang}_{session}_{i}"
            spoken = synth.synthesize(text, lang, rate=170)
            (base / "fr" / lang / year).mkdir(parents=True, exist_ok=True)
            sf.write(
                base / "fr" / lang / year / f"{tgt_id}.ogg", spoken.waveform, spoken.sample_rate
            )
            tables[lang].append("\t".join([src_id, fr.lower(), "spk1", tgt_id, text]))
    for lang, rows in tables.items():
        header = "src_id\tsrc_text\tsrc_speaker_id\ttgt_id\ttgt_text"
        (base / "fr" / lang / "s2s.tsv").write_text("\n".join([header] + rows) + "\n")
    (root / "fr.ctm").write_text("\n".join(ctm) + "\n")
    return root / "fr.ctm"


def test_voxpopuli_attention_recipe(model_dir, tmp_path):
    import importlib.util

    ctm = _voxpopuli(tmp_path / "voxpopuli")
    recipe = os.path.join(os.path.dirname(__file__), "..", "recipes", "VoxPopuli", "attention")
    spec = importlib.util.spec_from_file_location(
        "vox_attention", os.path.join(recipe, "analyze.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    summary = module.main(
        [os.path.join(recipe, "hparams", "attention.yaml")]
        + [f"--data_folder={tmp_path / 'voxpopuli'}", f"--model={model_dir}"]
        + [f"--output_folder={out}", f"--alignments={ctm}", "--whisperx=False", "--device=cpu"]
    )
    manifest = json.loads((out / "prep" / "utterances.json").read_text())
    fr_1 = "20090312-0900-PLENARY-1-fr_20090312-0900-PLENARY-1_1"
    de_1 = "20090312-0900-PLENARY-1-de_20090312-0900-PLENARY-1_1"
    # the 2009 French utterances with English interpretations, and the German one
    assert sorted(manifest) == sorted(
        ["20090312-0900-PLENARY-0-fr_20090312-0900-PLENARY-0_0", fr_1, de_1]
    )
    assert manifest[fr_1]["parallel"] == {"de": de_1} and manifest[de_1]["parallel"] == {"fr": fr_1}
    assert manifest[de_1]["text"] == "Unser Nachbar trinkt Milch."
    langs = summary["languages"]
    assert langs["fr"]["utterances"] == 2 and langs["fr"]["word_sources"] == {"file": 2}
    assert langs["de"]["aligned"] == 0  # German words: not in the CTM, no aligner
    assert summary["pooling"]["learned attention"]["fr-en"]["n_query"] == 2
    names = set(os.listdir(out))
    assert {"figure2_position.png", "report.md", "pooling.md", "word_scores.csv"} <= names
    assert f"figure3_{fr_1}.png" in names and f"figure4_{de_1}.png" in names
