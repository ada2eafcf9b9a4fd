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
    # the equation, in float64: tanh(W Σ_t softmax_t(a·x_t + b) x_t + c), real frames only
    torch.manual_seed(0)
    frames, lens = torch.randn(2, 5, 8), torch.tensor([1.0, 0.6])
    emb, _ = pool(frames, lens)
    a, b = (p.detach().double() for p in (pool.attention.weight[0], pool.attention.bias))
    w, c = (p.detach().double() for p in (pool.projection.weight, pool.projection.bias))
    for i, n in enumerate((5, 3)):  # 0.6 of 5 frames: 3
        x = frames[i, :n].double()
        expected = torch.tanh(w @ (torch.softmax(x @ a + b, dim=0) @ x) + c)
        torch.testing.assert_close(emb[i].double(), expected, rtol=1e-5, atol=1e-6)


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


def test_batch_norm_removes_the_offset_shared_by_all_utterances():
    # A random encoder pools every utterance to nearly one vector: offset + small remainder.
    torch.manual_seed(0)
    frames = torch.randn(8, 20, 6) * 0.1 + torch.linspace(1.0, 6.0, 6)
    plain, _ = AttentivePooling(6)(frames)
    normed, _ = AttentivePooling(6, batch_norm=True).train()(frames)
    cos = torch.nn.functional.cosine_similarity
    assert cos(plain[0], plain[1], dim=0) > 0.99
    assert torch.allclose(normed.mean(0), torch.zeros(6), atol=1e-4)
    assert torch.allclose(normed.var(0, unbiased=False), torch.ones(6), atol=0.05)


def test_batch_norm_at_inference_and_for_a_lone_training_utterance_uses_running_stats():
    pool = AttentivePooling(6, output_dim=3, batch_norm=True).train()
    for _ in range(20):
        pool(torch.randn(4, 10, 6) + 3.0)
    frames = torch.randn(1, 10, 6) + 3.0
    alone_training, _ = pool(frames)  # a batch of one: no batch statistics to take
    pool.eval()
    alone, _ = pool(frames)
    padded, _ = pool(torch.cat([frames, torch.randn(1, 10, 6)]), torch.tensor([1.0, 1.0]))
    assert torch.allclose(alone_training, alone) and torch.allclose(alone[0], padded[0], atol=1e-6)
    assert pool.norm.running_mean.mean() > 2.0  # the offset was learned


def test_batch_standardization_matches_torch_batch_norm_and_stays_per_rank():
    from sense.nnet.pooling import BatchStandardization

    ours, reference = BatchStandardization(5), torch.nn.BatchNorm1d(5, affine=False)
    for _ in range(3):
        x = torch.randn(6, 5) * 2 + 1
        torch.testing.assert_close(ours.train()(x), reference.train()(x))
    x = torch.randn(4, 5)
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x))
    assert ours.state_dict().keys() == reference.state_dict().keys()
    # SpeechBrain's DDP wrapping converts torch batch norms to SyncBatchNorm (GPU only)
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(AttentivePooling(5, batch_norm=True))
    assert type(converted.norm) is BatchStandardization
