"""Tiny, randomly initialised models of the real classes, saved in the hub layout.

No model hub is reachable here, so the demo, tests and the benchmarks build
small models of exactly the classes the real checkpoints use
(``Wav2Vec2BertModel`` for w2v-BERT 2.0, ``Wav2Vec2Model`` for XLS-R,
``XLMRobertaModel`` for BGE-M3, ``BertModel`` for LaBSE), save them with
``save_pretrained`` next to their feature extractor or tokenizer, and hand back
the folder. Code under test then loads that folder through the same
``from_pretrained`` path that a hub id takes.

Example
-------
>>> import tempfile
>>> from transformers import Wav2Vec2BertModel
>>> path = build_tiny_w2v_bert(tempfile.mkdtemp())
>>> Wav2Vec2BertModel.from_pretrained(path).config.hidden_size
32
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

import sentencepiece as spm
import torch

__all__ = [
    "CTC_CHARACTERS",
    "DEFAULT_TEXTS",
    "SEED",
    "TINY_DECODER_POSITIONS",
    "TINY_FFN",
    "TINY_HEADS",
    "TINY_HIDDEN",
    "TINY_LAYERS",
    "TINY_MEL_BINS",
    "TINY_VOCAB",
    "TINY_WHISPER_LANGUAGES",
    "TINY_WHISPER_SECONDS",
    "TINY_WHISPER_TARGET_POSITIONS",
    "WHISPER_EOT",
    "WHISPER_SPECIALS",
    "build_tiny_bart",
    "build_tiny_bert",
    "build_tiny_llm",
    "build_tiny_mbart",
    "build_tiny_nllb",
    "build_tiny_w2v_bert",
    "build_tiny_wav2vec2",
    "build_tiny_wav2vec2_ctc",
    "build_tiny_whisper",
    "build_tiny_whisper_asr",
    "build_tiny_xlm_roberta",
    "train_sentencepiece",
]

# A small multilingual text sample: enough for a sentencepiece or word-piece
# vocabulary that covers Latin and Cyrillic script.
DEFAULT_TEXTS = (
    "the cat sleeps on the red sofa",
    "a young doctor reads a long letter in the garden",
    "le chat dort sur le canapé rouge",
    "un jeune médecin lit une longue lettre dans le jardin",
    "die Katze schläft auf dem roten Sofa",
    "ein junger Arzt liest einen langen Brief im Garten",
    "el gato duerme en el sofá rojo",
    "un joven médico lee una carta larga en el jardín",
    "il gatto dorme sul divano rosso",
    "кошка спит на красном диване",
    "молодой врач читает длинное письмо в саду",
    "0 1 2 3 4 5 6 7 8 9 . , ? ! ' -",
)

TINY_HIDDEN = 32
TINY_LAYERS = 2
TINY_HEADS = 2
TINY_FFN = 64
TINY_VOCAB = 200
SEED = 0


def _save(model, path: str) -> str:
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    return path


def build_tiny_w2v_bert(
    path: str,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    num_heads: int = TINY_HEADS,
    intermediate_size: int = TINY_FFN,
    seed: int = SEED,
    conv_kernel: int = 5,
    left_positions: int = 16,
    right_positions: int = 4,
) -> str:
    """Save a tiny w2v-BERT 2.0 (``Wav2Vec2BertModel``) and its feature extractor.

    The architecture is the real one (feature projection from 160-dim stacked
    fbank frames, Conformer layers with relative position attention), only
    smaller, so it is also what the demo trains from scratch.

    Parameters
    ----------
    path : str
        Folder to write (``config.json``, weights, ``preprocessor_config.json``).
    hidden_size, num_layers, num_heads, intermediate_size : int
        Size of the Conformer stack.
    conv_kernel : int
        Depthwise convolution kernel of each Conformer layer (31 in w2v-BERT 2.0).
    left_positions, right_positions : int
        Range of the relative position embeddings (64 and 8 in w2v-BERT 2.0).
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    str
        ``path``, loadable with ``Wav2Vec2BertModel.from_pretrained``.

    Example
    -------
    >>> import tempfile, os
    >>> p = build_tiny_w2v_bert(tempfile.mkdtemp())
    >>> sorted(f for f in os.listdir(p) if f.endswith(".json"))
    ['config.json', 'preprocessor_config.json']
    """
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    config = Wav2Vec2BertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        output_hidden_size=hidden_size,
        conv_depthwise_kernel_size=conv_kernel,
        left_max_position_embeddings=left_positions,
        right_max_position_embeddings=right_positions,
        add_adapter=False,
        layerdrop=0.0,
        mask_time_prob=0.05,
        vocab_size=None,
    )
    config.architectures = ["Wav2Vec2BertModel"]
    torch.manual_seed(seed)
    _save(Wav2Vec2BertModel(config), path)
    SeamlessM4TFeatureExtractor().save_pretrained(path)
    return path


def _tiny_wav2vec2_config(hidden_size: int, num_layers: int, **extra):
    """A tiny XLS-R style ``Wav2Vec2Config``: real strides (320 samples, 20 ms per frame)."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=TINY_HEADS,
        intermediate_size=TINY_FFN,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        layerdrop=0.0,
        mask_time_prob=0.05,
        **extra,
    )


