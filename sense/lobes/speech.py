"""Speech encoders from transformers: w2v-BERT 2.0 and wav2vec2 / XLS-R.

:class:`HFSpeechEncoder` turns a padded batch of 16 kHz waveforms and their
SpeechBrain relative lengths into encoder frames and the frames' relative
lengths. It loads the model with the real ``from_pretrained`` code, from a hub
id or from a local directory in the hub layout, and carries the model's input
front-end with it:

- w2v-BERT 2.0 (``model_type == "wav2vec2-bert"``) reads stacked log-mel
  filterbanks: :class:`sense.features.W2VBertFbank` computes them on the
  model's device, batched, inside ``forward``;
- wav2vec2 / XLS-R (``model_type == "wav2vec2"``) reads the raw waveform,
  normalised per utterance over its real samples when the checkpoint's feature
  extractor says ``do_normalize``.

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_w2v_bert
>>> encoder = HFSpeechEncoder(build_tiny_w2v_bert(tempfile.mkdtemp())).eval()
>>> frames, frame_lens = encoder(torch.randn(2, 32000), torch.tensor([1.0, 0.5]))
>>> frames.shape
torch.Size([2, 99, 32])
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from sense.dataio import check_waveform_batch
from sense.features import W2VBertFbank
from sense.io import is_hub_id
from sense.lobes.attention import HF_IMPLEMENTATION, use_attention
from sense.lobes.options import EncoderOptions

logger = logging.getLogger(__name__)

W2V_BERT = "wav2vec2-bert"
WAV2VEC2 = "wav2vec2"
SUPPORTED_MODEL_TYPES = (W2V_BERT, WAV2VEC2)
# Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
WAVEFORM_NORM_EPS = 1e-7
#: Recompilations allowed per compiled layer: length buckets up to 30 s, and
#: the batch size turning dynamic.
COMPILED_SHAPES = 64


def _model_class(model_type: str):
    """The transformers class of a supported ``model_type``."""
    if model_type == W2V_BERT:
        from transformers import Wav2Vec2BertModel

        return Wav2Vec2BertModel
    if model_type == WAV2VEC2:
        from transformers import Wav2Vec2Model

        return Wav2Vec2Model
    raise ValueError(
        f"HFSpeechEncoder: model_type {model_type!r} is not supported; "
        f"supported types: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def load_config(source: str, cache_dir: str | None = None):
    """``AutoConfig`` of ``source`` (hub id or local directory) with an error naming it.

    Raises
    ------
    FileNotFoundError
        ``source`` looks like a path and no such directory exists.
    OSError
        ``source`` could not be loaded as a local directory or a hub id.
    """
    from transformers import AutoConfig

    source = os.fspath(source)
    is_dir = os.path.isdir(source)
    if not is_dir and not is_hub_id(source):
        raise FileNotFoundError(
            f"HFSpeechEncoder: the model directory {source!r} does not exist "
            "(and it is not a hub id of the form 'org/name')"
        )
    try:
        return AutoConfig.from_pretrained(source, cache_dir=cache_dir)
    except (OSError, ValueError) as err:
        where = "local directory" if is_dir else "hub id (and no such local directory)"
        raise OSError(
            f"HFSpeechEncoder: cannot load a model config from {where} {source!r}: {err}"
        ) from err


def _load_feature_extractor_dict(source: str, cache_dir: str | None) -> dict:
    """The checkpoint's saved feature-extractor settings, or ``{}`` when it has none."""
    from transformers.feature_extraction_utils import FeatureExtractionMixin

    try:
        settings, _ = FeatureExtractionMixin.get_feature_extractor_dict(source, cache_dir=cache_dir)
    except OSError:
        logger.warning(
            "HFSpeechEncoder: %s has no preprocessor_config.json; using the default "
            "feature-extractor settings of its model type",
            source,
        )
        return {}
    return settings


