"""Tiny SpeechBrain SENSE and SAMU checkpoints, written by SpeechBrain itself.

:func:`build_speechbrain_run` plays the part of a finished SpeechBrain
training run, for tests of :mod:`sense.speechbrain_import` and for trying
``sense import`` without the real 600M-parameter checkpoint:

- a recipe file (``train_sense.yaml`` or ``train_samu.yaml``) with the layout
  of SpeechBrain's recipes (``recipes/CommonVoice/SENSE``: ``W2VBert`` +
  ``AttentionPooling``, BGE-M3 teacher; ``recipes/IWSLT22_lowresource``:
  ``Wav2Vec2`` + ``AttentionPooling``, LaBSE teacher), pointing at tiny base
  models of :mod:`sense.demo.tiny`;
- the modules built from it with ``hyperpyyaml.load_hyperpyyaml``, as the
  recipe's ``train.py`` builds them;
- ``<run>/hyperparams.yaml`` with the references resolved, as
  ``speechbrain.core.create_experiment_directory`` writes it;
- one checkpoint saved by the recipe's ``speechbrain.utils.checkpoints.Checkpointer``
  (``<run>/save/CKPT+checkpoint_epoch1/``: ``model.ckpt``, ``wav2vec2.ckpt``,
  the schedulers, the epoch counter, ``CKPT.yaml``).

Every trained weight is moved away from the base model before the save, so an
importer that read the base instead of the checkpoint would be caught.

``python -m sense.testing.speechbrain FOLDER [--recipe samu]`` writes one
and prints its paths.

The BGE-M3 wrapper of SpeechBrain imports flair and spacy; it is not part of
the checkpoint, so it is written to the recipe but not built
(``bge_model`` is overridden with ``null`` when the modules are made).

Example
-------
>>> import tempfile
>>> run = build_speechbrain_run(tempfile.mkdtemp())
>>> sorted(p.name for p in run.checkpoint.iterdir())  # doctest: +NORMALIZE_WHITESPACE
['CKPT.yaml', 'counter.ckpt', 'lr_annealing_adam.ckpt', 'lr_annealing_wav2vec.ckpt',
 'model.ckpt', 'wav2vec2.ckpt']
"""

from __future__ import annotations

import datetime
import os
import pathlib
from dataclasses import dataclass

import torch

from sense.demo import tiny

RECIPES = ("sense", "samu")
CHECKPOINT_NAME = "checkpoint_epoch1"
# How far each trained weight is moved from its initial value.
WEIGHT_SHIFT = 0.05

# The parts both recipes share; the {fields} are what differs.
_RECIPE = """\
# Tiny {title}.
output_folder: !PLACEHOLDER
save_folder: !ref <output_folder>/save
{teacher}
wav2vec2_hub: {base}
wav2vec2_frozen: False
lr: {lr}
lr_wav2vec: 0.00001
d_model: {dim}

epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
  limit: 2

wav2vec2: !new:speechbrain.integrations.huggingface.{encoder}
  source: !ref <wav2vec2_hub>
  freeze: !ref <wav2vec2_frozen>
  save_path: !ref <save_folder>/wav2vec2_checkpoint

attn_pooling: !new:speechbrain.nnet.pooling.AttentionPooling
  input_dim: !ref <d_model>
{head}
modules:
  wav2vec2: !ref <wav2vec2>
  attn_pooling: !ref <attn_pooling>
  {teacher_name}: !ref <{teacher_name}>

model: !new:torch.nn.ModuleList
{model}

lr_annealing_adam: !new:speechbrain.nnet.schedulers.NewBobScheduler
  initial_value: !ref <lr>
  annealing_factor: 0.5
  patient: 2

lr_annealing_wav2vec: !new:speechbrain.nnet.schedulers.NewBobScheduler
  initial_value: !ref <lr_wav2vec>
  annealing_factor: 0.9

checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
  checkpoints_dir: !ref <save_folder>
  recoverables:
    model: !ref <model>
    wav2vec2: !ref <wav2vec2>{saved_teacher}
    lr_annealing_adam: !ref <lr_annealing_adam>
    lr_annealing_wav2vec: !ref <lr_annealing_wav2vec>
    counter: !ref <epoch_counter>
"""

