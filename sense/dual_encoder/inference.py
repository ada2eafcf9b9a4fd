"""Loading a trained LLM dual encoder the SENSE way: ``from_hparams``, ``encode_file``, ``encode_text``.

:func:`export_dual_encoder` writes a folder that :class:`DualEncoder` loads
(locally or from the hub), and that ``sense index`` / ``sense search`` use as
they use a SENSE model (:func:`load_model` picks the class from the folder)::

    <folder>/hyperparams.yaml    the model (only trusted constructors, see sense.trust)
    <folder>/speech_encoder/     the speech encoder, cut at the tokenised layer
    <folder>/centroids.pt        [K, D] k-means centroids of the audio tokens
    <folder>/backbone/           the LLM with its extended vocabulary, and its tokenizer
    <folder>/projection.pt       the linear projection
    <folder>/meta.json           training information

Speech is tokenised (the speech encoder's layer at 25 Hz, nearest centroid),
the tokens go through the LLM with the speech prefix; text goes through the
same LLM with the text prefix. A recording is encoded whole, up to the
LLM's ``max_tokens`` (longer ones are cut there).

Example
-------
>>> model = DualEncoder.from_hparams(source="path/to/folder")  # doctest: +SKIP
>>> model.encode_file("talk.wav").shape, model.encode_text(["Bonjour."]).shape  # doctest: +SKIP
(torch.Size([256]), torch.Size([1, 256]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from sense import formats
from sense.dataio import AudioError
from sense.export import has_format, save_encoder, save_state, write_description
from sense.hparams_yaml import PLACEHOLDER, New, in_folder
from sense.hparams_yaml import render_hparams as render_hparams_yaml
from sense.inference import SENSE, WindowEmbeddings, audio_error_reason
from sense.io import check_output_folder, staged_folder

MODEL_CLASS = formats.DUAL_ENCODER
SPEECH_DIR = "speech_encoder"
BACKBONE_DIR = "backbone"
CENTROIDS_FILE = "centroids.pt"
PROJECTION_FILE = "projection.pt"
FORMAT_VERSION = 1
TEXT_BATCH_SIZE = 32


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
    """Write a trained dual encoder as a folder :class:`DualEncoder` loads; returns ``folder``.

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


class DualEncoder(SENSE):
    """A trained LLM dual encoder: speech and text into one space with one transformer.

    Loaded with :meth:`from_hparams` (as :class:`sense.inference.SENSE`) from
    a folder written by :func:`export_dual_encoder`, or a hub id holding one.

    Example
    -------
    >>> model = DualEncoder.from_hparams(source="path/to/folder", device="cpu")  # doctest: +SKIP
    >>> model.encode_batch(torch.randn(2, 16000), torch.tensor([1.0, 0.5])).shape  # doctest: +SKIP
    torch.Size([2, 256])
    """

    MODULES_NEEDED = ["audio_tokenizer", "llm", "projection"]
    HPARAMS_NEEDED = ["sample_rate", "model_dir"]

    @property
    def output_dim(self) -> int:
        return int(self.mods.projection.out_features)

    def _embed(self, sequences: list[list[int]], normalize: bool | None) -> torch.Tensor:
        ids, mask = self.mods.llm.collate(sequences)
        with self.inference_ctx:
            emb = self.mods.projection(self.mods.llm(ids.to(self.device), mask.to(self.device)))
        return self._normalize(emb.float(), normalize).cpu()

    @torch.no_grad()
    def encode_tokens(
        self, token_seqs: Sequence[torch.Tensor], batch_size: int = TEXT_BATCH_SIZE, normalize=None
    ) -> torch.Tensor:
        """Embed utterances already tokenised (e.g. read from a token cache): [B, D]."""
        inputs = self.mods.llm.audio_inputs(list(token_seqs))
        rows = [
            self._embed(inputs[i : i + batch_size], normalize)
            for i in range(0, len(inputs), batch_size)
        ]
        return torch.cat(rows)

    @torch.no_grad()
    def encode_batch(self, wavs, wav_lens=None, normalize: bool | None = None) -> torch.Tensor:
        """Embed a padded batch of 16 kHz waveforms: [B, T] -> [B, D] ([T] -> [D])."""
        single = wavs.dim() == 1
        wavs = wavs.reshape(-1, wavs.shape[-1]).to(self.device).float()
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        tokens, token_lens = self.mods.audio_tokenizer(wavs, wav_lens.to(self.device).float())
        counts = torch.round(token_lens * tokens.shape[1]).long().tolist()
        emb = self._embed(
            self.mods.llm.audio_inputs([t[:n] for t, n in zip(tokens, counts)]), normalize
        )
        return emb[0] if single else emb

    @torch.no_grad()
    def encode_waveforms(
        self, wavs: Sequence[torch.Tensor], windows: bool = False, normalize=None, **settings
    ):
        """Embed waveforms of any lengths, each whole: a [D] tensor each (or one window each)."""
        tokens = self.mods.audio_tokenizer.tokenize_waveforms([w.reshape(-1) for w in wavs])
        embs = self._embed(self.mods.llm.audio_inputs(tokens), normalize)
        if not windows:
            return list(embs)
        return [
            WindowEmbeddings(
                e[None],
                torch.tensor([[0.0, len(w) / self.sample_rate]]).double(),
                len(w) / self.sample_rate,
            )
            for e, w in zip(embs, wavs)
        ]

    def encode_files(
        self,
        paths,
        windows: bool = False,
        batch_size: int = 8,
        normalize=None,
        progress: bool = False,
        **settings,
    ):
        """Embed audio files, skipping (and reporting) unreadable ones: ``(results, failures)``."""
        results, failures = {}, []
        for start in range(0, len(paths), batch_size):
            loaded, wavs = [], []
            for path in paths[start : start + batch_size]:
                try:
                    wavs.append(self.load_audio(path))
                    loaded.append(path)
                except AudioError as err:
                    failures.append((path, audio_error_reason(err)))
            if wavs:
                embs = self.encode_waveforms(wavs, windows=windows, normalize=normalize)
                results.update(zip(loaded, embs))
        return results, failures

    @torch.no_grad()
    def encode_text(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
        normalize: bool | None = None,
    ) -> torch.Tensor:
        """Embed sentences with the same LLM (text prefix): [B, D] float32 on the CPU."""
        if isinstance(texts, str):
            texts = [texts]
        step = batch_size or TEXT_BATCH_SIZE
        rows = [
            self._embed(self.mods.llm.text_inputs(list(texts[i : i + step])), normalize)
            for i in range(0, len(texts), step)
        ]
        return torch.cat(rows)

    def attention_file(self, path, **kwargs):
        raise ValueError("a dual encoder has no attention pooling: attention needs a SENSE model")


def load_model(source: str, savedir: str | None = None, **kwargs):
    """A SENSE model or a dual encoder, whichever the folder (or hub id) holds.

    Keyword arguments go to ``from_hparams`` (``device``, ``precision``,
    ``trust_remote_code``, ...).
    """
    return formats.load(
        source, formats.EMBEDDING_FORMATS, default=formats.SENSE_MODEL, savedir=savedir, **kwargs
    )
