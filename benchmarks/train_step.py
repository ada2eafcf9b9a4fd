"""Training step: our DistillationBrain against the SpeechBrain SENSE recipe's step.

Both steps are SpeechBrain ``Brain.fit_batch`` calls on the same batch of
utterances, with the same student folder, the same precision (``Brain``'s
``--precision``: fp32 on CPU, bf16 autocast on a GPU), the same cosine
distance, the same optimizers (Adam for the encoder, Adadelta for the
pooling head) and the same gradient clipping. They differ in what the
recipes do differently:

===========================  ==========================================  ==============================================
                             ours (``sense.distill.DistillationBrain``)  SpeechBrain recipe (this module's copy)
===========================  ==========================================  ==============================================
encoder                      ``sense.lobes.speech.HFSpeechEncoder``      ``speechbrain.integrations.huggingface
                                                                         .w2v_bert.W2VBert`` (the real class)
front-end                    ``W2VBertFbank``, batched torch, on the     ``SeamlessM4TFeatureExtractor``: numpy, per
                             batch's device                              utterance, on the CPU, then copied to the device
pooling                      ``AttentivePooling`` (masked)               ``speechbrain.nnet.pooling.AttentionPooling``
teacher                      embeddings read from a ``TeacherCache``     BGE-M3 forward on every step: tokenizer +
                             built once before training                  ``XLMRobertaModel``, CLS, L2-normalised, through
                                                                         numpy and back, as FlagEmbedding's
                                                                         ``BGEM3FlagModel.encode`` does
===========================  ==========================================  ==============================================

SpeechBrain's own BGE-M3 wrapper (``speechbrain.integrations.nlp``) needs
flair, spacy and FlagEmbedding; :class:`FlagStyleTeacher` computes what it
computes with transformers alone. Two deliberate departures, both in the
recipe's favour or neutral:

* FlagEmbedding's current ``encode`` (``M3Embedder.encode_single_device``)
  first runs a *probe* forward (the longest
  sentence repeated ``batch_size`` = 12 times) to choose a batch size, on
  every call. It is not run unless ``probe=True``, so by default the
  recipe's teacher costs one forward per step, less than in reality.
* The recipe's ``freeze_optimizers`` leaves the pooling head's optimizer out
  (the pooling head never steps there); here both heads step, so both steps do the same
  optimizer work (the head has ``D + 1`` parameters: the difference is not
  measurable).
"""

from __future__ import annotations

import functools
import os
import tempfile

import numpy as np
import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.data_utils import undo_padding

from benchmarks import flops as flops_mod
from benchmarks.common import (
    MB,
    alternate,
    module_bytes,
    optimizer_bytes,
    pick_device,
)
from benchmarks.models import SIZES, Size, build_student, build_teacher, pad, synthetic_batch
from sense.distill import DistillationBrain
from sense.features import W2VBertFbank
from sense.losses import cosine_distance

ENCODER_LR = 1e-5
POOLING_LR = 1.0
FLAG_BATCH_SIZE = 12  # BGEM3SentenceEmbeddings' default batch_size
FLAG_MAX_LENGTH = 8192  # BGEM3SentenceEmbeddings' default max_length