def _wav2vec2_feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )


def build_tiny_wav2vec2(
    path: str, hidden_size: int = TINY_HIDDEN, num_layers: int = TINY_LAYERS, seed: int = SEED
) -> str:
    """Save a tiny XLS-R style ``Wav2Vec2Model`` (stable layer norm) and its extractor.

    The convolutional front-end keeps the real strides (320 samples, 20 ms per
    frame) with few channels.

    Example
    -------
    >>> import tempfile
    >>> from transformers import Wav2Vec2Model
    >>> p = build_tiny_wav2vec2(tempfile.mkdtemp())
    >>> Wav2Vec2Model.from_pretrained(p).config.conv_stride
    [5, 2, 2, 2, 2, 2, 2]
    """
    from transformers import Wav2Vec2Model

    config = _tiny_wav2vec2_config(hidden_size, num_layers, vocab_size=None)
    config.architectures = ["Wav2Vec2Model"]
    torch.manual_seed(seed)
    _save(Wav2Vec2Model(config), path)
    _wav2vec2_feature_extractor().save_pretrained(path)
    return path


#: Whisper window of the tiny model in seconds (30 s in the released models).
TINY_WHISPER_SECONDS = 2
TINY_MEL_BINS = 80
TINY_WHISPER_TARGET_POSITIONS = 64


def _tiny_whisper_config(extractor, hidden_size: int, num_layers: int, vocab_size: int, **tokens):
    """A tiny ``WhisperConfig`` reading ``extractor``'s window; ``tokens``: special ids."""
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=TINY_MEL_BINS,
        d_model=hidden_size,
        encoder_layers=num_layers,
        decoder_layers=1,
        encoder_attention_heads=TINY_HEADS,
        decoder_attention_heads=TINY_HEADS,
        encoder_ffn_dim=TINY_FFN,
        decoder_ffn_dim=TINY_FFN,
        max_source_positions=extractor.nb_max_frames // 2,
        max_target_positions=TINY_WHISPER_TARGET_POSITIONS,
        **tokens,
    )


