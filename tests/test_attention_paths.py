"""The sdpa and flex paths of w2v-BERT's relative-key attention equal transformers' eager one."""

import math

import pytest
import torch

from sense.lobes.attention import (
    ATTENTION_PATHS,
    EAGER,
    FLEX,
    SDPA,
    SdpaRelativeKeyAttention,
    distance_index,
    key_padding,
    regional_attention,
    regional_from,
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


# CPU inference's regional split of sdpa, forced on at the tests' lengths
REGIONAL = "sdpa-regional"


def _run(encoder, attention, wavs, wav_lens):
    with regional_from(0 if attention == REGIONAL else math.inf):
        return encoder(wavs, wav_lens)


@pytest.mark.parametrize("attention", [SDPA, REGIONAL, FLEX])
def test_padded_batch_equals_eager(tiny_path, batch, attention):
    wavs, wav_lens = batch
    with torch.inference_mode():
        expected, expected_lens = _encoder(tiny_path, EAGER)(wavs, wav_lens)
        frames, frame_lens = _run(
            _encoder(tiny_path, attention.split("-")[0]), attention, wavs, wav_lens
        )
    assert torch.equal(frame_lens, expected_lens)
    torch.testing.assert_close(
        _valid(frames, frame_lens), _valid(expected, expected_lens), rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize("attention", [*ATTENTION_PATHS, REGIONAL])
def test_padding_changes_nothing(tiny_path, batch, attention):
    wavs, wav_lens = batch
    encoder = _encoder(tiny_path, attention.split("-")[0])
    with torch.inference_mode():
        frames, frame_lens = _run(encoder, attention, wavs, wav_lens)
        for row, samples in enumerate(SAMPLES):
            alone, _ = _run(encoder, attention, wavs[row : row + 1, :samples], torch.ones(1))
            real = alone.shape[1]
            torch.testing.assert_close(frames[row, :real], alone[0], rtol=0, atol=TOLERANCE)


def _reference(query, key, value, embeddings, valid, scale):
    """Float64 softmax attention with the gathered relative-key bias (transformers' formula)."""
    q, k, v, e = (t.double() for t in (query, key, value, embeddings))
    batch, heads, length, _ = q.shape
    index = distance_index(length, LEFT, RIGHT).expand(batch, heads, length, length)
    logits = q @ k.transpose(-1, -2) * scale + (q @ e.T).gather(-1, index) * scale
    logits = logits.masked_fill(~valid[:, None, None, :], -math.inf)
    return torch.softmax(logits, -1) @ v


@pytest.mark.parametrize("length", [1, 9, 31, 32, 66, 74, 140])
def test_regional_attention_equals_the_gathered_bias(length):
    """Around every edge: rows with no far-left (i <= 64) or far-right (i >= T - 9) keys,
    one and several band blocks, and utterances padded so that a real row's far-right
    region is all padding."""
    torch.manual_seed(length)
    batch, heads, dim, scale = 3, 2, 8, 0.35
    query, key, value = torch.randn(3, batch, heads, length, dim).unbind(0)
    embeddings = torch.randn(LEFT + RIGHT + 1, dim)
    lengths = torch.tensor([length, max(1, length // 2), max(1, length - RIGHT - 3)])
    valid = torch.arange(length)[None, :] < lengths[:, None]
    mask = key_padding(valid[:, None, None, :], torch.float32)
    got = regional_attention(query, key, value, embeddings, mask, scale, LEFT, RIGHT)
    expected = _reference(query, key, value, embeddings, valid, scale)
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(
            got[row, :, :n].double(), expected[row, :, :n], rtol=0, atol=1e-6
        )
    assert torch.isfinite(got).all()  # padded rows too: the next layer's conv reads them
    unpadded = regional_attention(query, key, value, embeddings, None, scale, LEFT, RIGHT)
    full = _reference(query, key, value, embeddings, torch.ones_like(valid), scale)
    torch.testing.assert_close(unpadded.double(), full, rtol=0, atol=1e-6)


def test_key_padding_reads_the_first_query_row():
    boolean = torch.tensor([[True, True, False], [True, False, False]]).view(2, 1, 1, 3)
    additive = torch.tensor([0.0, 0.0, torch.finfo(torch.float32).min]).view(1, 1, 1, 3)
    inf = -math.inf
    assert key_padding(boolean.expand(2, 1, 3, 3), torch.float32).tolist() == [
        [[[0.0, 0.0, inf]]],
        [[[0.0, inf, inf]]],
    ]
    assert key_padding(additive, torch.float32).tolist() == [[[[0.0, 0.0, inf]]]]
    assert key_padding(None, torch.float32) is None


def test_bfloat16_stays_bfloat16_and_close_to_float64():
    """A bf16 model's attention (fp32 distance embeddings) computes and returns bf16."""
    torch.manual_seed(3)
    batch, heads, length, dim, scale = 2, 3, 80, 8, 0.35
    query, key, value = torch.randn(3, batch, heads, length, dim).unbind(0)
    embeddings = torch.randn(LEFT + RIGHT + 1, dim)
    valid = torch.ones(batch, length, dtype=torch.bool)
    expected = _reference(query, key, value, embeddings, valid, scale)
    half = (t.bfloat16() for t in (query, key, value))
    got = regional_attention(*half, embeddings, None, scale, LEFT, RIGHT)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=0.05)
    padding = key_padding(torch.ones(1, 1, 1, 3, dtype=torch.bool), torch.bfloat16)
    assert padding.dtype == torch.bfloat16 and padding.tolist() == [[[[0.0, 0.0, 0.0]]]]


def test_rows_of_very_different_scales():
    """Each row's softmax is shifted by its own maximum: a row of logits near -3,000 stays exact."""
    torch.manual_seed(4)
    batch, heads, length, dim, scale = 1, 2, 80, 8, 0.35
    query, key, value = torch.randn(3, batch, heads, length, dim).unbind(0)
    query[:, :, ::2] *= 300.0
    embeddings = torch.randn(LEFT + RIGHT + 1, dim)
    valid = torch.ones(batch, length, dtype=torch.bool)
    expected = _reference(query, key, value, embeddings, valid, scale)
    got = regional_attention(query, key, value, embeddings, None, scale, LEFT, RIGHT)
    # float32 logits of about 3,000 carry 3e-4 of rounding
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=2e-4)


def test_attention_dropout_only_in_training(tiny_path):
    """Dropout in training, also under no_grad and from the regional split's lengths; none in eval."""
    module = _encoder(tiny_path, SDPA).model.encoder.layers[0].self_attn
    torch.manual_seed(5)
    query, key, value = torch.randn(3, 1, module.num_heads, 20, module.head_size).unbind(0)
    module.dropout.p = 0.0
    clean = module.eval().attend(query, key, value, None)
    module.dropout.p = 0.5
    torch.testing.assert_close(module.attend(query, key, value, None), clean)
    module.train()
    with torch.no_grad(), regional_from(2):
        first, second = (module.attend(query, key, value, None) for _ in range(2))
    assert not torch.equal(first, second)


def test_relative_key_bias_of_a_bfloat16_query(tiny_path):
    """The module's fp32 distance embeddings meet a bf16 query in bf16 (the gathered bias)."""
    from transformers import Wav2Vec2BertModel

    from sense.lobes.attention import relative_key_bias

    module = Wav2Vec2BertModel.from_pretrained(tiny_path).encoder.layers[0].self_attn
    query = torch.randn(1, module.num_heads, 80, module.head_size)
    bias = relative_key_bias(module, query.bfloat16())
    index = distance_index(80, LEFT, RIGHT)
    table = query.double() @ module.distance_embedding.weight.double().T * module.scaling
    assert bias.dtype == torch.bfloat16
    expected = table[0, :, torch.arange(80)[:, None], index]
    torch.testing.assert_close(bias[0].double(), expected, rtol=0.02, atol=0.02)


def test_add_mask_takes_boolean_and_additive_masks():
    from sense.lobes.attention import _add_mask

    lowest = torch.finfo(torch.float32).min
    boolean = torch.tensor([True, False, True]).view(1, 1, 1, 3)
    assert _add_mask(torch.ones(1, 1, 1, 3), boolean).tolist() == [[[[1.0, lowest, 1.0]]]]
    additive = torch.tensor([0.0, -5.0, -0.5], dtype=torch.float64).view(1, 1, 1, 3)
    assert _add_mask(torch.ones(1, 1, 1, 3), additive).tolist() == [[[[1.0, -4.0, 0.5]]]]
    assert _add_mask(torch.ones(1, 1, 1, 3), additive).dtype == torch.float32
    assert _add_mask(torch.ones(2), None).tolist() == [1.0, 1.0]


def test_the_regional_split_is_for_cpu_inference_only():
    """Training (gradients) and short inputs keep the gathered bias; regional_from restores."""
    import sense.lobes.attention as attention

    query = torch.zeros(1, 1, attention.REGIONAL_MIN_FRAMES, 4)
    assert attention._regional(query, training=False)
    assert not attention._regional(query[:, :, 1:], training=False)
    assert not attention._regional(query, training=True)
    assert not attention._regional(query.requires_grad_(), training=False)
    with torch.no_grad():
        assert attention._regional(query, training=False)
        with regional_from(2):
            assert attention._regional(query[:, :, :2], training=False)
            assert not attention._regional(query[:, :, :1], training=False)
    assert attention.REGIONAL_MIN_FRAMES == 1000


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


def test_flex_on_a_cpu_at_a_second_longer_length(tiny_path):
    """The second length used to recompile with a dynamic length, whose C++ did not compile."""
    flex, eager = _encoder(tiny_path, FLEX), _encoder(tiny_path, EAGER)
    torch.manual_seed(6)
    for samples in (80000, 160000):  # 249 and 499 frames
        wavs = torch.randn(1, samples)
        with torch.no_grad():
            torch.testing.assert_close(flex(wavs)[0], eager(wavs)[0], rtol=0, atol=TOLERANCE)


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
    gathered = attention.largest_intermediate_bytes(attention.GATHERED, frames, heads, head_dim)
    assert eager == frames * frames * head_dim * 4  # the [T, T, d] distance embeddings
    assert gathered == heads * frames * frames * 4 and flex == heads * frames * 73 * 4
    # the band's scores: 47 blocks of 32 queries, 32 + 72 keys each
    assert sdpa == heads * 47 * 32 * 104 * 4
    on_gpu = attention.largest_intermediate_bytes(SDPA, frames, heads, head_dim, device="cuda")
    short = attention.largest_intermediate_bytes(SDPA, 999, heads, head_dim)
    assert on_gpu == gathered and short == heads * 999 * 999 * 4
    rows = [
        {"frames": frames, "path": p, "largest_intermediate_bytes": 1, "step_peak_bytes": None}
        | {"median_s": 0.5}
        for p in (EAGER, SDPA)
    ] + [{"frames": frames, "path": FLEX, "largest_intermediate_bytes": 1, "error": "E"}]
    rtf = [
        {"seconds": 10, "path": p, "precision": "fp32", "median_s": 2.0, "rtf": 0.2}
        | {"cpu_s": 3.0, "threads": 2, "cpu_rtf": 0.15, "floor_rtf": 0.348, "matmul_gflops": 188.2}
        for p in (EAGER, SDPA)
    ] + [{"seconds": 60, "path": FLEX, "precision": "bf16", "error": "E", "floor_rtf": 0.191}]
    text = "\n".join(
        report._attention({"method": "m", "rounds": 1, "layer_memory": rows, "rtf": rtf})
    )
    assert "| 1500 | flex | 0.0 MiB | not run: E |" in text
    assert "| 10 s | sdpa | fp32 | 2.00 s | 0.200 | 0.150 | 0.348 |" in text
    assert "| 60 s | flex | bf16 | not run: E | | | 0.191 |" in text
    assert "on this machine (188 GFLOP/s in fp32): no path can be faster." in text
