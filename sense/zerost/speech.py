"""The frozen speech encoder of ZeroST, with adapters and a projection to the Q-Former.

:class:`WhisperEncoder` runs the encoder of a transformers Whisper checkpoint
(``openai/whisper-large-v3``) on 16 kHz waveforms, with the checkpoint's own
log-mel front-end (``WhisperFeatureExtractor``, its torch STFT on the
model's device); wav2vec2 / MMS and w2v-BERT 2.0 (and ``sense`` model folders)
go through :class:`sense.lobes.speech.HFSpeechEncoder`.
:class:`AdaptedSpeechEncoder` freezes either, adds bottleneck adapters after
self-attention and after the feed-forward block of every layer, and projects
the frames to the Q-Former's width.

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_wav2vec2
>>> encoder = AdaptedSpeechEncoder(build_tiny_wav2vec2(tempfile.mkdtemp()), output_dim=8)
>>> frames, lens = encoder(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
>>> frames.shape, sorted({n.split(".")[0] for n, p in encoder.named_parameters() if p.requires_grad})
(torch.Size([2, 49, 8]), ['adapters', 'projection'])
"""

from __future__ import annotations

import os

import torch
from torch import nn

from sense.dataio import check_waveform_batch
from sense.lobes.speech import HFSpeechEncoder, load_config, resolve_encoder_source
from sense.zerost.adapters import DEFAULT_BOTTLENECK, EncoderAdapters, adapter_sites

WHISPER = "whisper"
#: Architecture of a saved Whisper encoder alone (``save_pretrained`` of
#: :attr:`WhisperEncoder.model`, as an export writes it).
ENCODER_ONLY = "WhisperEncoder"
#: Stride of Whisper's second convolution: one encoder frame per two mel frames.
WHISPER_CONV_STRIDE = 2


class WhisperEncoder(nn.Module):
    """The encoder of a Whisper checkpoint: (waveforms, lengths) -> (frames, lengths).

    Whisper reads a fixed window (30 s in the released models): each
    utterance is padded or cut to it, and the relative lengths returned say
    which frames hold speech.

    Parameters
    ----------
    source : str
        Hub id or folder of a Whisper checkpoint with its feature extractor
        (the whole model, or its encoder alone as an export saves it).

    Attributes
    ----------
    model : transformers WhisperEncoder
    output_dim : int
    model_type : str
        ``"whisper"``.

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_whisper
    >>> encoder = WhisperEncoder(build_tiny_whisper(tempfile.mkdtemp())).eval()
    >>> frames, lens = encoder(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> frames.shape, lens.tolist()
    (torch.Size([2, 100, 32]), [0.5, 0.25])
    """

    def __init__(self, source: str):
        super().__init__()
        from transformers import WhisperFeatureExtractor, WhisperModel
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as Encoder

        self.source = os.fspath(source)
        try:
            self.extractor = WhisperFeatureExtractor.from_pretrained(self.source)
            if ENCODER_ONLY in (load_config(self.source).architectures or ()):
                self.model = Encoder.from_pretrained(self.source)
            else:
                self.model = WhisperModel.from_pretrained(self.source).get_encoder()
        except (OSError, ValueError) as err:
            raise OSError(f"WhisperEncoder: cannot load {self.source!r}: {err}") from err
        self.model_type = WHISPER
        self.output_dim = int(self.model.config.d_model)
        self.sample_rate = int(self.extractor.sampling_rate)
        self.layers = self.model.layers

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None):
        """``[B, S]`` 16 kHz waveforms -> frames ``[B, T, D]`` and relative lengths ``[B]``."""
        _, counts = check_waveform_batch(wavs, wav_lens, "WhisperEncoder")
        rows = [w[:n].float().cpu().numpy() for w, n in zip(wavs, counts.tolist())]
        features = self.extractor(
            rows,
            sampling_rate=self.sample_rate,
            return_tensors="pt",
            padding="max_length",
            device=str(wavs.device),
        ).input_features.to(wavs.device, self.model.dtype)
        frames = self.model(input_features=features).last_hidden_state
        window = self.extractor.n_samples
        mel_frames = counts.clamp(max=window).float() / self.extractor.hop_length
        out = torch.ceil(mel_frames / WHISPER_CONV_STRIDE).clamp(1, frames.shape[1])
        return frames, out / frames.shape[1]

    @property
    def window_seconds(self) -> float:
        """Longest input in seconds (30 in the released models); longer audio is cut."""
        return self.extractor.n_samples / self.sample_rate