def build_tiny_whisper(
    path: str,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    window_seconds: int = TINY_WHISPER_SECONDS,
    seed: int = SEED,
) -> str:
    """Save a tiny ``WhisperModel`` and its ``WhisperFeatureExtractor``.

    The real front-end (80 log-mel bins, 10 ms hop, two convolutions, the
    second of stride 2) on a ``window_seconds`` window instead of 30 s: the
    encoder reads ``100 * window_seconds`` mel frames and returns half as
    many frames.

    Example
    -------
    >>> import tempfile
    >>> from transformers import WhisperFeatureExtractor, WhisperModel
    >>> p = build_tiny_whisper(tempfile.mkdtemp())
    >>> WhisperModel.from_pretrained(p).config.max_source_positions
    100
    >>> WhisperFeatureExtractor.from_pretrained(p).n_samples
    32000
    """
    from transformers import WhisperFeatureExtractor, WhisperModel

    extractor = WhisperFeatureExtractor(feature_size=TINY_MEL_BINS, chunk_length=window_seconds)
    config = _tiny_whisper_config(
        extractor,
        hidden_size,
        num_layers,
        TINY_VOCAB,
        # special tokens of a tiny vocabulary (the real ones sit above 50000)
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
        decoder_start_token_id=3,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    config.architectures = ["WhisperModel"]
    torch.manual_seed(seed)
    _save(WhisperModel(config), path)
    extractor.save_pretrained(path)
    return path


#: Whisper's special tokens besides the language codes, in its vocabulary's order.
WHISPER_SPECIALS = (
    "<|startoftranscript|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",
    "<|notimestamps|>",
)
WHISPER_EOT = "<|endoftext|>"
TINY_WHISPER_LANGUAGES = ("en", "fr", "de", "es", "it", "ru", "pt", "pl", "ro", "nl")


def build_tiny_whisper_asr(
    path: str,
    texts: Iterable[str] = DEFAULT_TEXTS,
    languages: Iterable[str] = TINY_WHISPER_LANGUAGES,
    hidden_size: int = TINY_HIDDEN,
    window_seconds: int = TINY_WHISPER_SECONDS,
    seed: int = SEED,
) -> str:
    """Save a tiny ``WhisperForConditionalGeneration`` with its processor: a whole ASR model.

    The tokenizer is a byte-level BPE trained on ``texts`` with Whisper's
    special tokens (``<|startoftranscript|>``, ``<|fr|>``, ``<|transcribe|>``,
    ``<|notimestamps|>``...), and the generation config maps them as the real
    checkpoints do, so ``generate(language="fr", task="transcribe")`` runs.

    Example
    -------
    >>> import tempfile
    >>> from transformers import WhisperForConditionalGeneration
    >>> p = build_tiny_whisper_asr(tempfile.mkdtemp())
    >>> sorted(WhisperForConditionalGeneration.from_pretrained(p).generation_config.task_to_id)
    ['transcribe', 'translate']
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        GenerationConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    os.makedirs(path, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=TINY_VOCAB, special_tokens=[WHISPER_EOT])
    vocab, merges = bpe.save_model(path)
    tokenizer = WhisperTokenizer(
        vocab, merges, unk_token=WHISPER_EOT, bos_token=WHISPER_EOT, eos_token=WHISPER_EOT
    )
    os.remove(vocab), os.remove(merges)
    language_tokens = [f"<|{lang}|>" for lang in languages]
    specials = [WHISPER_SPECIALS[0], *language_tokens, *WHISPER_SPECIALS[1:]]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = dict(zip(specials, tokenizer.convert_tokens_to_ids(specials)))
    extractor = WhisperFeatureExtractor(feature_size=TINY_MEL_BINS, chunk_length=window_seconds)
    eot = tokenizer.convert_tokens_to_ids(WHISPER_EOT)
    config = _tiny_whisper_config(
        extractor,
        hidden_size,
        1,
        len(tokenizer),
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=ids[WHISPER_SPECIALS[0]],
    )
    config.architectures = ["WhisperForConditionalGeneration"]
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=eot,
        pad_token_id=eot,
        lang_to_id={token: ids[token] for token in language_tokens},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=True,
        max_initial_timestamp_index=0,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    _save(model, path)
    WhisperProcessor(extractor, tokenizer).save_pretrained(path)
    return path


#: Characters of the tiny CTC model (French letters and the apostrophe).
CTC_CHARACTERS = "abcdefghijklmnopqrstuvwxyzàâçéèêëîïôûùüÿœ'"


def build_tiny_wav2vec2_ctc(
    path: str,
    characters: str = CTC_CHARACTERS,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    seed: int = SEED,
) -> str:
    """Save a tiny ``Wav2Vec2ForCTC`` with its processor (character vocabulary).

    The layout of a fine-tuned wav2vec2 / XLS-R ASR model: ``vocab.json`` with
    ``<pad>`` (the CTC blank), ``<unk>`` and ``|`` (the word delimiter), the
    tokenizer and the feature extractor, loadable with
    ``Wav2Vec2Processor.from_pretrained``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import Wav2Vec2ForCTC
    >>> p = build_tiny_wav2vec2_ctc(tempfile.mkdtemp())
    >>> Wav2Vec2ForCTC.from_pretrained(p).config.vocab_size
    45
    """
    import json

    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC, Wav2Vec2Processor

    os.makedirs(path, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2}
    for char in characters:
        vocab.setdefault(char, len(vocab))
    vocab_file = os.path.join(path, "vocab.json")
    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    tokenizer = Wav2Vec2CTCTokenizer(
        vocab_file, unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    )
    config = _tiny_wav2vec2_config(
        hidden_size, num_layers, vocab_size=len(vocab), pad_token_id=0, ctc_loss_reduction="mean"
    )
    config.architectures = ["Wav2Vec2ForCTC"]
    torch.manual_seed(seed)
    _save(Wav2Vec2ForCTC(config), path)
    Wav2Vec2Processor(
        feature_extractor=_wav2vec2_feature_extractor(), tokenizer=tokenizer
    ).save_pretrained(path)
    return path


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int = TINY_VOCAB,
    model_type: str = "unigram",
    fairseq_specials: bool = False,
) -> bytes:
    """Train a sentencepiece model in memory and return its bytes.

    ``fairseq_specials`` gives it the special pieces of the fairseq models
    (mBART, NLLB): ``<unk>``, ``<s>``, ``</s>`` as pieces 0, 1, 2, which their
    transformers tokenizers expect.

    Example
    -------
    >>> len(train_sentencepiece(DEFAULT_TEXTS, vocab_size=100)) > 0
    True
    """
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts) * 4),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,
        unk_id=0,
        bos_id=1 if fairseq_specials else -1,
        eos_id=2 if fairseq_specials else -1,
        pad_id=-1,
        minloglevel=2,
    )
    return buf.getvalue()


def build_tiny_xlm_roberta(
    path: str,
    texts: Iterable[str] = DEFAULT_TEXTS,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    max_positions: int = 130,
    seed: int = SEED,
) -> str:
    """Save a tiny BGE-M3-like ``XLMRobertaModel`` with a sentencepiece tokenizer.

    The tokenizer is an ``XLMRobertaTokenizer`` built from a sentencepiece model
    trained on ``texts`` on the fly, saved with ``save_pretrained`` as the real
    BGE-M3 repository holds it.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> p = build_tiny_xlm_roberta(tempfile.mkdtemp())
    >>> AutoTokenizer.from_pretrained(p)("le chat")["input_ids"][0]
    0
    """
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "sentencepiece.bpe.model"), "wb") as f:
        f.write(train_sentencepiece(texts))
    tokenizer = XLMRobertaTokenizer.from_pretrained(path, model_max_length=max_positions - 2)
    tokenizer.save_pretrained(path)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=TINY_HEADS,
        intermediate_size=TINY_FFN,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.architectures = ["XLMRobertaModel"]
    torch.manual_seed(seed)
    return _save(XLMRobertaModel(config), path)


def build_tiny_bert(
    path: str,
    texts: Iterable[str] = DEFAULT_TEXTS,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    seed: int = SEED,
) -> str:
    """Save a tiny LaBSE-like ``BertModel`` (with pooler) and a word-piece tokenizer.

    The vocabulary holds the special tokens, every character and every
    lower-cased word of ``texts``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> p = build_tiny_bert(tempfile.mkdtemp())
    >>> AutoTokenizer.from_pretrained(p).tokenize("le chat")
    ['le', 'chat']
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    os.makedirs(path, exist_ok=True)
    texts = [t.lower() for t in texts]
    words = sorted({w for t in texts for w in t.split()})
    chars = sorted({c for t in texts for c in t if not c.isspace()})
    pieces = ["##" + c for c in chars]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [t for t in dict.fromkeys(chars + words + pieces) if t not in vocab]
    vocab_file = os.path.join(path, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer.from_pretrained(path, do_lower_case=True, model_max_length=128)
    tokenizer.save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=TINY_HEADS,
        intermediate_size=TINY_FFN,
        max_position_embeddings=130,
    )
    config.architectures = ["BertModel"]
    torch.manual_seed(seed)
    return _save(BertModel(config, add_pooling_layer=True), path)


def build_tiny_llm(
    path: str,
    texts: Iterable[str] = DEFAULT_TEXTS,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    max_positions: int = 512,
    seed: int = SEED,
) -> str:
    """Save a tiny decoder-only LLM (``GemmaModel``) with a sentencepiece ``GemmaTokenizer``.

    The backbone of the LLM dual encoder (:mod:`sense.dual_encoder`), loadable
    with ``AutoModel`` / ``AutoTokenizer``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoModel
    >>> AutoModel.from_pretrained(build_tiny_llm(tempfile.mkdtemp())).config.model_type
    'gemma'
    """
    from transformers import GemmaConfig, GemmaModel, GemmaTokenizer

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "tokenizer.model"), "wb") as f:
        f.write(train_sentencepiece(texts))
    tokenizer = GemmaTokenizer.from_pretrained(path)
    tokenizer.save_pretrained(path)
    config = GemmaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=TINY_HEADS,
        num_key_value_heads=1,
        head_dim=hidden_size // TINY_HEADS,
        intermediate_size=TINY_FFN,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.architectures = ["GemmaModel"]
    torch.manual_seed(seed)
    return _save(GemmaModel(config), path)


