"""Export a trained LLM dual encoder as a folder that :class:`~sense.dual_encoder.inference.DualEncoder` loads.

The folder::

    <folder>/hyperparams.yaml    the model (only trusted constructors, see sense.trust)
    <folder>/speech_encoder/     the speech encoder, cut at the tokenised layer
    <folder>/centroids.pt        [K, D] k-means centroids of the audio tokens
    <folder>/backbone/           the LLM with its extended vocabulary, and its tokenizer
    <folder>/projection.pt       the linear projection
    <folder>/meta.json           training information

Example
-------
>>> import tempfile, torch
>>> from sense.demo.tiny import build_tiny_llm, build_tiny_w2v_bert
>>> from sense.dual_encoder.model import LLMEncoder
>>> from sense.dual_encoder.tokens import AudioTokenizer
>>> tokenizer = AudioTokenizer(build_tiny_w2v_bert(tempfile.mkdtemp()), output_layer=1, num_tokens=4)
>>> llm = LLMEncoder(build_tiny_llm(tempfile.mkdtemp()), num_audio_tokens=4)
>>> folder = export_dual_encoder(os.path.join(tempfile.mkdtemp(), "m"), tokenizer, llm,
...                              torch.nn.Linear(llm.output_dim, 16))
>>> is_dual_encoder_folder(folder), sorted(os.listdir(folder))[:3]
(True, ['backbone', 'centroids.pt', 'hyperparams.yaml'])
"""

from __future__ import annotations

import os

import torch

from sense import formats
from sense.export import has_format, save_encoder, save_state, write_description
from sense.hparams_yaml import PLACEHOLDER, New, in_folder
from sense.hparams_yaml import render_hparams as render_hparams_yaml
from sense.io import check_output_folder, staged_folder

MODEL_CLASS = formats.DUAL_ENCODER
SPEECH_DIR = "speech_encoder"
BACKBONE_DIR = "backbone"
CENTROIDS_FILE = "centroids.pt"
PROJECTION_FILE = "projection.pt"
FORMAT_VERSION = 1


def is_dual_encoder_folder(folder: str) -> bool:
    """Whether ``folder`` holds an exported dual encoder."""
    return has_format(folder, MODEL_CLASS)


def render_hparams(tokenizer, llm, projection, normalize: bool = True) -> str:
    """The ``hyperparams.yaml`` of an exported dual encoder."""
    max_duration = llm.max_tokens / tokenizer.token_rate
    entries = {
        "model_class": MODEL_CLASS,
        "sample_rate": 16000,
        "model_dir": PLACEHOLDER,
        "normalize": bool(normalize),
        "max_duration": float(max_duration),
        "window_duration": float(max_duration),
        "window_overlap": 0.0,
        "window_split": "fixed",
        "audio_tokenizer": New(
            "sense.dual_encoder.tokens.AudioTokenizer",
            {
                "source": in_folder(SPEECH_DIR),
                "output_layer": int(tokenizer.encoder.num_layers),
                "num_tokens": int(tokenizer.num_tokens),
                "token_rate": float(tokenizer.token_rate),
                "centroids_file": in_folder(CENTROIDS_FILE),
            },
        ),
        "llm": New(
            "sense.dual_encoder.model.LLMEncoder",
            {
                "source": in_folder(BACKBONE_DIR),
                "num_audio_tokens": int(llm.num_audio_tokens),
                "num_text_tokens": int(llm.num_text_tokens),
                "prefix": llm.prefix,
                "max_tokens": int(llm.max_tokens),
            },
        ),
        "projection": New(
            "torch.nn.Linear",
            {"in_features": projection.in_features, "out_features": projection.out_features},
        ),
    }
    comments = {
        "max_duration": "A recording is encoded whole, cut at the LLM's max_tokens (seconds at "
        "the token rate)."
    }
    return render_hparams_yaml(
        f"# sense LLM speech-text dual encoder (sense.dual_encoder), format {FORMAT_VERSION}",
        entries,
        comments,
        modules=["audio_tokenizer", "llm", "projection"],
        loadables={"projection": PROJECTION_FILE},
    )


def export_dual_encoder(
    folder: str, tokenizer, llm, projection, extra: dict | None = None, normalize: bool = True
) -> str:
    """Write a trained dual encoder as a folder ``DualEncoder`` loads; returns ``folder``.

    Parameters
    ----------
    folder : str
        Destination (written beside it, then renamed; only an earlier export
        or an empty folder is ever replaced).
    tokenizer : AudioTokenizer
        The audio tokenizer the model was trained with.
    llm : LLMEncoder
        The trained LLM (LoRA adapters are merged).
    projection : torch.nn.Linear
        The trained projection.
    extra : dict, optional
        Training information for ``meta.json``.
    """
    folder = os.path.abspath(os.fspath(folder))
    check_output_folder(folder, is_dual_encoder_folder, "sense dual encoder")
    with staged_folder(folder) as tmp:
        save_encoder(tokenizer.encoder, os.path.join(tmp, SPEECH_DIR))
        torch.save(tokenizer.centroids.detach().cpu().clone(), os.path.join(tmp, CENTROIDS_FILE))
        llm.save_pretrained(os.path.join(tmp, BACKBONE_DIR))
        save_state(projection, os.path.join(tmp, PROJECTION_FILE))
        write_description(
            tmp,
            render_hparams(tokenizer, llm, projection, normalize),
            MODEL_CLASS,
            FORMAT_VERSION,
            speech_encoder={"trained_from": tokenizer.source, "layer": tokenizer.output_layer},
            backbone={"trained_from": llm.source, "lora": llm.lora},
            embedding_dim=int(projection.out_features),
            extra=extra or {},
        )
    return folder
