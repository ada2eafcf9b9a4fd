"""The GPU path: the recipe in bf16 and fp16, NCCL, half casts, exact search under TF32.

Marked ``cuda``: skipped where torch sees no GPU (CI), run on a GPU with
``pytest -m cuda``.
"""

import os
import re

import pytest
import torch
from cv_fixture import build_common_voice, recipe_args, run_recipe

from sense.lobes.speech import HFSpeechEncoder
from sense.lobes.text import TeacherSpec
from sense.nnet.pooling import AttentivePooling
from sense.retrieval import search, target_ranks
from sense.teacher_cache import TeacherCache

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cv"))
    build_common_voice(root)
    return root


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_recipe_trains_on_the_gpu(precision, cv, tiny_w2v_bert, tiny_xlmr, tmp_path):
    out = str(tmp_path / precision)
    args = recipe_args(
        cv,
        out,
        tiny_w2v_bert,
        tiny_xlmr,
        "--number_of_epochs=2",
        "--device=cuda",
        f"--precision={precision}",
    )
    proc = run_recipe(args, threads=None)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert re.search(r"Peak device memory after the first step: [0-9.]+ GiB", log), log[-3000:]
    from sense.inference import SENSE

    model = SENSE.from_hparams(
        source=os.path.join(out, "model"), device="cuda", precision=precision
    )
    wav = os.path.join(out, "data", "wavs", "fr", "common_voice_fr_1000.flac")
    emb = model.encode_file(wav)
    assert emb.shape == (32,) and torch.isfinite(emb).all()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_recipe_on_two_gpus_with_nccl(cv, tiny_w2v_bert, tiny_xlmr, tmp_path):
    out = str(tmp_path / "nccl")
    args = recipe_args(
        cv,
        out,
        tiny_w2v_bert,
        tiny_xlmr,
        "--number_of_epochs=2",
        "--device=cuda",
        "--precision=bf16",
    )
    proc = run_recipe(args, nproc=2, threads=None)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert os.path.isfile(os.path.join(out, "model", "hyperparams.yaml"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("model", ["w2v_bert", "wav2vec2"])
def test_half_cast_encoder_and_head_on_the_gpu(model, dtype, request):
    encoder = HFSpeechEncoder(request.getfixturevalue(f"tiny_{model}")).eval().cuda()
    pooling = AttentivePooling(encoder.output_dim, output_dim=16, batch_norm=True).eval().cuda()
    wavs = (torch.randn(2, 16000) * 0.1).cuda()
    lens = torch.tensor([1.0, 0.6]).cuda()
    with torch.no_grad():
        ref = pooling(*encoder(wavs, lens))[0]
        encoder.to(dtype)
        pooling.to(dtype)
        out = pooling(*encoder(wavs, lens))[0]
    assert out.dtype == dtype
    assert (out.float() - ref).abs().max() / ref.abs().max() < 0.1


def test_search_is_exact_with_tf32_on():
    """Near ties that TF32 (10-bit mantissa) gets wrong and float32 gets right."""
    g = torch.Generator().manual_seed(0)
    database = torch.randn(4096, 256, generator=g)
    queries = database[:256] + 1e-4 * torch.randn(256, 256, generator=g)
    database[256:512] = database[:256] + 5e-4 * torch.randn(256, 256, generator=g)
    scores = queries.double() @ database.double().T
    top2 = scores.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 5e-4  # beyond float32 rounding at |score| ~ 256
    exact = scores.argmax(dim=1)
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        tf32 = (queries.cuda() @ database.cuda().T).argmax(dim=1).cpu()
        _, found = search(queries.cuda(), database.cuda(), k=1)
        ranks = target_ranks(queries.cuda(), database.cuda(), exact.cuda())
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    assert int(clear.sum()) > 200
    assert int((tf32 != exact)[clear].sum()) > 10  # the data does catch TF32
    assert torch.equal(found[:, 0].cpu()[clear], exact[clear])
    assert bool((ranks.cpu()[clear] == 1).all())


def test_teacher_cache_on_the_gpu_matches_the_cpu(tiny_xlmr, tmp_path):
    items = {f"u{i}": f"phrase numéro {i} " + "la " * (i % 5) for i in range(50)}
    spec = TeacherSpec(tiny_xlmr, kind="hf", pooling="cls", dtype="float16")
    gpu = TeacherCache.build(str(tmp_path / "gpu"), items, spec.load("cuda"), progress=False)
    cpu = TeacherCache.build(str(tmp_path / "cpu"), items, spec.load("cpu"), progress=False)
    torch.testing.assert_close(
        gpu.get_batch(list(items)), cpu.get_batch(list(items)), atol=5e-3, rtol=0
    )