def build_tiny_bart(
    path: str,
    texts: Iterable[str] = DEFAULT_TEXTS,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = 1,
    vocab_size: int = TINY_VOCAB,
    max_positions: int = 256,
    seed: int = SEED,
) -> str:
    """Save a tiny BARThez-like ``BartForConditionalGeneration`` and its tokenizer.

    The tokenizer is a ``BarthezTokenizer`` built from a sentencepiece model
    trained on ``texts`` on the fly, with BART's ``<s> ... </s>`` template,
    saved with ``save_pretrained`` as the BARThez repository holds it.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    >>> p = build_tiny_bart(tempfile.mkdtemp())
    >>> tok = AutoTokenizer.from_pretrained(p)
    >>> tok.decode(tok("le chat dort").input_ids, skip_special_tokens=True)
    'le chat dort'
    >>> AutoModelForSeq2SeqLM.from_pretrained(p).config.d_model
    32
    """
    from tokenizers.processors import TemplateProcessing
    from transformers import BartConfig, BartForConditionalGeneration, BarthezTokenizer

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "sentencepiece.bpe.model"), "wb") as f:
        f.write(train_sentencepiece(texts, vocab_size=vocab_size))
    tokenizer = BarthezTokenizer.from_pretrained(path, model_max_length=max_positions)
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, tokenizer.bos_token_id), (eos, tokenizer.eos_token_id)],
    )
    tokenizer.save_pretrained(path)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=hidden_size,
        encoder_layers=num_layers,
        decoder_layers=num_layers,
        encoder_attention_heads=TINY_HEADS,
        decoder_attention_heads=TINY_HEADS,
        encoder_ffn_dim=TINY_FFN,
        decoder_ffn_dim=TINY_FFN,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        scale_embedding=False,
    )
    config.architectures = ["BartForConditionalGeneration"]
    torch.manual_seed(seed)
    return _save(BartForConditionalGeneration(config), path)