class FlagStyleTeacher:
    """BGE-M3 dense embeddings computed the way ``BGEM3FlagModel.encode`` does.

    Tokenise without padding (truncation at ``max_length``), sort by length,
    pad each batch of ``batch_size``, run ``XLMRobertaModel`` under
    ``no_grad``, take the CLS vector, L2-normalise, move to numpy, restore
    the order; SpeechBrain's wrapper then copies the result back to the
    device. Like FlagEmbedding's model, it is a plain object (not a
    registered ``nn.Module``), so the Brain's ``.train()`` does not reach it.

    Parameters
    ----------
    source : str
        Folder of an ``XLMRobertaModel`` and its tokenizer.
    device : torch.device
    probe : bool
        Also run FlagEmbedding's batch-size probe forward on every call.
    """

    def __init__(
        self,
        source: str,
        device: torch.device,
        probe: bool = False,
        batch_size: int = FLAG_BATCH_SIZE,
        max_length: int = FLAG_MAX_LENGTH,
    ):
        from transformers import AutoTokenizer, XLMRobertaModel

        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model = XLMRobertaModel.from_pretrained(source, add_pooling_layer=False)
        self.model.to(device).eval()
        self.device = device
        self.probe = probe
        self.batch_size = batch_size
        self.max_length = max_length

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        rows = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
        order = np.argsort([-len(r["input_ids"]) for r in rows])
        rows = [rows[i] for i in order]
        if self.probe:
            longest = self.tokenizer.pad(rows[:1], padding=True, return_tensors="pt")
            probe = {k: v.to(self.device).repeat(self.batch_size, 1) for k, v in longest.items()}
            self.model(**probe)
        dense = []
        for start in range(0, len(rows), self.batch_size):
            inputs = self.tokenizer.pad(
                rows[start : start + self.batch_size], padding=True, return_tensors="pt"
            )
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            cls = self.model(**inputs).last_hidden_state[:, 0]
            dense.append(F.normalize(cls, dim=-1).float().cpu().numpy())
        dense = np.concatenate(dense)[np.argsort(order)]
        return torch.from_numpy(dense).to(device=self.device, dtype=torch.float32)

    def token_counts(self, texts: list[str]) -> list[int]:
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return [len(x) for x in ids]


class SpeechBrainRecipeBrain(sb.Brain):
    """The per-step computation of the SpeechBrain SENSE recipe.

    ``modules``: ``encoder`` (``W2VBert``) and ``pooling`` (``AttentionPooling``);
    ``hparams``: ``teacher`` (called on the transcripts at every step),
    ``loss``, ``encoder_opt_class``, ``pooling_opt_class``.
    """

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        frames = self.modules.encoder(wavs, wav_lens)
        return self.modules.pooling(frames)  # no mask: padded frames are pooled too

    def compute_objectives(self, emb, batch, stage):
        target = self.hparams.teacher(batch.transcript)
        return self.hparams.loss(emb.float(), target.float())

    def init_optimizers(self):
        self.optimizers_dict = {
            "encoder": self.hparams.encoder_opt_class(self.modules.encoder.parameters()),
            "pooling": self.hparams.pooling_opt_class(self.modules.pooling.parameters()),
        }


def _optimizers(hparams: dict) -> dict:
    return {
        "encoder_opt_class": functools.partial(torch.optim.Adam, lr=ENCODER_LR),
        "pooling_opt_class": functools.partial(torch.optim.Adadelta, lr=POOLING_LR),
        **hparams,
    }


def _run_opts(device: torch.device, precision: str) -> dict:
    return {"device": str(device), "precision": precision, "max_grad_norm": 5.0}


def build_ours(student: str, teacher: str, batch, device, precision, workdir, options=None):
    """Our Brain and a function that runs one collated training step.

    ``options``: the encoder's :class:`sense.lobes.options.EncoderOptions`
    (default: trainable, as the recipes build it).
    """
    from sense.lobes.speech import HFSpeechEncoder
    from sense.lobes.text import SentenceEncoder
    from sense.nnet.pooling import AttentivePooling
    from sense.teacher_cache import TeacherCache

    encoder = HFSpeechEncoder(student, options=options)
    pooling = AttentivePooling(encoder.output_dim)
    # The teacher runs once, before training, and is then released.
    sentence_encoder = SentenceEncoder(teacher, pooling="cls")
    cache = TeacherCache.build(
        os.path.join(workdir, "teacher_cache"),
        dict(zip(batch.ids, batch.transcripts)),
        sentence_encoder,
        dtype="float32",
        progress=False,
    )
    del sentence_encoder
    brain = DistillationBrain(
        modules={"encoder": encoder, "pooling": pooling},
        hparams=_optimizers({"loss": cosine_distance}),
        run_opts=_run_opts(device, precision),
    )
    brain.init_optimizers()
    brain.modules.train()

    def step():
        rows = [
            {"id": uid, "sig": wav, "teacher_emb": cache[uid]}
            for uid, wav in zip(batch.ids, batch.wavs)
        ]
        return brain.fit_batch(PaddedBatch(rows))

    return brain, step, cache


