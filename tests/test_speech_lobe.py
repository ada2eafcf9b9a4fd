"""HFSpeechEncoder on tiny w2v-BERT 2.0 and XLS-R models loaded from local directories."""

import pytest
import torch
from torch import nn

from sense.features import W2VBertFbank
from sense.lobes.speech import HFSpeechEncoder
from sense.testing.tiny import TINY_HIDDEN, TINY_LAYERS, build_tiny_w2v_bert, build_tiny_wav2vec2

SAMPLE_RATE = 16000
TWO_SECONDS = 2 * SAMPLE_RATE
# 2 s: 198 fbank frames stacked by 2 -> 99 w2v-BERT frames; 320-sample conv stride -> 99 XLS-R frames.
FRAMES_IN_TWO_SECONDS = 99
KINDS = ("w2v_bert", "wav2vec2")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    return {
        "w2v_bert": build_tiny_w2v_bert(str(tmp_path_factory.mktemp("w2v_bert"))),
        "wav2vec2": build_tiny_wav2vec2(str(tmp_path_factory.mktemp("wav2vec2"))),
    }


def waves(*lengths, seed=0):
    """Padded batch of random waveforms and their relative lengths."""
    gen = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    batch = torch.zeros(len(lengths), longest)
    for i, n in enumerate(lengths):
        batch[i, :n] = 0.3 * torch.randn(n, generator=gen)
    return batch, torch.tensor([n / longest for n in lengths])


