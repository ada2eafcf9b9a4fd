"""Inference: embedding throughput of ``sense.inference.SENSE`` on a folder of files.

A model of the benchmark size (random weights: speed does not depend on
them) is exported with :func:`sense.export.export_model` and loaded back with
``SENSE.from_hparams``, as a user would load a trained one. A folder of WAV
files of synthetic audio is then embedded with ``encode_files``, which reads,
resamples and batches the files, at ``batch_size`` 1 and at the batched size,
in alternation.

The real-time factor (RTF) is processing time divided by audio duration
(lower is faster; 0.01 means 100 s of audio per second); file reading and
decoding are included.
"""

from __future__ import annotations

import os
import tempfile

import soundfile as sf
import torch

from benchmarks.common import alternate, pick_device
from benchmarks.models import SAMPLE_RATE, SIZES, Size, build_student, synthetic_batch


def write_folder(folder: str, num_files: int, min_seconds: float, max_seconds: float) -> tuple:
    """Write ``num_files`` WAV files of synthetic audio; return (paths, total seconds)."""
    os.makedirs(folder, exist_ok=True)
    batch = synthetic_batch(num_files, min_seconds, max_seconds, seed=1)
    paths = []
    for uid, wav in zip(batch.ids, batch.wavs):
        path = os.path.join(folder, f"{uid}.wav")
        sf.write(path, wav.numpy(), SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths, batch.audio_seconds


def export_random_model(folder: str, workdir: str, size: Size) -> str:
    """Export an encoder + pooling head of ``size`` (random weights) as a SENSE model folder."""
    from sense.export import export_model
    from sense.lobes.speech import HFSpeechEncoder
    from sense.nnet.pooling import AttentivePooling

    student = build_student(os.path.join(workdir, "student"), size)
    encoder = HFSpeechEncoder(student)
    pooling = AttentivePooling(encoder.output_dim)
    return export_model(folder, encoder=encoder, pooling=pooling, teacher=None)


def run(
    size: str | Size = "small",
    rounds: int = 3,
    device: str | torch.device | None = None,
    num_files: int = 16,
    min_seconds: float = 2.0,
    max_seconds: float = 6.0,
    batch_size: int = 8,
    precision: str | None = None,
    workdir: str | None = None,
) -> dict:
    """Embed a folder of files with ``SENSE``; return a JSON-able dict."""
    from sense.inference import SENSE

    size = SIZES[size] if isinstance(size, str) else size
    device = device if isinstance(device, torch.device) else pick_device(device)
    precision = precision or ("bf16" if device.type == "cuda" else "fp32")
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="sense-bench-infer-")
        workdir = own_tmp.name
    try:
        model_dir = export_random_model(os.path.join(workdir, "model"), workdir, size)
        paths, audio_seconds = write_folder(
            os.path.join(workdir, "audio"), num_files, min_seconds, max_seconds
        )
        model = SENSE.from_hparams(
            source=model_dir,
            savedir=os.path.join(workdir, "savedir"),
            device=str(device),
            precision=precision,
        )

        def embed(bs):
            def call():
                results, failures = model.encode_files(paths, batch_size=bs)
                if failures or len(results) != len(paths):
                    raise RuntimeError(f"inference benchmark: files failed: {failures}")
                return results

            return call

        systems = {"batch_1": embed(1), f"batch_{batch_size}": embed(batch_size)}
        timed = alternate(systems, rounds=rounds, device=device, warmup=1)
        dim = next(iter(embed(batch_size)().values())).shape[-1]
        out = {
            "size": size.name,
            "device": device.type,
            "precision": precision,
            "files": len(paths),
            "audio_seconds": round(audio_seconds, 3),
            "embedding_dim": int(dim),
        }
        for name, value in timed.items():
            seconds = value["median_s"]
            out[name] = {
                "median_s": round(seconds, 6),
                "rtf": round(seconds / audio_seconds, 5),
                "audio_seconds_per_second": round(audio_seconds / seconds, 2),
                "files_per_second": round(len(paths) / seconds, 2),
            }
        out["batching_speedup"] = round(
            timed["batch_1"]["median_s"] / timed[f"batch_{batch_size}"]["median_s"], 2
        )
        return out
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
