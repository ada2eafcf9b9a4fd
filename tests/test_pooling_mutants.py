"""The pooling head's numbers and dtypes, pinned by hand (the mutants of ``sense/nnet/pooling.py``)."""

import pytest
import torch

from sense.nnet.pooling import AttentivePooling, BatchStandardization


def test_a_training_batch_of_two_uses_its_own_statistics():
    # x = 0 and 2: mean 1, biased variance 1 -> (x - 1) / sqrt(1 + eps) with eps 0.25;
    # running stats with momentum 0.5: mean 0.5 * 0 + 0.5 * 1, variance 0.5 * 1 + 0.5 * 2
    # (the unbiased variance of 0 and 2).
    norm = BatchStandardization(1, momentum=0.5, eps=0.25).train()
    out = norm(torch.tensor([[0.0], [2.0]]))
    torch.testing.assert_close(out, torch.tensor([[-1.0], [1.0]]) / 1.25**0.5)
    assert norm.running_mean.item() == 0.5 and norm.running_var.item() == 1.5
    assert norm.num_batches_tracked.item() == 1


def test_bf16_vectors_stay_bf16():
    norm = BatchStandardization(2).eval()
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]], dtype=torch.bfloat16)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, (x.float() / (1 + 1e-5) ** 0.5).bfloat16())


def test_bf16_frames_pool_to_a_bf16_vector():
    pool = AttentivePooling(3).to(torch.bfloat16)
    with torch.no_grad():
        pool.attention.weight.zero_()  # equal weights: the mean of the real frames
        pool.attention.bias.zero_()
    frames = torch.tensor([[[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [99.0, 99.0, 99.0]]])
    pooled, _ = pool.attend(frames.bfloat16(), torch.tensor([2 / 3]))
    assert pooled.dtype == torch.bfloat16
    assert pooled.float().tolist() == [[2.0, 3.0, 4.0]]


def test_a_bf16_head_takes_a_float32_pooled_vector():
    # A long recording's windows are pooled in float32 (sense.windows) before the head.
    pool = AttentivePooling(2, output_dim=1).to(torch.bfloat16)
    with torch.no_grad():
        pool.projection.weight.copy_(torch.tensor([[0.5, 2.0]]))
        pool.projection.bias.fill_(1.0)
    emb = pool.head(torch.tensor([[2.0, 3.0]]))  # 0.5 * 2 + 2 * 3 + 1
    assert emb.dtype == torch.bfloat16 and emb.item() == 8.0


def test_one_dimensional_frames_and_no_fewer():
    pooled, _ = AttentivePooling(1).attend(torch.full((1, 3, 1), 2.5))
    assert pooled.item() == 2.5
    with pytest.raises(ValueError, match="input_dim must be positive"):
        AttentivePooling(0)


def test_output_dim_is_the_projection_or_the_input():
    assert AttentivePooling(8).output_dim == 8
    assert AttentivePooling(8, output_dim=4).output_dim == 4


def test_head_refuses_frames():
    with pytest.raises(ValueError, match=r"pooled must be \[B,8\]"):
        AttentivePooling(8).head(torch.zeros(2, 3, 8))
