"""Model FLOPs of a SENSE training step, and model FLOPs utilisation (MFU).

Convention: a multiply-add counts 2 FLOPs; only matrix products and
convolutions are counted (layer norms, softmax, GLU, activations and the
optimizer are not: they are memory-bound and a few per cent of the total);
a training step costs 3 forward passes (the backward pass computes the
gradients with respect to activations and to weights, each as costly as the
forward). Only the *useful* work is counted: each utterance over its own
frames, never the padding, so MFU is lowered by padding, not flattered by it.

w2v-BERT 2.0 (``Wav2Vec2BertModel``), per output frame
-------------------------------------------------------
Notation: ``d`` hidden size, ``f`` FFN size, ``k`` depthwise kernel, ``L``
layers, ``T`` frames of the utterance (attention length), ``160`` the
stacked-fbank input. Frames come at 50 per second of audio (10 ms fbank hop,
stacked two by two).

==============================================  ==================
feature projection ``160 -> d``                 ``2 * 160 * d``
per Conformer layer:
  FFN 1 (macaron half) ``d -> f -> d``          ``4 d f``
  FFN 2 (macaron half) ``d -> f -> d``          ``4 d f``
  attention projections q, k, v, out            ``8 d^2``
  scores ``Q K^T`` (all heads)                  ``2 T d``
  relative-key position scores                  ``2 T d``
  (``einsum("bhld,lrd->bhlr")``)
  weighted sum ``A V``                          ``2 T d``
  conv pointwise ``d -> 2d`` (before GLU)       ``4 d^2``
  conv depthwise, kernel ``k``                  ``2 k d``
  conv pointwise ``d -> d``                     ``2 d^2``
attentive pooling (score + weighted sum)        ``4 d``
==============================================  ==================

Forward per frame: ``F(T) = L (8 d f + 14 d^2 + 6 T d + 2 k d) + 320 d + 4 d``;
a training step on utterances of ``n_i`` frames costs
``3 * sum_i n_i F(n_i)``. Per second of audio: ``3 * 50 * F(T)``.

For the real w2v-BERT 2.0 (``d = 1024, f = 4096, k = 31, L = 24``) and a 5 s
utterance (``T = 250``): a layer costs 33.55M (FFNs) + 14.68M (projections
and pointwise convs) + 1.54M (attention over 250 frames) + 0.06M (depthwise)
= 49.83 MFLOPs per frame, ``F = 1.196`` GFLOPs per frame, 59.8 GFLOPs per
second of audio forward, **179 GFLOPs per second of audio for training**
(about ``6 x 580M parameters x 50 frames/s``, as the 6N rule predicts).

BGE-M3 (XLM-RoBERTa-large), per token, forward only (the SpeechBrain recipe's
teacher, not counted in MFU, reported for scale): ``L (8 d^2 + 4 d f + 4 T d)``.

MFU is the model FLOPs of the step divided by the step's time and by the
device's peak dense bf16 tensor throughput (:data:`PEAK_BF16_TFLOPS`, from
the vendors' data sheets, without sparsity), or by ``--peak-tflops``.
"""

from __future__ import annotations

FRAMES_PER_SECOND = 50
FBANK_DIM = 160

#: Dense bf16 tensor-core peak (TFLOP/s, no sparsity), matched on
#: ``torch.cuda.get_device_name`` in this order.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100", 989.4),  # SXM ("NVIDIA H100 80GB HBM3")
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
)


def peak_tflops(device_name: str | None) -> float | None:
    """Dense bf16 peak of a GPU from its name, ``None`` when unknown.

    Example
    -------
    >>> peak_tflops("NVIDIA H100 80GB HBM3"), peak_tflops("NVIDIA H100 PCIe"), peak_tflops("cpu")
    (989.4, 756.0, None)
    """
    if not device_name:
        return None
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def _dims(config) -> tuple[int, int, int, int]:
    return (
        int(config.hidden_size),
        int(config.intermediate_size),
        int(config.conv_depthwise_kernel_size),
        int(config.num_hidden_layers),
    )


def w2v_bert_forward_flops_per_frame(config, frames: int, distances: int | None = None) -> float:
    """``F(T)``: forward FLOPs of one frame of a ``frames``-frame utterance (module docstring).

    ``distances``: relative-key scores against this many distance embeddings
    (73 for w2v-BERT 2.0, as ``sense.lobes.attention`` computes them) instead
    of one per key (transformers' einsum).

    Example
    -------
    >>> from transformers import Wav2Vec2BertConfig
    >>> round(w2v_bert_forward_flops_per_frame(Wav2Vec2BertConfig(), 250) / 1e9, 3)
    1.196
    >>> round(w2v_bert_forward_flops_per_frame(Wav2Vec2BertConfig(), 1500, 73) / 1e9, 3)
    1.311
    """
    d, f, k, layers = _dims(config)
    relative = min(frames, distances or frames)
    per_layer = 8 * d * f + 14 * d * d + 4 * frames * d + 2 * relative * d + 2 * k * d
    return layers * per_layer + 2 * FBANK_DIM * d + 4 * d


def w2v_bert_train_flops(config, frame_counts) -> float:
    """Model FLOPs of one training step over utterances of ``frame_counts`` frames.

    Example
    -------
    >>> from transformers import Wav2Vec2BertConfig
    >>> round(w2v_bert_train_flops(Wav2Vec2BertConfig(), [250]) / 1e9, 1)
    897.3
    """
    return 3.0 * sum(n * w2v_bert_forward_flops_per_frame(config, n) for n in frame_counts)


def w2v_bert_train_flops_per_audio_second(config, seconds: float = 5.0) -> float:
    """Training FLOPs per second of audio, for utterances of ``seconds`` seconds.

    Example
    -------
    >>> from transformers import Wav2Vec2BertConfig
    >>> round(w2v_bert_train_flops_per_audio_second(Wav2Vec2BertConfig()) / 1e9)
    179
    """
    frames = int(round(seconds * FRAMES_PER_SECOND))
    return 3.0 * FRAMES_PER_SECOND * w2v_bert_forward_flops_per_frame(config, frames)


def xlmr_forward_flops(config, token_counts) -> float:
    """Forward FLOPs of an XLM-RoBERTa encoder over sentences of ``token_counts`` tokens.

    Example
    -------
    >>> from transformers import XLMRobertaConfig
    >>> c = XLMRobertaConfig(hidden_size=1024, num_hidden_layers=24, intermediate_size=4096)
    >>> round(xlmr_forward_flops(c, [20]) / 1e9, 1)
    12.1
    """
    d, f, layers = (
        int(config.hidden_size),
        int(config.intermediate_size),
        int(config.num_hidden_layers),
    )
    return float(sum(n * layers * (8 * d * d + 4 * d * f + 4 * n * d) for n in token_counts))


def mfu(model_flops: float, seconds: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation in [0, 1], ``None`` without a known peak.

    Example
    -------
    >>> mfu(1e12, 2.0, 1.0)
    0.5
    """
    if peak is None or seconds <= 0:
        return None
    return model_flops / seconds / (peak * 1e12)