def frame_counts(frames, frame_lens):
    return torch.round(frame_lens * frames.shape[-2]).long().tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_frame_lengths(model_dirs, kind):
    encoder = HFSpeechEncoder(model_dirs[kind]).eval()
    assert encoder.output_dim == TINY_HIDDEN and encoder.num_layers == TINY_LAYERS
    wavs, lens = waves(TWO_SECONDS, 24000, 8000)
    frames, frame_lens = encoder(wavs, lens)
    assert frames.shape == (3, FRAMES_IN_TWO_SECONDS, TINY_HIDDEN)
    expected = [FRAMES_IN_TWO_SECONDS, 74, 24]
    if kind == "wav2vec2":
        expected = encoder.model._get_feat_extract_output_lengths(
            torch.tensor([32000, 24000, 8000])
        )
        expected = expected.tolist()
    else:
        assert expected == W2VBertFbank.output_frames(torch.tensor([32000, 24000, 8000])).tolist()
    assert frame_counts(frames, frame_lens) == expected
    assert frame_lens[0].item() == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_real_frames_do_not_depend_on_padding(model_dirs, kind):
    encoder = HFSpeechEncoder(model_dirs[kind]).eval()
    wavs, lens = waves(TWO_SECONDS, 13000)
    with torch.no_grad():
        frames, frame_lens = encoder(wavs, lens)
        alone, alone_lens = encoder(wavs[1:, :13000], torch.ones(1))
    n = alone.shape[1]
    assert frame_counts(frames, frame_lens)[1] == n and alone_lens.item() == 1.0
    torch.testing.assert_close(frames[1, :n], alone[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_frozen_encoder_has_no_grads_and_stays_fixed(model_dirs, kind):
    encoder = HFSpeechEncoder(model_dirs[kind], freeze=True)
    head = nn.Linear(TINY_HIDDEN, 4)
    parent = nn.ModuleDict({"encoder": encoder, "head": head}).train()
    assert not encoder.model.training, "a frozen encoder stays in eval mode"
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    optimizer = torch.optim.SGD(parent.parameters(), lr=0.1)
    frames, _ = parent["encoder"](*waves(TWO_SECONDS, 20000))
    assert not frames.requires_grad
    head(frames).square().mean().backward()
    optimizer.step()
    assert head.weight.grad is not None
    assert all(not p.requires_grad and p.grad is None for p in encoder.parameters())
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("kind", KINDS)
def test_unfrozen_encoder_gets_grads(model_dirs, kind):
    encoder = HFSpeechEncoder(model_dirs[kind]).train()
    assert encoder.model.training
    frames, _ = encoder(*waves(TWO_SECONDS, 20000))
    frames.square().mean().backward()
    layer_grads = [p.grad for p in encoder.model.encoder.layers.parameters()]
    assert all(g is not None for g in layer_grads)
    assert any(g.abs().sum() > 0 for g in layer_grads)
    projection = encoder.model.feature_projection.projection.weight
    assert projection.grad is not None and projection.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_freeze_feature_projection(model_dirs, kind):
    encoder = HFSpeechEncoder(model_dirs[kind], freeze_feature_projection=True).train()
    stage = (
        encoder.model.feature_projection if kind == "w2v_bert" else encoder.model.feature_extractor
    )
    frames, _ = encoder(*waves(TWO_SECONDS, 20000))
    frames.square().mean().backward()
    assert all(not p.requires_grad and p.grad is None for p in stage.parameters())
    assert all(p.grad is not None for p in encoder.model.encoder.layers.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_output_layer_and_all_hiddens(model_dirs, kind):
    wavs, lens = waves(TWO_SECONDS, 20000)
    full = HFSpeechEncoder(model_dirs[kind], output_all_hiddens=True).eval()
    last = HFSpeechEncoder(model_dirs[kind]).eval()
    with torch.no_grad():
        hiddens, hidden_lens = full(wavs, lens)
        frames, frame_lens = last(wavs, lens)
    assert hiddens.shape == (TINY_LAYERS + 1, 2, FRAMES_IN_TWO_SECONDS, TINY_HIDDEN)
    torch.testing.assert_close(hiddens[-1], frames)
    torch.testing.assert_close(hidden_lens, frame_lens)
    for layer in range(TINY_LAYERS):
        encoder = HFSpeechEncoder(model_dirs[kind], output_layer=layer).eval()
        assert encoder.num_layers == layer
        with torch.no_grad():
            out, out_lens = encoder(wavs, lens)
        assert out.shape == frames.shape
        torch.testing.assert_close(out, hiddens[layer], atol=1e-5, rtol=0)
        torch.testing.assert_close(out_lens, frame_lens)
    top = HFSpeechEncoder(model_dirs[kind], output_layer=TINY_LAYERS).eval()
    with torch.no_grad():
        torch.testing.assert_close(top(wavs, lens)[0], frames)
    some = HFSpeechEncoder(model_dirs[kind], output_layer=1, output_all_hiddens=True).eval()
    with torch.no_grad():
        assert some(wavs, lens)[0].shape == (2, 2, FRAMES_IN_TWO_SECONDS, TINY_HIDDEN)


def test_output_layer_out_of_range(model_dirs):
    with pytest.raises(ValueError, match=r"output_layer must be in \[0, 2\]"):
        HFSpeechEncoder(model_dirs["w2v_bert"], output_layer=TINY_LAYERS + 1)


def test_all_hiddens_with_every_layer_dropped(model_dirs):
    encoder = HFSpeechEncoder(model_dirs["w2v_bert"], output_all_hiddens=True, layerdrop=1.0)
    encoder.train()
    hiddens, _ = encoder(*waves(TWO_SECONDS, 20000))
    for state in hiddens[1:]:
        torch.testing.assert_close(state, hiddens[0])


def test_spec_augment_only_in_training(model_dirs):
    masked = HFSpeechEncoder(
        model_dirs["w2v_bert"], apply_spec_augment=True, mask_time_prob=0.5, mask_time_length=5
    )
    plain = HFSpeechEncoder(model_dirs["w2v_bert"]).eval()
    wavs, lens = waves(TWO_SECONDS, 20000)
    with torch.no_grad():
        reference, _ = plain(wavs, lens)
        torch.testing.assert_close(masked.eval()(wavs, lens)[0], reference)
        torch.manual_seed(0)
        augmented, _ = masked.train()(wavs, lens)
    assert not torch.allclose(augmented, reference, atol=1e-3)


def _layer_grads(encoder, wavs, lens):
    torch.manual_seed(0)  # same dropout masks in both runs
    frames, _ = encoder(wavs, lens)
    frames.square().mean().backward()
    return [p.grad.clone() for p in encoder.model.encoder.layers.parameters()]


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_checkpointing_gives_the_same_grads(model_dirs, kind):
    wavs, lens = waves(TWO_SECONDS, 20000)
    checkpointed = HFSpeechEncoder(model_dirs[kind], gradient_checkpointing=True).train()
    plain = HFSpeechEncoder(model_dirs[kind]).train()
    assert checkpointed.gradient_checkpointing and not plain.gradient_checkpointing
    for got, expected in zip(
        _layer_grads(checkpointed, wavs, lens), _layer_grads(plain, wavs, lens)
    ):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)


def test_missing_directory_is_named(tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        HFSpeechEncoder(missing)


def test_unknown_hub_id_is_named():
    with pytest.raises(OSError, match="sense-tests/no-such-model"):
        HFSpeechEncoder("sense-tests/no-such-model")


def test_directory_without_config_is_named(tmp_path):
    with pytest.raises(OSError, match=str(tmp_path.name)):
        HFSpeechEncoder(str(tmp_path))


def test_unsupported_model_type(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert' is not supported"):
        HFSpeechEncoder(str(tmp_path))


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_raise(model_dirs, kind):
    encoder = HFSpeechEncoder(model_dirs[kind]).eval()
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        encoder(torch.zeros(TWO_SECONDS), torch.ones(1))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        encoder(torch.zeros(2, TWO_SECONDS), torch.tensor([1.0, 1.5]))
    with pytest.raises(ValueError, match="empty"):
        encoder(torch.zeros(1, 0), torch.ones(1))
    with pytest.raises(ValueError, match="utterance"):
        encoder(torch.zeros(2, TWO_SECONDS), torch.tensor([1.0, 0.005]))


def test_a_sense_model_folder_gives_its_fine_tuned_encoder(model_dirs, tmp_path):
    """Downstream recipes swap encoders by one source: a sense export loads its own weights."""
    from sense.export import export_model
    from sense.nnet.pooling import AttentivePooling

    tuned = HFSpeechEncoder(model_dirs["w2v_bert"])
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.25)
    folder = export_model(str(tmp_path / "model"), tuned, AttentivePooling(tuned.output_dim))
    loaded = HFSpeechEncoder(folder)
    assert loaded.source == str(tmp_path / "model" / "encoder")
    for (name, a), b in zip(tuned.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    plain = HFSpeechEncoder(model_dirs["w2v_bert"])
    assert any(not torch.equal(a, b) for a, b in zip(plain.parameters(), loaded.parameters()))


# --- the options object and the switches by name -------------------------------------


def test_options_object_and_switches_by_name_build_the_same_encoder(model_dirs):
    """``options=EncoderOptions(...)`` and the same switches as keywords (what recipes and
    older model folders write) give one configuration; keywords override the object."""
    from sense.lobes.options import EncoderOptions

    switches = dict(freeze_feature_projection=True, layerdrop=0.3, hidden_dropout=0.2)
    by_object = HFSpeechEncoder(model_dirs["w2v_bert"], options=EncoderOptions(**switches))
    by_name = HFSpeechEncoder(model_dirs["w2v_bert"], **switches)
    assert by_object.options == by_name.options == EncoderOptions(**switches)
    for encoder in (by_object, by_name):
        assert encoder.model.config.layerdrop == 0.3 and encoder.model.config.hidden_dropout == 0.2
        assert not any(p.requires_grad for p in encoder.model.feature_projection.parameters())
    frozen = HFSpeechEncoder(model_dirs["w2v_bert"], options=EncoderOptions(), freeze=True)
    assert frozen.freeze and frozen.options.freeze
    assert not any(p.requires_grad for p in frozen.parameters())


def test_unknown_switch_names_the_options(model_dirs):
    with pytest.raises(TypeError, match="unknown encoder option.*freez.*the options are freeze"):
        HFSpeechEncoder(model_dirs["w2v_bert"], freez=True)
    with pytest.raises(TypeError):
        HFSpeechEncoder(model_dirs["w2v_bert"], None, True)  # only source, save_path positional
