"""ZeroST: Q-Formers, adapters, KD losses, the token cache, the two training steps."""

import math

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.dataset import DynamicItemDataset

from sense.checkpoints import AtomicCheckpointer
from sense.finetune import optimizer_steps
from sense.testing.tiny import build_tiny_nllb, build_tiny_whisper
from sense.translation.model import Seq2SeqDecoder
from sense.zerost.brain import ZeroSTBrain, add_zerost_pipelines, translate
from sense.zerost.cache import NLLBTokenEncoder, TokenEmbeddingCache
from sense.zerost.losses import ZeroSTKDLoss
from sense.zerost.qformer import build_qformer
from sense.zerost.speech import AdaptedSpeechEncoder

RATE = 16000
PRETRAIN_STEPS = 60
# Two meanings in two languages: the language code alone does not tell the
# decoder which sentence to write, the speech must.
UTTERANCES = {
    "en1": ("the cat sleeps on the red sofa", "eng_Latn", 220.0),
    "en2": ("a young doctor reads a long letter in the garden", "eng_Latn", 330.0),
    "fr1": ("le chat dort sur le canapé rouge", "fra_Latn", 440.0),
    "fr2": ("un jeune médecin lit une longue lettre dans le jardin", "fra_Latn", 550.0),
}


@pytest.fixture(scope="module")
def tiny_nllb(tmp_path_factory):
    return build_tiny_nllb(str(tmp_path_factory.mktemp("nllb")))