def load_speech_encoder(source: str) -> nn.Module:
    """Whisper, wav2vec2 / MMS or w2v-BERT 2.0 (or a ``sense`` model folder) by its config.

    Returns a module with ``forward(wavs, wav_lens) -> (frames, frame_lens)``,
    ``output_dim``, ``model_type`` and the transformers model as ``model``.
    """
    resolved = resolve_encoder_source(source)
    if load_config(resolved).model_type == WHISPER:
        return WhisperEncoder(resolved)
    return HFSpeechEncoder(resolved)


def encoder_layers(encoder: nn.Module):
    """The transformer layers of a loaded speech encoder."""
    return encoder.model.layers if encoder.model_type == WHISPER else encoder.model.encoder.layers


class AdaptedSpeechEncoder(nn.Module):
    """A frozen speech encoder with trainable adapters and a linear projection.

    Parameters
    ----------
    source : str
        Whisper, wav2vec2 / MMS or w2v-BERT 2.0 (hub id or folder), or a
        ``sense`` model folder.
    output_dim : int
        Width of the projected frames (the Q-Former's).
    bottleneck : int
        Width of each adapter's bottleneck.
    stages : sequence of str
        Adapter stages to create (``["kd"]``; the NLL step adds ``"nll"``).

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_whisper
    >>> encoder = AdaptedSpeechEncoder(build_tiny_whisper(tempfile.mkdtemp()), 16, bottleneck=4)
    >>> encoder(torch.randn(1, 8000))[0].shape, encoder.adapters.num_sites
    (torch.Size([1, 100, 16]), 4)
    """

    def __init__(
        self,
        source: str,
        output_dim: int,
        bottleneck: int = DEFAULT_BOTTLENECK,
        stages=("kd",),
    ):
        super().__init__()
        self.encoder = load_speech_encoder(source)
        self.source = self.encoder.source
        self.encoder.requires_grad_(False)
        sites = adapter_sites(encoder_layers(self.encoder), self.encoder.model_type)
        self.adapters = EncoderAdapters(sites, self.encoder.output_dim, bottleneck, stages)
        self.projection = nn.Linear(self.encoder.output_dim, output_dim)
        self.output_dim = int(output_dim)
        self.train(self.training)

    def train(self, mode: bool = True):
        """Adapters and projection follow ``mode``; the frozen encoder stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None):
        """``[B, S]`` waveforms -> projected frames ``[B, T, output_dim]`` and lengths ``[B]``."""
        frames, frame_lens = self.encoder(wavs, wav_lens)
        return self.projection(frames), frame_lens

    @property
    def min_samples(self) -> int:
        """Fewest input samples the frozen encoder reads (1 for Whisper, which pads)."""
        return getattr(self.encoder, "min_samples", 1)

    def trained_parts(self) -> nn.ModuleDict:
        """What learns, as one module (``adapters``, ``projection``): what an export saves."""
        return nn.ModuleDict({"adapters": self.adapters, "projection": self.projection})


def load_trained_parts(encoder: AdaptedSpeechEncoder, path: str) -> None:
    """Pretrainer hook: the adapters and projection of ``encoder`` from ``path``, strictly."""
    from sense.export import load_state_dict_strict

    load_state_dict_strict(encoder.trained_parts(), path)


__all__ = [
    "AdaptedSpeechEncoder",
    "WhisperEncoder",
    "encoder_layers",
    "load_speech_encoder",
    "load_trained_parts",
]