_BGE_M3 = """
bge_path: {source}
bge_model: !new:speechbrain.integrations.nlp.bgeM3_embeddings.BGEM3SentenceEmbeddings
  source: !ref <bge_path>
  use_fp16: True
  return_dense: True
"""

_LABSE = """
labse_path: {source}
labse_frozen: True
LaBSE: !new:speechbrain.integrations.huggingface.labse.LaBSE
  source: !ref <labse_path>
  freeze: !ref <labse_frozen>
  output_norm: True
  save_path: !ref <save_folder>/labse_checkpoint
"""

# recipe -> (teacher block, its name, its line among the recoverables when saved)
_TEACHERS = {
    "sense": (_BGE_M3, "bge_model", ""),
    "samu": (_LABSE, "LaBSE", "\n    LaBSE: !ref <LaBSE>"),
}
# recipe -> (encoder wrapper, head learning rate, title, the model ModuleList's arguments)
_ENCODERS = {
    "sense": (
        "w2v_bert.W2VBert",
        1.5,
        "SENSE run in the layout of SpeechBrain's recipes/CommonVoice/SENSE",
        "  modules: [!ref <attn_pooling>]",
    ),
    "samu": (
        "wav2vec2.Wav2Vec2",
        0.001,
        "SAMU run in the layout of SpeechBrain's recipes/IWSLT22_lowresource",
        # SpeechBrain's train_samu.yaml lists the pooling twice
        "  - [!ref <attn_pooling>, !ref <attn_pooling>]",
    ),
}

# SAMU-XLSR's head: pooling, a linear projection to the teacher's size, tanh.
_SAMU_PROJECTION = """
proj: !new:speechbrain.nnet.linear.Linear
  input_size: !ref <d_model>
  n_neurons: {out}

tanh: !new:torch.nn.Tanh
"""


@dataclass
class SpeechBrainRun:
    """The files of a finished tiny SpeechBrain run and the modules it trained.

    Attributes
    ----------
    recipe : pathlib.Path
        The recipe's hparams file (with ``!ref`` and ``!PLACEHOLDER``).
    hparams : pathlib.Path
        ``<run>/hyperparams.yaml`` as SpeechBrain writes it.
    checkpoint : pathlib.Path
        ``<run>/save/CKPT+checkpoint_epoch1``.
    base : str
        Folder of the tiny base speech model the recipe names.
    teacher : str
        Folder of the tiny teacher the recipe names (BGE-M3-like or LaBSE-like).
    modules : dict
        The hparams built by ``load_hyperpyyaml`` (``wav2vec2``, ``model``, ...).
    """

    recipe: pathlib.Path
    hparams: pathlib.Path
    checkpoint: pathlib.Path
    base: str
    teacher: str
    modules: dict


