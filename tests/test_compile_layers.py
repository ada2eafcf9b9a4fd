"""Compiled encoder layers (``EncoderOptions(compile_layers=True)``).

What they must keep: the uncompiled encoder's outputs, frame lengths and
gradients, and one compilation per length bucket whatever the batch sizes of
duration batching. The padding to a bucket must change nothing by itself.
"""

from __future__ import annotations

import pytest
import torch

from sense.demo.tiny import build_tiny_w2v_bert
from sense.lobes.options import EncoderOptions
from sense.lobes.speech import HFSpeechEncoder

# The conv module's dropout has no config override: it is zeroed on the modules.
NO_DROPOUT = dict(
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0
)
BUCKET = 32
SAMPLES_PER_FRAME = 320  # 16 kHz, 50 frames/s
# (batch size, samples): 49, 61, 74, 49 and 99 frames, in the buckets of 64, 64,
# 96, 64 and 128 frames: three shapes to compile, batch sizes 2 to 4 included.
BATCHES = ((2, 16000), (2, 20000), (3, 24000), (4, 16000), (2, 32000))
EXPECTED_COMPILATIONS = 3


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_w2v_bert(str(tmp_path_factory.mktemp("tiny_w2v_bert")))


@pytest.fixture(scope="module")
def inductor_cache(tmp_path_factory):
    """This module's own inductor cache: no artifact of an earlier run decides a shape."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor")))
        yield


@pytest.fixture
def fresh_inductor_cache(inductor_cache):
    """Dynamo's caches emptied before and after (kernels compiled in this module are reused)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _encoders(folder, output_all_hiddens=False, **switches):
    reference, compiled = (
        HFSpeechEncoder(
            folder,
            output_all_hiddens=output_all_hiddens,
            options=EncoderOptions(compile_layers=compile_layers, **NO_DROPOUT, **switches),
        )
        for compile_layers in (False, True)
    )
    compiled.load_state_dict(reference.state_dict())
    for module in (*reference.modules(), *compiled.modules()):
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return reference.train(), compiled.train()


def _step(encoder, wavs, lens, weights):
    """Frames, frame lengths and every parameter's gradient of a random projection."""
    encoder.zero_grad()
    frames, frame_lens = encoder(wavs, lens)
    (frames * weights[..., : frames.shape[-2], :]).sum().backward()
    grads = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
    return frames.detach(), frame_lens, grads


def _assert_same_step(reference, compiled, batch, samples, seed, device="cpu", tolerance=1e-5):
    generator = torch.Generator().manual_seed(seed)
    wavs = torch.randn(batch, samples, generator=generator).to(device)
    lens = torch.linspace(1.0, 0.6, batch).to(device)
    stack = (reference.num_layers + 1,) if reference.output_all_hiddens else ()
    frames = samples // SAMPLES_PER_FRAME
    weights = torch.randn(*stack, batch, frames, reference.output_dim, generator=generator)
    weights = weights.to(device)
    frames, frame_lens, grads = _step(reference, wavs, lens, weights)
    got_frames, got_lens, got_grads = _step(compiled, wavs, lens, weights)
    assert got_frames.shape == frames.shape
    torch.testing.assert_close(got_frames, frames, rtol=0, atol=tolerance)
    torch.testing.assert_close(got_lens, frame_lens, rtol=0, atol=0)
    assert got_grads.keys() == grads.keys()
    for name, grad in grads.items():
        # linear_k.bias has a zero gradient in exact arithmetic: only its rounding differs
        scale = max(grad.abs().max().item(), 1e-3 if name.endswith("linear_k.bias") else 0.0)
        torch.testing.assert_close(got_grads[name], grad, rtol=0, atol=tolerance * scale, msg=name)