def build_theirs(student: str, teacher: str, batch, device, precision, workdir, probe=False):
    """The SpeechBrain recipe's Brain and a function that runs one collated training step."""
    from speechbrain.integrations.huggingface.w2v_bert import W2VBert
    from speechbrain.nnet.pooling import AttentionPooling

    encoder = W2VBert(student, save_path=os.path.join(workdir, "sb_cache"), freeze=False)
    pooling = AttentionPooling(input_dim=encoder.model.config.hidden_size)
    flag_teacher = FlagStyleTeacher(teacher, device, probe=probe)
    brain = SpeechBrainRecipeBrain(
        modules={"encoder": encoder, "pooling": pooling},
        hparams=_optimizers({"loss": cosine_distance, "teacher": flag_teacher}),
        run_opts=_run_opts(device, precision),
    )
    brain.init_optimizers()
    brain.modules.train()

    def step():
        rows = [
            {"id": uid, "sig": wav, "transcript": text}
            for uid, wav, text in zip(batch.ids, batch.wavs, batch.transcripts)
        ]
        return brain.fit_batch(PaddedBatch(rows))

    return brain, step, flag_teacher


def _state_bytes(brain, *extra_modules) -> int:
    """Parameters, buffers and optimizer states a pipeline keeps between steps."""
    return module_bytes(brain.modules, *extra_modules) + optimizer_bytes(
        *brain.optimizers_dict.values()
    )


def run(
    size: str | Size = "small",
    rounds: int = 5,
    warmup: int = 1,
    device: str | torch.device | None = None,
    precision: str | None = None,
    num_utterances: int = 8,
    min_seconds: float = 2.0,
    max_seconds: float = 6.0,
    probe: bool = False,
    peak: float | None = None,
    workdir: str | None = None,
) -> dict:
    """Measure both training steps at one size, in alternation; return a JSON-able dict.

    Parameters
    ----------
    size : str or Size
        ``"tiny"``, ``"small"`` or ``"real"`` (see :mod:`benchmarks.models`).
    rounds : int
        Timed steps of each system (after ``warmup`` untimed ones each).
    device : str, optional
        ``"cpu"`` or ``"cuda"``; a GPU when there is one by default.
    precision : str, optional
        ``fp32`` (CPU default) or ``bf16`` (GPU default), for both steps.
    probe : bool
        Include FlagEmbedding's batch-size probe forward in the recipe's teacher.
    peak : float, optional
        Device peak in TFLOP/s for MFU (known GPUs are looked up by name).
    """
    size = SIZES[size] if isinstance(size, str) else size
    device = device if isinstance(device, torch.device) else pick_device(device)
    precision = precision or ("bf16" if device.type == "cuda" else "fp32")
    batch = synthetic_batch(num_utterances, min_seconds, max_seconds)
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="sense-bench-")
        workdir = own_tmp.name
    try:
        student = build_student(os.path.join(workdir, "student"), size)
        teacher = build_teacher(os.path.join(workdir, "teacher"), size)
        batch.fit_transcripts(_piece_counter(teacher))
        ours, our_step, cache = build_ours(student, teacher, batch, device, precision, workdir)
        theirs, their_step, flag_teacher = build_theirs(
            student, teacher, batch, device, precision, workdir, probe=probe
        )
        steps = alternate(
            {"ours": our_step, "theirs": their_step},
            rounds=rounds,
            device=device,
            warmup=warmup,
            memory=True,
        )
        components = _components(ours, theirs, flag_teacher, cache, batch, device, rounds)
        result = _summarise(
            size, device, precision, batch, ours, theirs, flag_teacher, steps, components, peak
        )
        result["probe"] = probe
        return result
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()