def render_recipe(recipe: str, base: str, teacher: str, dim: int, projection: int | None) -> str:
    """The hparams file of a tiny SpeechBrain ``recipe`` ("sense" or "samu").

    ``projection`` adds SAMU-XLSR's ``Linear(dim, projection)`` and ``tanh``
    after the pooling (SAMU only); SpeechBrain's own SAMU recipe has none and
    lists the pooling twice in its ``model`` ``ModuleList``.

    Example
    -------
    >>> "W2VBert" in render_recipe("sense", "/base", "/teacher", 32, None)
    True
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if recipe == "sense" and projection:
        raise ValueError("the SENSE recipe has no projection")
    teacher_block, teacher_name, saved_teacher = _TEACHERS[recipe]
    encoder, lr, title, members = _ENCODERS[recipe]
    head = ""
    if projection:
        title += ",\n# with SAMU-XLSR's projection and tanh"
        head = _SAMU_PROJECTION.format(out=projection)
        members = "  - [!ref <attn_pooling>, !ref <proj>, !ref <tanh>]"
    return _RECIPE.format(
        title=title,
        teacher=teacher_block.format(source=teacher),
        teacher_name=teacher_name,
        saved_teacher=saved_teacher,
        base=base,
        lr=lr,
        dim=dim,
        encoder=encoder,
        head=head,
        model=members,
    )


def write_resolved_hparams(recipe: str | os.PathLike, folder: str | os.PathLike, overrides: dict):
    """Write ``<folder>/hyperparams.yaml`` as ``create_experiment_directory`` does.

    The references are resolved with ``hyperpyyaml.resolve_references`` under
    the same three header lines; nothing else of that function (logging set-up,
    copy of the calling script) is run.
    """
    from hyperpyyaml import resolve_references

    path = pathlib.Path(folder) / "hyperparams.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(recipe, encoding="utf-8") as f:
        resolved = resolve_references(f, overrides).getvalue()
    header = f"# Generated {datetime.date.today()} from:\n# {os.path.abspath(recipe)}\n"
    path.write_text(header + "# yamllint disable\n" + resolved, encoding="utf-8")
    return path


def _build_modules(recipe_file: pathlib.Path, run: pathlib.Path) -> dict:
    """The recipe's objects, built by ``load_hyperpyyaml`` as its ``train.py`` builds them."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {"output_folder": str(run)}
    text = recipe_file.read_text(encoding="utf-8")
    if "bge_model:" in text:
        # SpeechBrain's BGE-M3 wrapper needs flair and spacy; the checkpoint does not hold it.
        overrides["bge_model"] = None
    return load_hyperpyyaml(text, overrides)


def recover_speechbrain_run(run: SpeechBrainRun) -> dict:
    """Fresh modules of ``run``'s recipe, loaded from its checkpoint by SpeechBrain.

    The recipe's ``Checkpointer`` recovers its checkpoint into newly built
    modules (strict loading), which are returned in eval mode: SpeechBrain's
    side of a comparison with an imported model.
    """
    modules = _build_modules(run.recipe, run.checkpoint.parent.parent)
    checkpoint = modules["checkpointer"].recover_if_possible()
    if checkpoint is None or pathlib.Path(checkpoint.path) != run.checkpoint:
        raise RuntimeError(f"SpeechBrain did not recover {run.checkpoint}")
    for name in ("wav2vec2", "model"):
        modules[name].eval()
    return modules


def _shift_weights(module: torch.nn.Module, seed: int) -> None:
    """Move every floating-point parameter by seeded noise (a stand-in for training)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.is_floating_point():
                param.add_(WEIGHT_SHIFT * torch.randn(param.shape, generator=gen))


def build_speechbrain_run(
    folder: str | os.PathLike,
    recipe: str = "sense",
    projection: int | None = None,
    base: str | None = None,
    teacher: str | None = None,
    seed: int = 0,
) -> SpeechBrainRun:
    """Train nothing, but leave what a SpeechBrain SENSE or SAMU run leaves.

    Parameters
    ----------
    folder : str or os.PathLike
        Where to write: ``base/`` and ``teacher/`` (the tiny models, unless
        given), ``train_<recipe>.yaml`` and the run in ``results/``.
    recipe : {"sense", "samu"}
        ``W2VBert`` + BGE-M3, or ``Wav2Vec2`` + LaBSE.
    projection : int, optional
        SAMU only: add a linear projection to this size and ``tanh``.
    base, teacher : str, optional
        Existing tiny model folders to use instead of building new ones.
    seed : int
        Seed of the weights' shift away from the base model.

    Returns
    -------
    SpeechBrainRun
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    root = pathlib.Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if base is None:
        build = tiny.build_tiny_w2v_bert if recipe == "sense" else tiny.build_tiny_wav2vec2
        base = build(str(root / "base"))
    if teacher is None:
        build = tiny.build_tiny_xlm_roberta if recipe == "sense" else tiny.build_tiny_bert
        teacher = build(str(root / "teacher"))
    text = render_recipe(recipe, base, teacher, tiny.TINY_HIDDEN, projection)
    recipe_file = root / f"train_{recipe}.yaml"
    recipe_file.write_text(text, encoding="utf-8")

    run = root / "results"
    hparams_file = write_resolved_hparams(recipe_file, run, {"output_folder": str(run)})
    modules = _build_modules(recipe_file, run)
    _shift_weights(modules["wav2vec2"], seed)
    _shift_weights(modules["model"], seed + 1)
    checkpointer = modules["checkpointer"]
    checkpointer.save_and_keep_only(
        meta={"loss": 0.5, "epoch": 1}, name=CHECKPOINT_NAME, num_to_keep=10, min_keys=["loss"]
    )
    return SpeechBrainRun(
        recipe=recipe_file,
        hparams=hparams_file,
        checkpoint=pathlib.Path(checkpointer.checkpoints_dir) / f"CKPT+{CHECKPOINT_NAME}",
        base=base,
        teacher=teacher,
        modules=modules,
    )


