"""The sdpa and flex paths of w2v-BERT's relative-key attention equal transformers' eager one."""

import pytest
import torch

from sense.lobes.attention import (
    ATTENTION_PATHS,
    EAGER,
    FLEX,
    SDPA,
    SdpaRelativeKeyAttention,
    distance_index,
)
from sense.lobes.speech import HFSpeechEncoder
from sense.testing.tiny import build_tiny_w2v_bert

# w2v-BERT 2.0's relative-key range; utterances longer than LEFT + 1 frames
# reach the clamp on both sides.
LEFT, RIGHT = 64, 8
SAMPLES = (32000, 20000, 9000)  # 99, 62 and 27 frames
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w2v_bert_rel"))
    return build_tiny_w2v_bert(path, left_positions=LEFT, right_positions=RIGHT)


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    wavs = torch.zeros(len(SAMPLES), max(SAMPLES))
    for row, samples in enumerate(SAMPLES):
        wavs[row, :samples] = torch.randn(samples)
    return wavs, torch.tensor(SAMPLES, dtype=torch.float) / max(SAMPLES)


def _encoder(path, attention):
    return HFSpeechEncoder(path, attention=attention).eval()


def _valid(frames, frame_lens):
    """The real frames of each utterance, concatenated."""
    counts = (frame_lens * frames.shape[1]).round().long()
    return torch.cat([frames[row, :n] for row, n in enumerate(counts.tolist())])


def test_tiny_model_uses_relative_keys(tiny_path):
    config = _encoder(tiny_path, EAGER).model.config
    assert config.position_embeddings_type == "relative_key"
    assert (config.left_max_position_embeddings, config.right_max_position_embeddings) == (
        LEFT,
        RIGHT,
    )


def test_sdpa_swaps_the_class_and_keeps_the_state_dict(tiny_path):
    eager, sdpa = _encoder(tiny_path, EAGER), _encoder(tiny_path, SDPA)
    assert isinstance(sdpa.model.encoder.layers[0].self_attn, SdpaRelativeKeyAttention)
    eager_state, sdpa_state = eager.state_dict(), sdpa.state_dict()
    assert eager_state.keys() == sdpa_state.keys()
    assert all(torch.equal(eager_state[k], sdpa_state[k]) for k in eager_state)


def test_unknown_attention_is_refused(tiny_path):
    with pytest.raises(ValueError, match="eager, sdpa, flex"):
        HFSpeechEncoder(tiny_path, attention="flash")


def test_distance_index_matches_transformers_clamp():
    index = distance_index(100, LEFT, RIGHT)
    assert index[0, 0] == LEFT and index[99, 0] == 0 and index[0, 99] == LEFT + RIGHT
    assert index[70, 60] == LEFT - 10 and index[60, 67] == LEFT + 7


@pytest.mark.parametrize("attention", [SDPA, FLEX])
def test_padded_batch_equals_eager(tiny_path, batch, attention):
    wavs, wav_lens = batch
    with torch.inference_mode():
        expected, expected_lens = _encoder(tiny_path, EAGER)(wavs, wav_lens)
        frames, frame_lens = _encoder(tiny_path, attention)(wavs, wav_lens)
    assert torch.equal(frame_lens, expected_lens)
    torch.testing.assert_close(
        _valid(frames, frame_lens), _valid(expected, expected_lens), rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize("attention", ATTENTION_PATHS)
def test_padding_changes_nothing(tiny_path, batch, attention):
    wavs, wav_lens = batch
    encoder = _encoder(tiny_path, attention)
    with torch.inference_mode():
        frames, frame_lens = encoder(wavs, wav_lens)
        for row, samples in enumerate(SAMPLES):
            alone, _ = encoder(wavs[row : row + 1, :samples], torch.ones(1))
            real = alone.shape[1]
            torch.testing.assert_close(frames[row, :real], alone[0], rtol=0, atol=TOLERANCE)


def _gradients(encoder, wavs, wav_lens):
    encoder.train()  # the same dropout masks in both: no attention dropout, same seed
    torch.manual_seed(0)
    frames, frame_lens = encoder(wavs, wav_lens)
    weights = torch.linspace(-1, 1, frames.shape[-1])
    (_valid(frames, frame_lens) * weights).sum().backward()
    return {name: p.grad for name, p in encoder.named_parameters() if p.grad is not None}


def test_sdpa_gradients_equal_eager(tiny_path, batch):
    wavs, wav_lens = batch
    expected = _gradients(_encoder(tiny_path, EAGER), wavs, wav_lens)
    got = _gradients(_encoder(tiny_path, SDPA), wavs, wav_lens)
    assert got.keys() == expected.keys()
    assert any("distance_embedding" in name for name in got)
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=TOLERANCE, msg=name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="flex attention's backward needs a GPU")
def test_flex_gradients_equal_eager_on_gpu(tiny_path, batch):
    wavs, wav_lens = (t.cuda() for t in batch)
    expected = _gradients(_encoder(tiny_path, EAGER).cuda(), wavs, wav_lens)
    got = _gradients(_encoder(tiny_path, FLEX).cuda(), wavs, wav_lens)
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-4, msg=name)


def test_attention_benchmark_counts_and_renders_the_three_paths():
    from benchmarks import attention, report

    frames, heads, head_dim = 1500, 16, 64
    eager, sdpa, flex = (
        attention.largest_intermediate_bytes(path, frames, heads, head_dim)
        for path in (EAGER, SDPA, FLEX)
    )
    assert eager == frames * frames * head_dim * 4  # the [T, T, d] distance embeddings
    assert sdpa == heads * frames * frames * 4 and flex == heads * frames * 73 * 4
    rows = [
        {"frames": frames, "path": p, "largest_intermediate_bytes": 1, "step_peak_bytes": None}
        | {"median_s": 0.5}
        for p in (EAGER, SDPA)
    ] + [{"frames": frames, "path": FLEX, "largest_intermediate_bytes": 1, "error": "E"}]
    rtf = [
        {"seconds": 10, "path": p, "precision": "fp32", "median_s": 2.0, "rtf": 0.2}
        | {"cpu_s": 3.0, "threads": 2, "cpu_rtf": 0.15}
        for p in (EAGER, SDPA)
    ] + [{"seconds": 60, "path": FLEX, "precision": "bf16", "error": "E"}]
    text = "\n".join(
        report._attention({"method": "m", "rounds": 1, "layer_memory": rows, "rtf": rtf})
    )
    assert "| 1500 | flex | 0.0 MiB | not run: E |" in text
    assert "| 10 s | sdpa | fp32 | 2.00 s | 0.200 | 0.150 |" in text
    assert "| 60 s | flex | bf16 | not run: E | | |" in text
