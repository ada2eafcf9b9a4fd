"""A trained ZeroST model exports to a folder that its interface and ``sense translate`` load."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch

from sense.checkpoints import AtomicCheckpointer
from sense.cli import main
from sense.dataio import pad_batch
from sense.testing.tiny import build_tiny_nllb, build_tiny_whisper
from sense.translation.brain import label_smoothed_nll
from sense.translation.export import save_decoder
from sense.translation.inference import load_translator
from sense.translation.model import Seq2SeqDecoder
from sense.zerost.brain import ZeroSTBrain, translate
from sense.zerost.export import export_zerost
from sense.zerost.inference import ZeroSTTranslator
from sense.zerost.qformer import build_qformer
from sense.zerost.speech import AdaptedSpeechEncoder

RATE = 16000
DEFAULT_LANG, OTHER_LANG = "fra_Latn", "deu_Latn"
MAX_TOKENS = 6


#: What the tiny NLLB learns to write after each language code, whatever it attends to.
SENTENCES = {
    DEFAULT_LANG: "le chat dort sur le canapé rouge",
    OTHER_LANG: "die Katze schläft auf dem roten Sofa",
}
NLLB_STEPS = 30


@pytest.fixture(scope="module")
def tiny_nllb(tmp_path_factory):
    """A tiny NLLB that writes a sentence of its own in each language (a real NLLB stand-in).

    A random one writes the same few tokens whatever the language code.
    """
    torch.manual_seed(0)
    random = build_tiny_nllb(str(tmp_path_factory.mktemp("nllb_random")))
    decoder = Seq2SeqDecoder(random, target_lang=DEFAULT_LANG)
    targets = [decoder.target_ids(text, lang) for lang, text in SENTENCES.items()]
    tokens, token_lens = pad_batch(targets)
    inputs, labels = decoder.teacher_forcing(tokens.long(), token_lens)
    opt = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    decoder.train()
    for _ in range(NLLB_STEPS):
        memory = torch.randn(len(targets), 5, decoder.d_model)
        logits = decoder(memory, torch.ones(len(targets)), inputs)
        loss = label_smoothed_nll(logits, labels, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    folder = str(tmp_path_factory.mktemp("nllb"))
    save_decoder(decoder, folder)
    return folder


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    return build_tiny_whisper(str(tmp_path_factory.mktemp("whisper")))


def build_modules(speech: str, qformer: str, nllb: str):
    """A tiny ZeroST (two adapter stages) with random adapters, as if trained."""
    torch.manual_seed(0)
    decoder = Seq2SeqDecoder(nllb, target_lang=DEFAULT_LANG, freeze=True)
    dim = 16 if qformer == "lite" else decoder.d_model
    encoder = AdaptedSpeechEncoder(speech, dim, bottleneck=4, stages=("kd", "nll"))
    with torch.no_grad():  # the adapters start as the identity: make them count
        for p in encoder.trained_parts().parameters():
            p.normal_(0.0, 0.2)
    if qformer == "lite":
        settings = {"dim": dim, "num_layers": 1, "num_heads": 2, "ffn_dim": 32}
        settings["output_dim"] = decoder.d_model
    else:
        settings = {"source": nllb}
    qformer = build_qformer(qformer, num_queries=5, **settings)
    return encoder.eval(), qformer.eval(), decoder.eval()


@pytest.fixture(scope="module")
def whisper_lite(tiny_whisper, tiny_nllb, tmp_path_factory):
    """In-memory modules (Whisper + Q-Lite) and their exported folder."""
    modules = build_modules(tiny_whisper, "lite", tiny_nllb)
    folder = str(tmp_path_factory.mktemp("zerost") / "model")
    export_zerost(folder, *modules, beam_size=1, max_new_tokens=MAX_TOKENS)
    return modules, folder


def waves():
    torch.manual_seed(1)
    return torch.randn(2, RATE) * 0.1, torch.tensor([1.0, 0.6])


def check_reloaded(modules, folder):
    """The folder translates as the in-memory modules do, into any language."""
    model = load_translator(folder, device="cpu")
    assert isinstance(model, ZeroSTTranslator)
    wavs, lens = waves()

    def reference(lang):
        return translate(*modules, wavs, lens, lang, beam_size=1, max_new_tokens=MAX_TOKENS)

    default = model.translate_batch(wavs, lens)
    assert default == reference(DEFAULT_LANG)
    other = model.translate_batch(wavs, lens, target_lang=OTHER_LANG)
    assert other == reference(OTHER_LANG) and other != default
    assert model.mods.decoder.target_lang == DEFAULT_LANG  # the default is kept
    with pytest.raises(ValueError, match="'xx_YY' is not a language token"):
        model.translate_batch(wavs, lens, target_lang="xx_YY")
    return model


def test_whisper_q_lite_export_translates_as_trained(whisper_lite):
    modules, folder = whisper_lite
    check_reloaded(modules, folder)
    meta = json.load(open(os.path.join(folder, "meta.json")))
    assert meta["format"] == "sense-zerost" and meta["decoder"]["target_lang"] == DEFAULT_LANG
    assert meta["qformer"]["name"] == "lite" and meta["encoder"]["adapter_stages"] == ["kd", "nll"]
    config = json.load(open(os.path.join(folder, "encoder", "config.json")))
    assert config["architectures"] == ["WhisperEncoder"]  # the Whisper decoder is not kept
    with pytest.raises(ValueError, match="exceeds the 2 s the Whisper encoder reads"):
        export_zerost(folder, *modules, max_duration=30.0)


def test_wav2vec2_q_nllb_export_rebuilds_from_its_saved_config(tiny_wav2vec2, tiny_nllb, tmp_path):
    modules = build_modules(tiny_wav2vec2, "nllb", tiny_nllb)
    folder = export_zerost(
        str(tmp_path / "model"), *modules, beam_size=1, max_new_tokens=MAX_TOKENS
    )
    assert os.path.isfile(os.path.join(folder, "qformer", "config.json"))
    model = check_reloaded(modules, folder)
    assert model.mods.qformer.initialised_layers == 0  # the trained state, not NLLB's encoder
    with pytest.raises(ValueError, match="'xx_YY' is not a language token"):
        export_zerost(str(tmp_path / "other"), *modules, target_lang="xx_YY")


def test_cli_translates_files_and_reports_bad_ones(whisper_lite, tmp_path, capsys):
    _, folder = whisper_lite
    t = np.arange(int(0.8 * RATE)) / RATE
    clip = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(tmp_path / "a.wav", clip, RATE)
    sf.write(tmp_path / "b.mp3", clip, RATE, format="MP3")
    (tmp_path / "bad.flac").write_bytes(b"not audio at all")
    paths = [str(tmp_path / n) for n in ("a.wav", "b.mp3", "bad.flac")]
    status = main(["translate", "-m", folder, "--target-lang", OTHER_LANG, *paths, "--json", "-q"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [os.path.basename(r["path"]) for r in lines] == ["a.wav", "b.mp3"]
    model = ZeroSTTranslator.from_hparams(source=folder, device="cpu")
    assert lines[0]["translation"] == model.translate_file(paths[0], target_lang=OTHER_LANG)
    assert "bad.flac: " in err and "Traceback" not in err
    assert status == 0
    status = main(["translate", "-m", folder, "--target-lang", "xx_YY", paths[0], "-q"])
    err = capsys.readouterr().err
    assert status != 0 and "'xx_YY' is not a language token" in err and "Traceback" not in err


def test_brain_exports_its_best_checkpoint(whisper_lite, tmp_path):
    (encoder, qformer, decoder), _ = whisper_lite
    counter = sb.utils.epoch_loop.EpochCounter(1)
    checkpointer = AtomicCheckpointer(str(tmp_path / "save"), {"counter": counter})

    def brain(step, **modules):
        return ZeroSTBrain(
            modules={"encoder": encoder, "qformer": qformer, **modules},
            hparams={"zerost_step": step, "epoch_counter": counter},
            run_opts={"device": "cpu"},
            checkpointer=checkpointer,
        )

    nll = brain("nll", decoder=decoder)
    nll.checkpointer.save_checkpoint(meta={"loss": 1.5})
    folder = nll.export(str(tmp_path / "model"), {"step": "nll"}, target_lang=OTHER_LANG)
    meta = json.load(open(os.path.join(folder, "meta.json")))
    assert meta["extra"]["valid"]["loss"] == 1.5 and meta["extra"]["step"] == "nll"
    assert meta["decoder"]["target_lang"] == OTHER_LANG
    kd = brain("kd", kd_loss=torch.nn.Identity())
    with pytest.raises(ValueError, match="only a ZeroST step-2"):
        kd.export(str(tmp_path / "kd"))