#: ``(file name, language, sentence)`` of the example clips beside a tiny run.
EXAMPLE_CLIPS = (
    ("en_0.wav", "en", "The cat sleeps on the red sofa."),
    ("fr_1.wav", "fr", "Le chat dort sur le canapé rouge."),
    ("de_2.flac", "de", "Die Katze schläft auf dem roten Sofa."),
    ("es_3.wav", "es", "El médico lee una carta larga."),
)
#: Sentences of ``sentences.txt`` beside a tiny run.
EXAMPLE_SENTENCES = (
    "The cat sleeps on the red sofa.",
    "Le chat dort sur le canapé rouge.",
    "The doctor reads a long letter.",
    "El médico lee una carta larga.",
)
#: ``talk.flac`` (longer than a model's 30 s ``max_duration``) repeats the clips this often.
TALK_REPEATS = 5
TALK_PAUSE_S = 0.5


def write_example_inputs(folder: str | os.PathLike) -> dict[str, str]:
    """``clips/`` (espeak-ng speech, one long ``talk.flac``) and ``sentences.txt`` in ``folder``.

    What the README's commands after ``sense import`` read.

    Example
    -------
    >>> import tempfile
    >>> paths = write_example_inputs(tempfile.mkdtemp())  # doctest: +SKIP
    >>> sorted(os.listdir(paths["clips"]))  # doctest: +SKIP
    ['de_2.flac', 'en_0.wav', 'es_3.wav', 'fr_1.wav', 'talk.flac']
    """
    import numpy as np
    import soundfile as sf

    from sense.dataio import resample
    from sense.demo.synth import EspeakSynthesizer

    clips = pathlib.Path(folder) / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    tts = EspeakSynthesizer()
    waves = []
    for name, lang, sentence in EXAMPLE_CLIPS:
        wav, rate, _ = tts.synthesize(sentence, lang)
        wav = resample(torch.from_numpy(np.asarray(wav, dtype=np.float32)), rate, 16000).numpy()
        sf.write(clips / name, wav, 16000)
        waves += [wav, np.zeros(int(TALK_PAUSE_S * 16000), dtype=np.float32)]
    sf.write(clips / "talk.flac", np.concatenate(waves * TALK_REPEATS), 16000)
    sentences = pathlib.Path(folder) / "sentences.txt"
    sentences.write_text("\n".join(EXAMPLE_SENTENCES) + "\n", encoding="utf-8")
    return {"clips": str(clips), "sentences": str(sentences)}


def main(argv: list[str] | None = None) -> None:
    """``python -m sense.testing.speechbrain FOLDER``: write a tiny run, print its paths."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m sense.testing.speechbrain",
        description="Write a tiny SpeechBrain SENSE or SAMU run (base and teacher models, "
        "hyperparams.yaml, one checkpoint) to try `sense import` on.",
    )
    parser.add_argument("folder")
    parser.add_argument("--recipe", choices=RECIPES, default="sense")
    parser.add_argument("--projection", type=int, help="SAMU-XLSR's projection size (samu)")
    parser.add_argument(
        "--no-examples",
        action="store_true",
        help="no clips/ and sentences.txt (espeak-ng speech) beside the run",
    )
    args = parser.parse_args(argv)
    run = build_speechbrain_run(args.folder, args.recipe, args.projection)
    for name in ("checkpoint", "hparams", "base", "teacher"):
        print(f"{name}: {getattr(run, name)}")
    if not args.no_examples:
        for name, path in write_example_inputs(args.folder).items():
            print(f"{name}: {path}")


if __name__ == "__main__":
    main()