def _piece_counter(teacher: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _components(ours, theirs, flag_teacher, cache, batch, device, rounds) -> dict:
    """Time the parts in which the two steps differ, in alternation (medians, seconds)."""
    wavs, lens = pad(batch.wavs)
    wavs_dev, lens_dev = wavs.to(device), lens.to(device)
    extractor = theirs.modules.encoder.feature_extractor
    fbank = ours.modules.encoder.fbank

    def their_frontend():
        utts = undo_padding(wavs_dev.detach().cpu(), lens_dev.detach().cpu())
        inputs = extractor(utts, sampling_rate=16000, return_tensors="pt", padding=True)
        return {k: v.to(device) for k, v in inputs.items()}

    def our_frontend():
        with torch.no_grad():
            return fbank(wavs_dev, lens_dev)

    def their_teacher():
        with theirs.training_ctx:
            return flag_teacher(batch.transcripts)

    def our_teacher():
        return cache.get_batch(batch.ids).to(device)

    timed = alternate(
        {
            "their_frontend": their_frontend,
            "our_frontend": our_frontend,
            "their_teacher": their_teacher,
            "our_teacher_lookup": our_teacher,
        },
        rounds=rounds,
        device=device,
        warmup=1,
    )
    return {name: value["median_s"] for name, value in timed.items()}


def _summarise(size, device, precision, batch, ours, theirs, flag_teacher, steps, components, peak):
    config = ours.modules.encoder.model.config
    lengths = torch.tensor([len(w) for w in batch.wavs])
    frame_counts = W2VBertFbank.output_frames(lengths).tolist()
    model_flops = flops_mod.w2v_bert_train_flops(config, frame_counts)
    teacher_config = flag_teacher.model.config
    teacher_flops = flops_mod.xlmr_forward_flops(
        teacher_config, flag_teacher.token_counts(batch.transcripts)
    )
    if peak is None and device.type == "cuda":
        peak = flops_mod.peak_tflops(torch.cuda.get_device_name(device))

    state = {
        "ours": _state_bytes(ours),
        "theirs": _state_bytes(theirs, flag_teacher.model),
    }
    systems = {}
    for name in ("ours", "theirs"):
        seconds = steps[name]["median_s"]
        step_peak = steps[name]["step_peak_bytes"]
        systems[name] = {
            "step_median_s": round(seconds, 6),
            "step_times_s": steps[name]["times_s"],
            "audio_seconds_per_second": round(batch.audio_seconds / seconds, 3),
            "state_mb": round(state[name] / MB, 1),
            "step_peak_increase_mb": None if step_peak is None else round(step_peak / MB, 1),
            "peak_memory_mb": None
            if step_peak is None
            else round((state[name] + step_peak) / MB, 1),
            "model_tflops_per_s": round(model_flops / seconds / 1e12, 4),
            "mfu": _round(flops_mod.mfu(model_flops, seconds, peak)),
        }
    student_params = sum(p.numel() for p in ours.modules.encoder.parameters())
    teacher_params = sum(p.numel() for p in flag_teacher.model.parameters())
    return {
        "size": size.name,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision,
        "batch": batch.describe(),
        "student": {
            "parameters": student_params,
            "hidden_size": config.hidden_size,
            "layers": config.num_hidden_layers,
            "heads": config.num_attention_heads,
            "ffn": config.intermediate_size,
            "depthwise_kernel": config.conv_depthwise_kernel_size,
        },
        "teacher": {
            "parameters": teacher_params,
            "hidden_size": teacher_config.hidden_size,
            "layers": teacher_config.num_hidden_layers,
            "vocab_size": teacher_config.vocab_size,
            "tokens": flag_teacher.token_counts(batch.transcripts),
            "forward_gflops_per_step": round(teacher_flops / 1e9, 3),
        },
        "model_gflops_per_step": round(model_flops / 1e9, 3),
        "model_gflops_per_audio_second": round(model_flops / batch.audio_seconds / 1e9, 3),
        "peak_tflops": peak,
        "ours": systems["ours"],
        "theirs": systems["theirs"],
        "speedup": round(steps["theirs"]["median_s"] / steps["ours"]["median_s"], 3),
        "components_median_s": {k: round(v, 6) for k, v in components.items()},
    }


def _round(x, digits=4):
    return None if x is None else round(x, digits)