def resolve_encoder_source(source: str | os.PathLike) -> str:
    """Where the transformers speech model of ``source`` lives.

    ``source`` is a plain speech model (hub id or folder in the hub layout,
    e.g. ``"facebook/w2v-bert-2.0"``) or a ``sense`` model folder exported by
    :func:`sense.export.export_model` (SENSE, SAMU-XLSR), whose fine-tuned
    encoder is its ``encoder/`` subfolder. So one YAML line swaps the encoder
    of a downstream task between a distilled model and its SSL starting point.
    A hub id is taken as a plain speech model: download a ``sense`` model first
    (``SENSE.from_hparams`` does) and pass its folder.

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_wav2vec2
    >>> folder = build_tiny_wav2vec2(tempfile.mkdtemp())
    >>> resolve_encoder_source(folder) == folder, resolve_encoder_source("facebook/w2v-bert-2.0")
    (True, 'facebook/w2v-bert-2.0')
    """
    from sense.export import ENCODER_DIR, is_model_folder

    source = os.fspath(source)
    path = os.path.expanduser(source)
    if os.path.isdir(path) and is_model_folder(path):
        return os.path.join(os.path.abspath(path), ENCODER_DIR)
    return source


def _mark_batch_dynamic(module, args, kwargs):
    """Before a compiled layer: the batch size of its inputs is dynamic, their other sizes static."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            torch._dynamo.maybe_mark_dynamic(value, 0)
            for dim in range(1, value.dim()):
                torch._dynamo.mark_static(value, dim)


class _HiddenStateRecorder:
    """Collects the input of the first encoder layer and the output of every layer.

    Hooks on the encoder's input dropout (the last step before the layer stack
    in every supported encoder) and on each layer. A layer skipped by LayerDrop
    leaves the stream unchanged, so its output is its input. Hooks record only
    inside :meth:`recording`, so the recomputation of a checkpointed layer
    during backward leaves the record alone.
    """

    def __init__(self, encoder: nn.Module):
        self.active = False
        self.stream_in: torch.Tensor | None = None
        self.outputs: dict[int, torch.Tensor] = {}
        self.num_layers = len(encoder.layers)
        encoder.dropout.register_forward_hook(self._record_input)
        for index, layer in enumerate(encoder.layers):
            layer.register_forward_hook(self._output_hook(index))

    def _record_input(self, module, args, output):
        if self.active:
            self.stream_in = output

    def _output_hook(self, index: int):
        def hook(module, args, output):
            if self.active:
                self.outputs[index] = output[0] if isinstance(output, tuple) else output

        return hook

    @contextmanager
    def recording(self):
        self.active, self.stream_in, self.outputs = True, None, {}
        try:
            yield self
        finally:
            self.active = False

    def states(self) -> list[torch.Tensor]:
        """``num_layers + 1`` tensors: the stream before layer 0, then after each layer."""
        if self.stream_in is None:
            raise RuntimeError("HFSpeechEncoder: the encoder input was not recorded")
        states = [self.stream_in]
        for index in range(self.num_layers):
            states.append(self.outputs.get(index, states[-1]))
        self.stream_in, self.outputs = None, {}
        return states


class HFSpeechEncoder(nn.Module):
    """A transformers speech encoder: (waveforms, relative lengths) -> (frames, relative lengths).

    Parameters
    ----------
    source : str
        Hub id (``"facebook/w2v-bert-2.0"``, ``"facebook/wav2vec2-xls-r-300m"``),
        a local directory holding ``config.json``, the weights and
        ``preprocessor_config.json``, or a ``sense`` model folder (its
        fine-tuned encoder: see :func:`resolve_encoder_source`).
    save_path : str, optional
        Cache directory for hub downloads (transformers' ``cache_dir``).
    output_layer : int, optional
        Return hidden state ``output_layer`` (0: the input of the first layer,
        ``k``: the output of layer ``k``) instead of the model's last output.
        When ``output_layer`` is below the number of layers, the layers above
        it are removed, with whatever only follows them (wav2vec2's final
        layer norm in stable-layer-norm models, w2v-BERT's adapter and
        intermediate FFN): it saves their compute and memory and leaves no
        unused parameter for DDP. The result equals hidden state
        ``output_layer`` of the full model. ``None`` or the number of layers:
        the model's ``last_hidden_state``.
    output_all_hiddens : bool
        Return every hidden state stacked, ``[L + 1, B, T', D]``: the input of
        the first layer, then the output of each layer, the last one being the
        model's ``last_hidden_state``. With ``output_layer``, ``L`` is
        ``output_layer``.
    options : sense.lobes.options.EncoderOptions, optional
        How the encoder trains and runs: freezing, attention path
        (``"sdpa"``, ``"flex"``, ``"eager"``), activation checkpointing,
        compiled layers, LayerDrop, SpecAugment and dropout overrides. Default: trainable,
        SDPA, the config's regularisation without SpecAugment.
    **switches
        Fields of :class:`~sense.lobes.options.EncoderOptions` by name
        (``freeze=True``), as model folders exported before the options
        object write them; they override ``options``.

    Attributes
    ----------
    output_dim : int
        Size ``D`` of the output frames (the model's hidden size).
    num_layers : int
        Number of encoder layers that run (after truncation by ``output_layer``).
    model_type : str
        ``"wav2vec2-bert"`` or ``"wav2vec2"``.

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_wav2vec2
    >>> encoder = HFSpeechEncoder(build_tiny_wav2vec2(tempfile.mkdtemp()), output_all_hiddens=True)
    >>> hiddens, frame_lens = encoder(torch.randn(2, 32000), torch.tensor([1.0, 0.5]))
    >>> hiddens.shape, encoder.num_layers, encoder.output_dim
    (torch.Size([3, 2, 99, 32]), 2, 32)
    """

    def __init__(
        self,
        source: str,
        save_path: str | None = None,
        *,
        output_layer: int | None = None,
        output_all_hiddens: bool = False,
        options: EncoderOptions | None = None,
        **switches,
    ):
        super().__init__()
        options = (options or EncoderOptions()).with_switches(**switches)
        self.options = options
        self.source = resolve_encoder_source(source)
        self.freeze = options.freeze
        self.output_all_hiddens = output_all_hiddens

        config = load_config(self.source, cache_dir=save_path)
        self.model_type = config.model_type
        model_class = _model_class(self.model_type)
        for name, value in options.config_overrides().items():
            setattr(config, name, value)
        full_layers = config.num_hidden_layers
        if output_layer is not None and not 0 <= output_layer <= full_layers:
            raise ValueError(
                f"HFSpeechEncoder: output_layer must be in [0, {full_layers}] for {self.source!r} "
                f"({full_layers} layers), got {output_layer}"
            )
        self.attention = options.attention
        self.model = model_class.from_pretrained(
            self.source,
            config=config,
            cache_dir=save_path,
            attn_implementation=HF_IMPLEMENTATION[self.attention],
        )
        if self.model_type == W2V_BERT:
            use_attention(self.model, self.attention)
        if output_layer is not None and output_layer < full_layers:
            self._truncate(output_layer)
        self.num_layers = len(self.model.encoder.layers)
        self.output_dim = config.hidden_size
        self._recorder = _HiddenStateRecorder(self.model.encoder) if output_all_hiddens else None

        extractor = _load_feature_extractor_dict(self.source, save_path)
        self.sample_rate = extractor.get("sampling_rate", 16000)
        if self.model_type == W2V_BERT:
            self.fbank = W2VBertFbank(
                num_mel_bins=extractor.get("num_mel_bins", 80),
                stride=extractor.get("stride", 2),
                padding_value=extractor.get("padding_value", 0.0),
                sample_rate=self.sample_rate,
            )
            if self.fbank.output_dim != config.feature_projection_input_dim:
                raise ValueError(
                    f"HFSpeechEncoder: {self.source!r} expects {config.feature_projection_input_dim}"
                    f"-dim input features, its feature extractor makes {self.fbank.output_dim}"
                )
        else:
            self.do_normalize = extractor.get("do_normalize", True)
            self.padding_value = extractor.get("padding_value", 0.0)
            # Models with group-norm feature encoders (wav2vec2-base) are trained
            # on zero-padded input without a mask; the feature extractor knows.
            self.use_attention_mask = extractor.get(
                "return_attention_mask", config.feat_extract_norm == "layer"
            )

        if options.gradient_checkpointing:
            self._enable_checkpointing()
        self.length_bucket = 0
        if options.compile_layers:
            self._compile_layers()
            if self.model_type == W2V_BERT:
                self.length_bucket = options.length_bucket
        if options.freeze_feature_projection:
            self._freeze_input_stage()
        if (
            not options.apply_spec_augment
            and getattr(self.model, "masked_spec_embed", None) is not None
        ):
            # Never used without SpecAugment: keep it out of the optimiser and of DDP's reducer.
            self.model.masked_spec_embed.requires_grad_(False)
        if options.freeze:
            self.model.requires_grad_(False)
        # from_pretrained returns the model in eval mode: follow this module's mode.
        self.train(self.training)

    @property
    def min_samples(self) -> int:
        """Fewest input samples that give one output frame (35 ms for w2v-BERT, 25 ms wav2vec2)."""
        if getattr(self, "fbank", None) is not None:
            return self.fbank.min_samples(self.fbank.stride)
        needed = 1  # inverse of the conv stack: L_in = (L_out - 1) * stride + kernel
        config = self.model.config
        for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride))):
            needed = (needed - 1) * stride + kernel
        return needed

    def _enable_checkpointing(self) -> None:
        """Checkpoint every layer (non-reentrant, so hooks and ``no_grad`` parts behave)."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.model, "activation_checkpointing_enable"):  # transformers >= 5.x
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def _compile_layers(self) -> None:
        """``torch.compile`` each layer's ``forward`` (module, hooks and state dict unchanged).

        The batch size is dynamic and the length static: one compilation per
        length bucket, whatever the batch sizes.
        """
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, COMPILED_SHAPES)
        for layer in self.model.encoder.layers:
            layer.forward = torch.compile(layer.forward)
            layer.register_forward_pre_hook(_mark_batch_dynamic, with_kwargs=True)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the encoder layers recompute their activations in backward."""
        return any(getattr(m, "gradient_checkpointing", False) for m in self.model.modules())

    def _truncate(self, num_layers: int) -> None:
        """Keep the first ``num_layers`` layers and drop what only follows the last one."""
        model = self.model
        model.encoder.layers = model.encoder.layers[:num_layers]
        model.config.num_hidden_layers = num_layers
        if self.model_type == WAV2VEC2 and model.config.do_stable_layer_norm:
            model.encoder.layer_norm = nn.Identity()  # applied after the last layer
        if getattr(model, "adapter", None) is not None:
            model.adapter = None
            model.config.add_adapter = False
        if getattr(model, "intermediate_ffn", None) is not None:
            model.intermediate_ffn = None
            model.config.use_intermediate_ffn_before_adapter = False

    def _freeze_input_stage(self) -> None:
        if self.model_type == W2V_BERT:
            self.model.feature_projection.requires_grad_(False)
        else:
            self.model.freeze_feature_encoder()

    def train(self, mode: bool = True):
        """Set training mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Parameters
        ----------
        wavs : torch.Tensor
            ``[B, T]`` float waveforms at the model's sampling rate (16 kHz).
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths in (0, 1]; ``None`` means all 1.

        Returns
        -------
        frames : torch.Tensor
            ``[B, T', D]``, or ``[L + 1, B, T', D]`` with ``output_all_hiddens``.
        frame_lens : torch.Tensor
            ``[B]`` relative lengths of the frames in (0, 1].
        """
        with torch.no_grad() if self.freeze else nullcontext():
            if self.model_type == W2V_BERT:
                inputs, in_lens = self.fbank(wavs, wav_lens)
            else:
                inputs, in_lens = self._prepare_waveforms(wavs, wav_lens)
            # features in float32, then the model's own type (a .half() or bf16 model)
            inputs = inputs.to(self.model.dtype)
            in_counts = torch.round(in_lens * inputs.shape[1]).long()
            frames = inputs.shape[1]
            if self.length_bucket:
                inputs = self._pad_to_bucket(inputs)
            mask = torch.arange(inputs.shape[1], device=inputs.device) < in_counts[:, None]
            if self.model_type == W2V_BERT:
                kwargs = {"input_features": inputs, "attention_mask": mask.long()}
            else:
                kwargs = {"input_values": inputs}
                if self.use_attention_mask:
                    kwargs["attention_mask"] = mask.long()

            with self._recorder.recording() if self._recorder else nullcontext():
                last = self.model(**kwargs).last_hidden_state
                if self._recorder is not None:
                    states = self._recorder.states()
                    output = torch.stack(states[:-1] + [last])
                else:
                    output = last

            add_adapter = getattr(self.model, "adapter", None) is not None
            out_counts = self.model._get_feat_extract_output_lengths(in_counts, add_adapter)
            if self.length_bucket:  # cut the bucket's padding
                out_frames = self.model._get_feat_extract_output_lengths(frames, add_adapter)
                last, output = last[:, :out_frames], output[..., :out_frames, :]
            frame_lens = out_counts.float() / last.shape[1]
        return output, frame_lens

    def _pad_to_bucket(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` features padded along ``T`` to a multiple of ``length_bucket``.

        Example
        -------
        >>> import tempfile
        >>> from sense.demo.tiny import build_tiny_w2v_bert
        >>> encoder = HFSpeechEncoder(build_tiny_w2v_bert(tempfile.mkdtemp()))
        >>> encoder.length_bucket = 32
        >>> encoder._pad_to_bucket(torch.ones(2, 33, 160)).shape
        torch.Size([2, 64, 160])
        """
        extra = -inputs.shape[1] % self.length_bucket
        return torch.nn.functional.pad(inputs, (0, 0, 0, extra), value=self.fbank.padding_value)

    def _prepare_waveforms(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate; normalise each waveform over its real samples when the checkpoint does."""
        _, counts = check_waveform_batch(wavs, wav_lens, "HFSpeechEncoder")
        time = wavs.shape[1]
        too_short = self.model._get_feat_extract_output_lengths(counts, add_adapter=False) < 1
        if bool(too_short.any()):
            short = too_short.nonzero().flatten().tolist()
            raise ValueError(
                f"HFSpeechEncoder: utterance(s) {short} have {counts[short].tolist()} samples, "
                f"too few for one frame of {self.source!r}"
            )
        wav_lens = counts.float() / time
        if not self.do_normalize:
            return wavs, wav_lens
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            wavs = wavs.float()
            mask = torch.arange(time, device=wavs.device) < counts[:, None]
            n = counts.float()[:, None]
            mean = (wavs * mask).sum(dim=1, keepdim=True) / n
            centred = wavs - mean
            var = (centred.square() * mask).sum(dim=1, keepdim=True) / n
            normed = centred / torch.sqrt(var + WAVEFORM_NORM_EPS)
            return normed.masked_fill(~mask, self.padding_value), wav_lens

    def extra_repr(self) -> str:
        return (
            f"source={self.source!r}, model_type={self.model_type!r}, "
            f"num_layers={self.num_layers}, freeze={self.freeze}"
        )


__all__ = ["HFSpeechEncoder", "SUPPORTED_MODEL_TYPES", "load_config", "resolve_encoder_source"]