#: Position table of the tiny text decoders (mBART, NLLB).
TINY_DECODER_POSITIONS = 128


def _seq2seq_config_kwargs(
    tokenizer, hidden_size: int, num_layers: int, num_heads: int = TINY_HEADS, ffn: int = TINY_FFN
) -> dict:
    """Sizes and special tokens shared by the tiny mBART and NLLB configs."""
    return {
        "vocab_size": len(tokenizer),
        "d_model": hidden_size,
        "encoder_layers": 1,
        "decoder_layers": num_layers,
        "encoder_attention_heads": num_heads,
        "decoder_attention_heads": num_heads,
        "encoder_ffn_dim": ffn,
        "decoder_ffn_dim": ffn,
        "max_position_embeddings": TINY_DECODER_POSITIONS,
        "dropout": 0.0,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else 0,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
    }


def build_tiny_mbart(
    path: str,
    texts: Iterable[str] = DEFAULT_TEXTS,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    vocab_size: int = TINY_VOCAB,
    seed: int = SEED,
    num_heads: int = TINY_HEADS,
    ffn: int = TINY_FFN,
) -> str:
    """Save a tiny mBART-50 (``MBartForConditionalGeneration``) with its tokenizer.

    The tokenizer is an ``MBart50Tokenizer`` (with the 52 mBART-50 language
    codes, ``en_XX`` among them) built from a sentencepiece model trained on
    ``texts`` on the fly, as ``facebook/mbart-large-50`` holds it.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> p = build_tiny_mbart(tempfile.mkdtemp())
    >>> AutoTokenizer.from_pretrained(p).convert_tokens_to_ids("en_XX") > 100
    True
    """
    from transformers import MBart50Tokenizer, MBartConfig, MBartForConditionalGeneration

    os.makedirs(path, exist_ok=True)
    spm_file = os.path.join(path, "sentencepiece.bpe.model")
    with open(spm_file, "wb") as f:
        f.write(train_sentencepiece(texts, vocab_size, fairseq_specials=True))
    tokenizer = MBart50Tokenizer.from_pretrained(path, model_max_length=TINY_DECODER_POSITIONS)
    os.remove(spm_file)  # the tokenizer is saved whole (tokenizer.json)
    tokenizer.save_pretrained(path)
    config = MBartConfig(
        **_seq2seq_config_kwargs(tokenizer, hidden_size, num_layers, num_heads, ffn),
        scale_embedding=True,
    )
    config.architectures = ["MBartForConditionalGeneration"]
    torch.manual_seed(seed)
    return _save(MBartForConditionalGeneration(config), path)