def test_bucket_padding_changes_nothing(tiny_folder):
    encoder = HFSpeechEncoder(tiny_folder, output_all_hiddens=True).eval()
    wavs, lens = torch.randn(3, 24000), torch.tensor([1.0, 0.8, 0.5])  # 74 frames
    with torch.no_grad():
        expected, expected_lens = encoder(wavs, lens)
        encoder.length_bucket = BUCKET  # the layers see 96 frames, 22 of them padding
        padded, padded_lens = encoder(wavs, lens)
    assert padded.shape == expected.shape == (3, 3, 74, 32)
    torch.testing.assert_close(padded, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(padded_lens, expected_lens, rtol=0, atol=0)


def test_bucket_reaches_the_layers(tiny_folder):
    encoder = HFSpeechEncoder(tiny_folder).eval()
    seen = []
    encoder.model.encoder.layers[0].register_forward_pre_hook(
        lambda module, args: seen.append(args[0].shape[1])
    )
    encoder.length_bucket = BUCKET
    with torch.no_grad():
        for samples in (16000, 20000, 24000, 32000):
            encoder(torch.randn(1, samples))
    assert seen == [64, 64, 96, 128]


def test_options_refuse_a_bad_bucket():
    with pytest.raises(ValueError, match="length_bucket must be a whole number of frames >= 0"):
        EncoderOptions(length_bucket=-32)
    with pytest.raises(ValueError, match="got 0.5"):
        EncoderOptions(length_bucket=0.5)


def test_compiled_layers_equal_eager_and_compile_once_per_bucket(tiny_folder, fresh_inductor_cache):
    reference, compiled = _encoders(tiny_folder)
    assert compiled.length_bucket == BUCKET
    assert list(compiled.state_dict()) == list(reference.state_dict())
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for seed, (batch, samples) in enumerate(BATCHES):
        _assert_same_step(reference, compiled, batch, samples, seed)
    compilations = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs
    assert compilations == EXPECTED_COMPILATIONS


def test_compiled_layers_with_all_hiddens(tiny_folder, fresh_inductor_cache):
    reference, compiled = _encoders(tiny_folder, output_all_hiddens=True)
    _assert_same_step(reference, compiled, 2, 24000, seed=7)


def test_compiled_layers_train_with_dropout_at_several_batch_sizes(
    tiny_folder, fresh_inductor_cache
):
    """Dropout as the recipes train (the other tests zero it to compare with eager)."""
    options = EncoderOptions(compile_layers=True, hidden_dropout=0.1, attention_dropout=0.1)
    encoder = HFSpeechEncoder(tiny_folder, options=options).train()
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for batch, samples in ((2, 16000), (3, 16000), (4, 24000)):
        frames, _ = encoder(torch.randn(batch, samples), torch.linspace(1.0, 0.7, batch))
        frames.sum().backward()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 2
    assert all(p.grad is not None for p in encoder.model.encoder.layers.parameters())


def test_compiled_layers_refuse_activation_checkpointing():
    with pytest.raises(ValueError, match="compile_layers and gradient_checkpointing cannot"):
        EncoderOptions(compile_layers=True, gradient_checkpointing=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_compiled_layers_equal_eager_on_gpu(tiny_folder, fresh_inductor_cache, attention):
    reference, compiled = _encoders(tiny_folder, attention=attention)
    reference, compiled = reference.cuda(), compiled.cuda()
    for seed, (batch, samples) in enumerate(BATCHES):
        # cuDNN's convolutions run in TF32 by default, in both encoders
        _assert_same_step(reference, compiled, batch, samples, seed, "cuda", tolerance=1e-3)


def test_compile_benchmark_buckets_and_report():
    from benchmarks import compiled_layers, report

    assert compiled_layers.bucket_frames([139, 192, 245, 299]) == [160, 192, 256, 320]
    result = {
        "size": "small",
        "device": "cpu",
        "precision": "fp32",
        "batches": [{"utterances": 4, "longest_frames": 139, "bucket_frames": 160}],
        "audio_seconds": 20.0,
        "length_bucket": 32,
        "frames_computed": {"eager": 556, "compiled": 640, "real": 500},
        "compiled_graphs": 1,
        "first_pass_s": {"eager": 1.5, "compiled": 100.0},
        "pass_median_s": {"eager": 1.4, "compiled": 1.2},
        "pass_cpu_s": {"eager": 2.8, "compiled": 2.4},
        "step_peak_increase_mb": {"eager": 96.0, "compiled": None},
        "speedup": 1.167,
    }
    text = report.render({"compile": [result]})
    assert "the compiled layers compute 640 frames where eager computes 556 (500 real)" in text
    assert "| eager | 1.5 s | 1400.0 ms | 2.80 | 96 |" in text
    assert "| compiled | 100.0 s | 1200.0 ms | 2.40 | n/a |" in text
    assert "Speed-up of the compiled layers: **1.17x**." in text
