"""Speech translation decoding: beam search of ``Seq2SeqDecoder`` against SpeechBrain's SAMU-mBART.

Both systems decode the same encoder states with the same mBART decoder
(random weights, built from its config) and beam 5:

* ours: :meth:`sense.translation.model.Seq2SeqDecoder.generate_ids`,
  transformers' ``generate`` (the decoder keeps its key/value cache);
* theirs: the SpeechBrain IWSLT22 ``train_samu_mbart_st.yaml`` decoding, its
  ``mBART`` lobe under ``S2SHFTextBasedBeamSearcher`` (length normalisation,
  EOS threshold), which runs the decoder over the whole prefix at every step,
  with eager attention (its ``decode`` reads the cross-attention weights,
  which transformers' default SDPA attention does not return).

Random weights end hypotheses at random times, so both are held to the same
output length: the end token is allowed only after ``steps`` tokens (ours:
``min_new_tokens``; theirs: ``min_decode_ratio = max_decode_ratio``). The
speech encoder is left out: it is the same module in both, run once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import torch

from benchmarks.common import alternate, pick_device

BEAM_SIZE = 5
#: Output tokens per encoder frame at most, as in the SpeechBrain recipe.
MAX_DECODE_RATIO = 0.25


@dataclass(frozen=True)
class DecoderSize:
    """An mBART decoder size."""

    name: str
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int


DECODER_SIZES = {
    "tiny": DecoderSize("tiny", 64, 2, 4, 256, 400),
    "small": DecoderSize("small", 256, 3, 4, 1024, 2000),
    # mBART-large-50: 12 decoder layers, d_model 1024, 250,054 tokens
    "real": DecoderSize("real", 1024, 12, 16, 4096, 250_054),
}


def build_decoder(folder: str, size: DecoderSize) -> str:
    """An mBART-50 of ``size`` with its tokenizer, saved in the hub layout.

    The sentencepiece vocabulary is the tiny test one; the embedding table is
    then widened to ``size.vocab`` rows, which sets the cost of the output
    layer (only token ids are compared, never text).
    """
    from transformers import MBartForConditionalGeneration

    from sense.testing.tiny import build_tiny_mbart

    build_tiny_mbart(
        folder, hidden_size=size.hidden, num_layers=size.layers, num_heads=size.heads, ffn=size.ffn
    )
    model = MBartForConditionalGeneration.from_pretrained(folder)
    if size.vocab > model.config.vocab_size:
        model.resize_token_embeddings(size.vocab)
        model.save_pretrained(folder)
    return folder


def run(
    size: str = "small",
    rounds: int = 3,
    device: str | torch.device | None = None,
    num_utterances: int = 8,
    frames: int = 100,
    workdir: str | None = None,
) -> dict:
    """Decode ``num_utterances`` of ``frames`` encoder states with both systems; a JSON-able dict.

    ``frames`` at 50 Hz: 100 is 2 s of speech, hence 25 output tokens at the
    recipe's ``max_decode_ratio`` of 0.25.
    """
    from speechbrain.decoders import S2SHFTextBasedBeamSearcher
    from speechbrain.integrations.huggingface.mbart import mBART

    from sense.translation.model import Seq2SeqDecoder

    spec = DECODER_SIZES[size]
    device = device if isinstance(device, torch.device) else pick_device(device)
    steps = int(frames * MAX_DECODE_RATIO)
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="sense-bench-decode-")
        workdir = own_tmp.name
    try:
        source = build_decoder(os.path.join(workdir, "mbart"), spec)
        ours = Seq2SeqDecoder(source, target_lang="en_XX", freeze=True).to(device).eval()
        theirs = mBART(source, os.path.join(workdir, "sb"), freeze=True, target_lang="en_XX")
        # its decode() reads cross-attentions, which only the eager attention returns
        theirs.model.set_attn_implementation("eager")
        theirs = theirs.to(device).eval()
        searcher = S2SHFTextBasedBeamSearcher(
            modules=[theirs, None, None],
            vocab_size=theirs.model.config.vocab_size,
            bos_index=ours.lang_id,
            eos_index=ours.eos_id,
            min_decode_ratio=MAX_DECODE_RATIO,
            max_decode_ratio=MAX_DECODE_RATIO,
            beam_size=BEAM_SIZE,
            using_eos_threshold=True,
            length_normalization=True,
        )
        generator = torch.Generator().manual_seed(0)
        memory = torch.randn(num_utterances, frames, spec.hidden, generator=generator).to(device)
        lens = torch.ones(num_utterances, device=device)
        out_lengths = {}

        def sense_decode():
            # + 1: ours also emits the forced language token that starts theirs
            ids = ours.generate_ids(
                memory, lens, BEAM_SIZE, 1.0, steps + 1, min_new_tokens=steps + 1
            )
            out_lengths["sense"] = ids.shape[1]
            return ids

        def speechbrain_decode():
            with torch.no_grad():
                hyps, *_ = searcher(memory, lens)
            out_lengths["speechbrain"] = max(len(h) for h in hyps)
            return hyps

        timed = alternate(
            {"sense": sense_decode, "speechbrain": speechbrain_decode},
            rounds=rounds,
            device=device,
            warmup=1,
        )
        out = {
            "size": spec.name,
            "device": device.type,
            "decoder": {
                "d_model": spec.hidden,
                "layers": spec.layers,
                "vocab": theirs.model.config.vocab_size,
            },
            "utterances": num_utterances,
            "frames": frames,
            "beam_size": BEAM_SIZE,
            "output_tokens": steps,
            "output_lengths": out_lengths,
        }
        for name, value in timed.items():
            out[name] = {
                "median_s": round(value["median_s"], 6),
                "utterances_per_second": round(num_utterances / value["median_s"], 2),
            }
        out["speedup"] = round(timed["speechbrain"]["median_s"] / timed["sense"]["median_s"], 2)
        return out
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