@pytest.fixture(scope="module")
def pretrained_nllb(tiny_nllb, tmp_path_factory):
    """The tiny NLLB taught to translate among the four transcripts (a frozen NLLB stand-in).

    A random decoder's output hardly depends on what it attends to (its
    logits are all near zero), so nothing could be learned through it.
    """
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tiny_nllb)
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration.from_pretrained(tiny_nllb)
    pairs = [
        (UTTERANCES[a], UTTERANCES[b])
        for a in UTTERANCES
        for b in UTTERANCES
        if a[-1] == b[-1]  # same meaning
    ]
    inputs, labels = [], []
    for (src, src_lang, _), (tgt, tgt_lang, _) in pairs:
        tokenizer.src_lang, tokenizer.tgt_lang = src_lang, tgt_lang
        encoded = tokenizer(src, text_target=tgt)
        inputs.append(torch.tensor(encoded["input_ids"]))
        labels.append(torch.tensor(encoded["labels"]))
    pad = tokenizer.pad_token_id
    input_ids = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True, padding_value=pad)
    label_ids = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-100)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(PRETRAIN_STEPS):
        loss = model(input_ids=input_ids, attention_mask=input_ids != pad, labels=label_ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1.0, loss.item()
    folder = str(tmp_path_factory.mktemp("nllb_pretrained"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    return build_tiny_whisper(str(tmp_path_factory.mktemp("whisper")))


@pytest.fixture(scope="module")
def teacher(tiny_nllb):
    return NLLBTokenEncoder(tiny_nllb)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four clips (a tone each, 0.5-0.8 s) with transcripts in four languages."""
    folder = tmp_path_factory.mktemp("zerost_audio")
    data = {}
    for i, (uid, (text, lang, freq)) in enumerate(UTTERANCES.items()):
        t = np.arange(int(RATE * (0.5 + 0.1 * i))) / RATE
        path = folder / f"{uid}.wav"
        sf.write(path, 0.3 * np.sin(2 * math.pi * freq * t), RATE)
        data[uid] = {"wav": str(path), "transcript": text, "language": lang, "duration": t[-1]}
    return data


@pytest.mark.parametrize("name", ["simple", "lite", "nllb"])
def test_qformer_shapes_and_padding(name, tiny_nllb):
    torch.manual_seed(0)
    settings = {"source": tiny_nllb} if name == "nllb" else {"dim": 32}
    if name == "lite":
        settings.update(num_layers=1, num_heads=2, ffn_dim=64)
    qformer = build_qformer(name, num_queries=5, **settings).eval()
    frames = torch.randn(2, 9, 32)
    out = qformer(frames, torch.tensor([1.0, 5 / 9]))
    assert out.shape == (2, 5, 32)
    alone = qformer(frames[1:, :5], torch.ones(1))
    torch.testing.assert_close(out[1:], alone, atol=1e-5, rtol=1e-5)
    garbage = frames.clone()
    garbage[1, 5:] = 1e3
    torch.testing.assert_close(qformer(garbage, torch.tensor([1.0, 5 / 9])), out)


def test_qnllb_self_attention_starts_from_the_nllb_encoder(tiny_nllb):
    from transformers import M2M100ForConditionalGeneration

    qformer = build_qformer("nllb", source=tiny_nllb, num_queries=3)
    encoder = M2M100ForConditionalGeneration.from_pretrained(tiny_nllb).get_encoder()
    assert qformer.initialised_layers == len(encoder.layers) == 1
    torch.testing.assert_close(
        qformer.layers[0].self_attn.q_proj.weight, encoder.layers[0].self_attn.q_proj.weight
    )
    assert not qformer.layers[0].self_attn.is_causal


def test_kd_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    loss_fn = ZeroSTKDLoss(query_dim=6, text_dim=4, proj_dim=5, beta=10.0)
    queries, tokens = torch.randn(2, 3, 6), torch.randn(2, 4, 4)
    lens = torch.tensor([1.0, 0.5])
    loss, parts = loss_fn(queries, tokens, lens)

    def proj(layer, x):
        y = torch.tanh(x @ layer.linear.weight.T + layer.linear.bias)
        return y / y.norm()

    total_fine = total_global = 0.0
    for b, m in enumerate((4, 2)):
        q = [proj(loss_fn.query_proj, queries[b, i]) for i in range(3)]
        t = [proj(loss_fn.text_proj, tokens[b, j]) for j in range(m)]
        total_fine += sum(1 - max((qi @ tj).item() for tj in t) for qi in q)
        qm = proj(loss_fn.query_proj, queries[b].mean(0))
        tm = proj(loss_fn.text_proj, tokens[b, :m].mean(0))
        total_global += 1 - (qm @ tm).item()
    expected = 10.0 * (total_fine + total_global) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert parts["fine"].item() == pytest.approx(total_fine / 2, rel=1e-5)
    padded = tokens.clone()
    padded[1, 2:] = 50.0
    assert loss_fn(queries, padded, lens)[0].item() == pytest.approx(loss.item(), rel=1e-6)


def test_kd_projection_shared_or_none():
    torch.manual_seed(0)
    queries, tokens = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    shared = ZeroSTKDLoss(4, 4, projection="shared")
    assert shared.query_proj is shared.text_proj
    assert sum(p.numel() for p in shared.parameters()) == 4 * 4 + 4
    plain = ZeroSTKDLoss(4, 4, projection="none", beta=1.0)
    assert list(plain.parameters()) == []
    _, parts = plain(queries, tokens)
    q, t = F.normalize(queries, dim=-1), F.normalize(tokens, dim=-1)
    fine = (1 - (q @ t.transpose(1, 2)).max(dim=-1).values).sum(dim=1).mean()
    assert parts["fine"].item() == pytest.approx(fine.item(), rel=1e-5)
    with pytest.raises(ValueError, match="as wide as the tokens"):
        ZeroSTKDLoss(6, 4, projection="none")


class _Counting:
    """A teacher that counts the transcripts it encodes."""

    def __init__(self, teacher):
        self.teacher, self.texts = teacher, []
        self.teacher_id, self.output_dim = teacher.teacher_id, teacher.output_dim

    def encode(self, texts, langs):
        self.texts.extend(texts)
        return self.teacher.encode(texts, langs)


def test_token_cache_is_built_once_and_reused(teacher, corpus, tmp_path):
    items = {uid: d["transcript"] for uid, d in corpus.items()}
    langs = {uid: d["language"] for uid, d in corpus.items()}
    folder = str(tmp_path / teacher.key)
    first = _Counting(teacher)
    cache = TokenEmbeddingCache.build(folder, items, first, langs, chunk_size=3)
    assert cache.encoded == 4 and len(first.texts) == 4
    again = _Counting(teacher)
    cache = TokenEmbeddingCache.build(folder, items, again, langs)
    assert cache.encoded == 0 and again.texts == []
    direct = teacher.encode([items["fr1"]], ["fra_Latn"])[0]
    np.testing.assert_allclose(cache["fr1"].numpy(), direct, atol=1e-2)  # float16 storage
    items["fr1"] = "le chat dort"  # one changed transcript: only it is encoded again
    changed = _Counting(teacher)
    cache = TokenEmbeddingCache.build(folder, items, changed, langs)
    assert changed.texts == ["le chat dort"]
    cache.verify(items, langs)
    batch, lens = TokenEmbeddingCache.open(folder).get_batch(["fr1", "en1"])
    assert batch.shape[0] == 2 and lens.max() == 1.0


@pytest.mark.parametrize("model", ["whisper", "wav2vec2"])
def test_adapters_start_as_identity_and_only_they_learn(model, request):
    torch.manual_seed(0)
    encoder = AdaptedSpeechEncoder(request.getfixturevalue(f"tiny_{model}"), 16, bottleneck=4)
    wavs, lens = torch.randn(2, 12000) * 0.1, torch.tensor([1.0, 0.6])
    frames, frame_lens = encoder(wavs, lens)
    plain, _ = encoder.encoder(wavs, lens)
    torch.testing.assert_close(frames, encoder.projection(plain))
    assert encoder.adapters.num_sites == 2 * 2  # two per layer
    frames.square().mean().backward()
    learned = {n.split(".")[0] for n, p in encoder.named_parameters() if p.grad is not None}
    assert learned == {"adapters", "projection"}
    assert all(p.grad is not None for p in encoder.adapters.parameters())
    encoder.train()
    assert not encoder.encoder.training


def _brain(step, encoder, qformer, extra, save, epochs, hparams=None):
    counter = sb.utils.epoch_loop.EpochCounter(epochs)
    checkpointer = AtomicCheckpointer(str(save), {"counter": counter})
    return ZeroSTBrain(
        modules={"encoder": encoder, "qformer": qformer, **extra},
        hparams={
            "zerost_step": step,
            "epoch_counter": counter,
            "encoder_opt_class": lambda p: torch.optim.Adam(p, lr=3e-3),
            "head_opt_class": lambda p: torch.optim.Adam(p, lr=3e-3),
            "train_logger": sb.utils.train_logger.FileTrainLogger(str(save) + ".log"),
            "label_smoothing": 0.0,
            **(hparams or {}),
        },
        run_opts={"device": "cpu"},
        checkpointer=checkpointer,
    )


@pytest.mark.slow
def test_kd_then_nll_learn_resume_and_translate(tiny_whisper, pretrained_nllb, corpus, tmp_path):
    teacher = NLLBTokenEncoder(pretrained_nllb)
    items = {uid: d["transcript"] for uid, d in corpus.items()}
    langs = {uid: d["language"] for uid, d in corpus.items()}
    cache = TokenEmbeddingCache.build(str(tmp_path / "cache"), items, teacher, langs)
    loader = {"batch_size": 4}

    def parts(stages=("kd",)):
        torch.manual_seed(0)
        encoder = AdaptedSpeechEncoder(tiny_whisper, 32, bottleneck=8, stages=stages)
        return encoder, build_qformer("simple", dim=32, num_queries=6)

    # step 1: KD
    data = add_zerost_pipelines(DynamicItemDataset(dict(corpus)), token_cache=cache)
    encoder, qformer = parts()
    kd_loss = ZeroSTKDLoss(32, teacher.output_dim, beta=10.0)
    brain = _brain("kd", encoder, qformer, {"kd_loss": kd_loss}, tmp_path / "kd", 6)
    before = brain.evaluate(data, test_loader_kwargs=loader)
    brain.fit(brain.hparams.epoch_counter, data, data, loader, loader)
    after = brain.evaluate(data, min_key="loss", test_loader_kwargs=loader)
    assert after < 0.9 * before, (before, after)
    head_steps = optimizer_steps(brain.optimizers_dict["head"])
    assert head_steps == 6

    # resume: fresh modules take the saved weights and optimizer states
    encoder2, qformer2 = parts()
    resumed = _brain(
        "kd",
        encoder2,
        qformer2,
        {"kd_loss": ZeroSTKDLoss(32, teacher.output_dim)},
        tmp_path / "kd",
        6,
    )
    resumed.on_fit_start()
    assert optimizer_steps(resumed.optimizers_dict["head"]) == head_steps
    assert resumed.hparams.epoch_counter.current == 6
    kd_ckpt = resumed.checkpointer.find_checkpoint(min_key="loss").path
    torch.testing.assert_close(qformer2.queries, qformer.queries)

    # step 2: NLL from the KD checkpoint, a second adapter stage in sequence
    decoder = Seq2SeqDecoder(pretrained_nllb, target_lang="eng_Latn", freeze=True)
    data = add_zerost_pipelines(DynamicItemDataset(dict(corpus)), decoder=decoder)
    encoder3, qformer3 = parts(stages=("kd", "nll"))
    encoder3.adapters.set_trainable(["nll"])
    nll = _brain(
        "nll",
        encoder3,
        qformer3,
        {"decoder": decoder},
        tmp_path / "nll",
        15,
        {"kd_checkpoint": str(kd_ckpt)},
    )
    torch.testing.assert_close(qformer3.queries, qformer.queries)
    frozen = {k: v.clone() for k, v in encoder3.adapters.stages["kd"].state_dict().items()}
    decoder_before = {k: v.clone() for k, v in decoder.state_dict().items()}
    before = nll.evaluate(data, test_loader_kwargs=loader)
    nll.fit(nll.hparams.epoch_counter, data, data, loader, loader)
    after = nll.evaluate(data, min_key="loss", test_loader_kwargs=loader)
    assert after < 0.95 * before, (before, after)
    # KD alone already brings the decoder closer to the transcripts than a random start
    encoder4, qformer4 = parts(stages=("kd", "nll"))
    blank = _brain("nll", encoder4, qformer4, {"decoder": decoder}, tmp_path / "blank", 1)
    blank_loss = blank.evaluate(data, test_loader_kwargs=loader)
    print(f"NLL: random start {blank_loss:.4f}, KD start {before:.4f}, after NLL {after:.4f}")
    assert before < blank_loss, (before, blank_loss)
    for k, v in encoder3.adapters.stages["kd"].state_dict().items():
        torch.testing.assert_close(v, frozen[k])
    for k, v in decoder.state_dict().items():
        torch.testing.assert_close(v, decoder_before[k])

    wavs = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(sf.read(d["wav"])[0], dtype=torch.float32) for d in corpus.values()],
        batch_first=True,
    )
    hyps = translate(
        encoder3.eval(),
        qformer3.eval(),
        decoder,
        wavs,
        torch.ones(4),
        "ita_Latn",
        beam_size=2,
        max_new_tokens=8,
    )
    # the Q-Former's queries decoded with Italian forced first, by the decoder itself
    decoder.set_target_lang("ita_Latn")
    queries = qformer3(*encoder3(wavs, torch.ones(4)))
    ids = decoder.generate_ids(queries, torch.ones(4), 2, 1.0, 8)
    assert ids[:, 1].eq(decoder.language_id("ita_Latn")).all()
    assert hyps == decoder.decode(ids) and all(hyps), hyps


# -- which parameters each KD term trains --------------------------------------------------

KD_TERMS = ("fine", "global")


def _only(term, monkeypatch):
    """Make ``ZeroSTKDLoss`` compute one of its two terms (the other is 0)."""
    import sense.zerost.losses as losses

    if term == "fine":
        monkeypatch.setattr(
            losses, "cosine_distance", lambda a, b, reduction: a.new_zeros(a.shape[0])
        )
    else:
        monkeypatch.setattr(losses, "fine_grained_kd", lambda q, t, m, r: q.new_zeros(q.shape[0]))


def _reference_kd_terms(weights, queries, tokens, counts):
    """Eq. 1-5 in float64, written from the paper: ``{"fine": [B], "global": [B]}``.

    ``weights``: the query and text projections' ``(W, b)``; ``counts``: real tokens.
    """

    def proj(w, b, x):
        y = torch.tanh(x @ w.T + b)
        return y / y.norm(dim=-1, keepdim=True)

    (wq, bq), (wt, bt) = weights
    fine, glob = [], []
    for b, m in enumerate(counts):
        q, t = proj(wq, bq, queries[b]), proj(wt, bt, tokens[b, :m])
        fine.append((1 - (q @ t.T).max(dim=1).values).sum())
        qm, tm = proj(wq, bq, queries[b].mean(0)), proj(wt, bt, tokens[b, :m].mean(0))
        glob.append(1 - qm @ tm)
    return {"fine": torch.stack(fine), "global": torch.stack(glob)}


@pytest.mark.parametrize("term", KD_TERMS)
def test_each_kd_term_has_the_gradients_of_the_papers_equation(term, monkeypatch):
    """Gradients of each term against a float64 re-implementation of Eq. 1-5.

    The queries and both projections get the gradient the equation gives;
    padding tokens none.
    """
    torch.manual_seed(0)
    loss_fn = ZeroSTKDLoss(query_dim=6, text_dim=4, proj_dim=5, beta=10.0)
    queries = torch.randn(2, 3, 6, requires_grad=True)
    tokens = torch.randn(2, 4, 4, requires_grad=True)
    _only(term, monkeypatch)
    loss, _ = loss_fn(queries, tokens, torch.tensor([1.0, 0.5]))
    loss.backward()
    params = [loss_fn.query_proj.linear, loss_fn.text_proj.linear]
    ours = [queries.grad] + [p.grad for layer in params for p in (layer.weight, layer.bias)]

    leaves = [queries.detach().double().requires_grad_()]
    weights = [
        tuple(p.detach().double().requires_grad_() for p in (layer.weight, layer.bias))
        for layer in params
    ]
    leaves += [p for pair in weights for p in pair]
    expected = 10.0 * _reference_kd_terms(weights, leaves[0], tokens.double(), (4, 2))[term]
    assert loss.item() == pytest.approx(expected.mean().item(), rel=1e-5)
    expected.mean().backward()
    for got, leaf in zip(ours, leaves):
        assert got is not None and got.abs().sum() > 0
        torch.testing.assert_close(got.double(), leaf.grad, rtol=1e-4, atol=1e-6)
    assert tokens.grad[1, 2:].eq(0).all() and tokens.grad[:, :2].abs().sum() > 0


@pytest.mark.parametrize("term", KD_TERMS)
def test_each_kd_term_trains_the_adapters_qformer_and_projections_only(
    term, tiny_whisper, tiny_nllb, tmp_path, monkeypatch
):
    """ZeroSTBrain's KD step: each term reaches every trainable tensor, none of the frozen."""
    from speechbrain.dataio.batch import PaddedBatch

    torch.manual_seed(0)
    encoder = AdaptedSpeechEncoder(tiny_whisper, 32, bottleneck=4)
    with torch.no_grad():  # as after some training: adapters no longer the identity
        for stage in encoder.adapters.stages.values():
            for adapter in stage:
                adapter.up.weight.normal_(0, 0.1)
    qformer = build_qformer("simple", dim=32, num_queries=4)
    kd_loss = ZeroSTKDLoss(32, 16)
    decoder = Seq2SeqDecoder(tiny_nllb, target_lang="eng_Latn")
    extra = {"kd_loss": kd_loss, "decoder": decoder}
    brain = _brain("kd", encoder, qformer, extra, tmp_path / "kd", 1)
    brain.init_optimizers()
    batch = PaddedBatch(
        [
            {"id": "a", "sig": torch.randn(8000) * 0.1, "teacher": torch.randn(5, 16)},
            {"id": "b", "sig": torch.randn(6000) * 0.1, "teacher": torch.randn(3, 16)},
        ]
    )
    _only(term, monkeypatch)
    brain.on_stage_start(sb.Stage.TRAIN)
    loss = brain.compute_objectives(
        brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN
    )
    loss.backward()
    named = {
        f"{name}.{p_name}": p
        for name, module in extra.items() | {"encoder": encoder, "qformer": qformer}.items()
        for p_name, p in module.named_parameters()
    }
    frozen = {n for n in named if n.startswith(("encoder.encoder.", "decoder."))}
    assert frozen and all(not named[n].requires_grad and named[n].grad is None for n in frozen)
    trained = set(named) - frozen
    assert {n.split(".")[0] for n in trained} == {"encoder", "qformer", "kd_loss"}
    assert {n for n in trained if named[n].grad is None or not named[n].grad.any()} == set()
    optimized = {
        id(p)
        for opt in brain.optimizers_dict.values()
        for g in opt.param_groups
        for p in g["params"]
    }
    assert optimized == {id(named[n]) for n in trained}


def test_zerost_beam_sizes_reach_transformers_generate(tiny_whisper, tiny_nllb, tmp_path):
    """ZeroST searches with the folder's beam size, or the one asked for, in the language asked."""
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    from sense.zerost.evaluation import nllb_translate_texts
    from sense.zerost.export import export_zerost
    from sense.zerost.inference import ZeroSTTranslator

    torch.manual_seed(0)
    decoder = Seq2SeqDecoder(tiny_nllb, "fra_Latn")
    encoder = AdaptedSpeechEncoder(tiny_whisper, decoder.d_model, bottleneck=4)
    qformer = build_qformer("simple", dim=decoder.d_model, num_queries=3)
    folder = export_zerost(
        str(tmp_path / "zerost"), encoder, qformer, decoder, beam_size=3, max_new_tokens=2
    )
    model = ZeroSTTranslator.from_hparams(source=folder, device="cpu")
    text_model = M2M100ForConditionalGeneration.from_pretrained(tiny_nllb)
    tokenizer = AutoTokenizer.from_pretrained(tiny_nllb)
    calls = []
    generate = M2M100ForConditionalGeneration.generate

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return generate(self, *args, **kwargs)

    wav = torch.randn(16000) * 0.1
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(M2M100ForConditionalGeneration, "generate", spy)
        model.translate_batch(wav)
        model.translate_batch(wav, beam_size=2, target_lang="deu_Latn")
        translate(
            encoder.eval(), qformer.eval(), decoder, wav[None], torch.ones(1), "ita_Latn", 4, 2
        )
        nllb_translate_texts(text_model, tokenizer, ["le chat"], "fra_Latn", "eng_Latn", 5, 1, 2)
    langs = ["fra_Latn", "deu_Latn", "ita_Latn", "eng_Latn"]
    assert [(c["num_beams"], c["forced_bos_token_id"]) for c in calls] == [
        (beams, tokenizer.convert_tokens_to_ids(lang)) for beams, lang in zip((3, 2, 4, 5), langs)
    ]
