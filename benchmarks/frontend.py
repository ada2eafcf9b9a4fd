"""Front-end: ``W2VBertFbank`` against transformers' ``SeamlessM4TFeatureExtractor``.

The extractor is what the SpeechBrain recipe's ``W2VBert`` calls inside its
forward: numpy, one utterance at a time, on the CPU, followed by a copy of
the padded features to the device. ``W2VBertFbank`` computes the same
features for the padded batch at once, in torch, where the batch is.

Measured on the same batch, in alternation:

* ``hf``: the extractor on the list of utterances, features moved to the
  device (what ``W2VBert._forward_hf`` does); the input batch already lives
  on the device, as in a training step, so it is first copied to the host;
* ``ours_<device>``: ``W2VBertFbank`` on the padded batch on each device
  (CPU, and the GPU when there is one).

The parity error is the largest absolute difference between the two
feature sets over every real frame (padding excluded), with the features'
own scale (they are normalised to unit variance per bin) for reference.
"""

from __future__ import annotations

import torch
from speechbrain.utils.data_utils import undo_padding

from benchmarks.common import alternate, pick_device
from benchmarks.models import SAMPLE_RATE, pad, synthetic_batch
from sense.features import W2VBertFbank


def parity(hf_inputs: dict, feats: torch.Tensor, feat_lens: torch.Tensor) -> dict:
    """Compare the extractor's output with ``W2VBertFbank``'s over real frames."""
    hf_feats = hf_inputs["input_features"].float()
    hf_counts = hf_inputs["attention_mask"].sum(dim=1).long()
    counts = torch.round(feat_lens.float().cpu() * feats.shape[1]).long()
    feats = feats.float().cpu()
    errors = []
    for i in range(hf_feats.shape[0]):
        n = int(hf_counts[i])
        errors.append(float((hf_feats[i, :n] - feats[i, :n]).abs().max()))
    return {
        "max_abs_error": max(errors),
        "frame_counts_equal": bool(torch.equal(hf_counts, counts)),
        "feature_std": round(float(hf_feats[hf_inputs["attention_mask"].bool()].std()), 4),
    }


def run(
    rounds: int = 5,
    device: str | torch.device | None = None,
    num_utterances: int = 8,
    min_seconds: float = 2.0,
    max_seconds: float = 6.0,
) -> dict:
    """Time both front-ends on one batch; return a JSON-able dict."""
    from transformers import SeamlessM4TFeatureExtractor

    device = device if isinstance(device, torch.device) else pick_device(device)
    batch = synthetic_batch(num_utterances, min_seconds, max_seconds)
    wavs, lens = pad(batch.wavs)
    extractor = SeamlessM4TFeatureExtractor()
    devices = [torch.device("cpu")] + ([device] if device.type != "cpu" else [])
    fbanks = {d.type: W2VBertFbank().to(d) for d in devices}
    inputs = {d.type: (wavs.to(d), lens.to(d)) for d in devices}

    def hf():
        x, x_lens = inputs[device.type]
        utts = undo_padding(x.cpu(), x_lens.cpu())
        out = extractor(utts, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True)
        return {k: v.to(device) for k, v in out.items()}

    def ours(kind):
        def call():
            with torch.no_grad():
                return fbanks[kind](*inputs[kind])

        return call

    systems = {"hf": hf, **{f"ours_{d.type}": ours(d.type) for d in devices}}
    timed = alternate(systems, rounds=rounds, device=device, warmup=1)

    hf_out = {k: v.cpu() for k, v in hf().items()}
    result = {
        "device": device.type,
        "batch": batch.describe(),
        "hf_extractor_s": round(timed["hf"]["median_s"], 6),
        "parity": {},
    }
    for d in devices:
        feats, feat_lens = ours(d.type)()
        seconds = timed[f"ours_{d.type}"]["median_s"]
        result[f"ours_{d.type}_s"] = round(seconds, 6)
        result[f"speedup_{d.type}"] = round(timed["hf"]["median_s"] / seconds, 2)
        result["parity"][d.type] = parity(hf_out, feats, feat_lens)
    result["audio_seconds_per_second"] = {
        name: round(batch.audio_seconds / value["median_s"], 1) for name, value in timed.items()
    }
    return result