def build_tiny_nllb(
    path: str,
    texts: Iterable[str] = DEFAULT_TEXTS,
    hidden_size: int = TINY_HIDDEN,
    num_layers: int = TINY_LAYERS,
    vocab_size: int = TINY_VOCAB,
    seed: int = SEED,
) -> str:
    """Save a tiny NLLB-200 (``M2M100ForConditionalGeneration``) with its tokenizer.

    The tokenizer is an ``NllbTokenizer`` from a BPE sentencepiece model
    trained on ``texts`` on the fly, with the 202 NLLB language codes
    (``eng_Latn`` among them) as special tokens, as
    ``facebook/nllb-200-distilled-600M`` holds it.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> p = build_tiny_nllb(tempfile.mkdtemp())
    >>> AutoTokenizer.from_pretrained(p).convert_tokens_to_ids("eng_Latn") > 100
    True
    """
    from tokenizers import AddedToken
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    os.makedirs(path, exist_ok=True)
    spm_file = os.path.join(path, "sentencepiece.bpe.model")
    with open(spm_file, "wb") as f:
        f.write(train_sentencepiece(texts, vocab_size, model_type="bpe", fairseq_specials=True))
    tokenizer = NllbTokenizer.from_pretrained(path, model_max_length=TINY_DECODER_POSITIONS)
    os.remove(spm_file)
    # converted from a sentencepiece file, the tokenizer lacks the language codes
    missing = [c for c in FAIRSEQ_LANGUAGE_CODES if c not in tokenizer.get_vocab()]
    tokenizer.add_tokens([AddedToken(c, special=True) for c in missing], special_tokens=True)
    tokenizer.save_pretrained(path)
    config = M2M100Config(
        **_seq2seq_config_kwargs(tokenizer, hidden_size, num_layers), scale_embedding=True
    )
    config.architectures = ["M2M100ForConditionalGeneration"]
    torch.manual_seed(seed)
    return _save(M2M100ForConditionalGeneration(config), path)
