import pytest
import torch

from sense.nnet.pooling import AttentivePooling

torch.manual_seed(0)


def test_embedding_does_not_depend_on_batch_company():
    pool = AttentivePooling(16).eval()
    short = torch.randn(1, 7, 16)
    alone, _ = pool(short, torch.ones(1))
    # the same utterance padded next to one five times longer, with junk in the padding
    batch = torch.randn(2, 35, 16) * 10
    batch[0, :7] = short[0]
    together, logits = pool(batch, torch.tensor([7 / 35, 1.0]))
    assert torch.allclose(alone[0], together[0], atol=1e-5)
    assert torch.isinf(logits[0, 7:]).all() and torch.isfinite(logits[0, :7]).all()


def test_weights_sum_to_one_over_real_frames():
    pool = AttentivePooling(8)
    _, logits = pool(torch.randn(3, 10, 8), torch.tensor([1.0, 0.5, 0.1]))
    w = AttentivePooling.weights(logits)
    assert torch.allclose(w.sum(-1), torch.ones(3))
    assert (w[1, 5:] == 0).all() and (w[2, 1:] == 0).all()


def test_projection_and_tanh_bound_the_output():
    pool = AttentivePooling(8, output_dim=4, activation="tanh")
    emb, _ = pool(torch.randn(2, 5, 8) * 100)
    assert emb.shape == (2, 4) and emb.abs().max() <= 1.0


def test_pooling_and_encoder_both_receive_gradients():
    encoder = torch.nn.Linear(4, 8)
    pool = AttentivePooling(8, output_dim=3)
    frames = encoder(torch.randn(2, 6, 4))
    emb, _ = pool(frames, torch.tensor([1.0, 0.5]))
    emb.sum().backward()
    for module in (encoder, pool.attention, pool.projection):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "frames, lens",
    [
        (torch.randn(2, 5), None),  # not 3-D
        (torch.randn(2, 5, 7), None),  # wrong feature size
        (torch.randn(2, 5, 8), torch.tensor([1.0, 0.0])),  # zero length
        (torch.randn(2, 5, 8), torch.tensor([1.0, 1.5])),  # above one
        (torch.randn(2, 5, 8), torch.tensor([1.0])),  # wrong batch
    ],
)
def test_bad_input_raises(frames, lens):
    with pytest.raises(ValueError):
        AttentivePooling(8)(frames, lens)


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation"):
        AttentivePooling(8, activation="swish")
