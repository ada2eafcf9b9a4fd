"""``python -m benchmarks``: run the benchmarks, print the markdown table, write JSON and markdown.

Examples
--------
``python -m benchmarks``                       everything, at the sizes the device allows
``python -m benchmarks --quick``               fewer rounds, 1,000 retrieval queries
``python -m benchmarks --only train --sizes small --threads 1``
``python -m benchmarks --output results/gpu.json --probe``

On a CPU the sizes default to ``small``; with a GPU to ``small,real``
(``real``: w2v-BERT 2.0 and BGE-M3 sizes, randomly initialised; it is refused
on a CPU, where one step would take minutes).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
import warnings

BENCHMARKS = (
    "train",
    "frontend",
    "inference",
    "retrieval",
    "teacher",
    "decode",
    "startup",
    "padding",
    "optimizer",
    "attention",
    "search",
    "compile",
)
# Only when asked: "attention" (a 580M model at 30 s of audio), "search" (1M x 1024
# embeddings, 4 GB and tens of minutes on 2 cores) and "compile" (minutes of compilation).
OPT_IN = ("attention", "search", "compile")
DEFAULT_BENCHMARKS = tuple(b for b in BENCHMARKS if b not in OPT_IN)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Side-by-side speed measurements of sense and the SpeechBrain SENSE recipe.",
    )
    p.add_argument(
        "--only",
        default=",".join(DEFAULT_BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all but "
        f"{', '.join(OPT_IN)})",
    )
    p.add_argument(
        "--sizes",
        default="auto",
        help="comma-separated sizes among tiny, small, real (default: small on CPU, "
        "small,real with a GPU)",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument(
        "--precision",
        default=None,
        choices=["fp32", "bf16", "fp16"],
        help="training/inference precision (default: fp32 on CPU, bf16 on GPU)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="timed repetitions of each system (default 5; 3 with --quick)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 rounds, 1,000 retrieval queries: a check that everything runs",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and faiss (default: torch's choice); on a shared "
        "machine, fewer threads than cores avoids oversubscription",
    )
    p.add_argument("--utterances", type=int, default=8, help="utterances per training batch")
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument(
        "--probe",
        action="store_true",
        help="include FlagEmbedding's batch-size probe forward in the recipe's teacher",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="device peak (TFLOP/s) for MFU when the GPU is not in the table",
    )
    p.add_argument(
        "--retrieval-queries", type=int, default=None, help="default 5,000 (1,000 with --quick)"
    )
    p.add_argument("--retrieval-database", type=int, default=280_000)
    p.add_argument(
        "--search-rows",
        type=int,
        default=None,
        help="embeddings of the search benchmark (default 1,000,000; 100,000 with --quick)",
    )
    p.add_argument(
        "--search-types",
        default="ivf,ivfpq,hnsw",
        help="approximate index types of the search benchmark",
    )
    p.add_argument(
        "--padding-durations",
        default=None,
        help="comma-separated clip_durations.tsv files or Common Voice release roots for the "
        "padding benchmark (default: the demo's release, demo_output/commonvoice, if present)",
    )
    p.add_argument(
        "--padding-clips",
        type=int,
        default=None,
        help="clips of the padding benchmark's synthetic Common Voice-like durations "
        "(default 200,000; 0: none)",
    )
    p.add_argument("--inference-files", type=int, default=16)
    p.add_argument("--decode-utterances", type=int, default=8, help="utterances per decoding batch")
    p.add_argument(
        "--teacher-sentences",
        type=int,
        default=None,
        help="transcripts for the teacher-cache benchmark (default: 20,000 on a GPU, 2,000 on "
        "a CPU; the old CPU path gets at most 2,000, 500 at the real size)",
    )
    p.add_argument(
        "--output",
        default="results/bench.json",
        help="JSON file to write; the markdown goes next to it with .md",
    )
    return p.parse_args(argv)


def _quiet() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.basicConfig(level=logging.WARNING)
    logging.disable(logging.INFO)  # SpeechBrain's per-Brain parameter reports and the like
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is None:
        return
    torch.set_num_threads(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass


def main(argv=None) -> dict:
    args = parse_args(argv)
    _set_threads(args.threads)

    import torch

    from benchmarks import (
        attention,
        compiled_layers,
        decoding,
        frontend,
        inference,
        optimizer,
        padding,
        report,
        retrieval,
        search,
        startup,
        teacher_cache,
        train_step,
    )
    from benchmarks.common import load_average, machine_info, pick_device

    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose among {list(BENCHMARKS)}")
    device = pick_device(args.device)
    sizes = (
        (["small", "real"] if device.type == "cuda" else ["small"])
        if args.sizes == "auto"
        else [s.strip() for s in args.sizes.split(",") if s.strip()]
    )
    rounds = args.rounds or (3 if args.quick else 5)
    queries = args.retrieval_queries or (1_000 if args.quick else 5_000)

    started = time.perf_counter()
    results = {
        "command": "python -m benchmarks "
        + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "machine": machine_info(device),
        "settings": {**vars(args), "rounds": rounds, "sizes": sizes, "retrieval_queries": queries},
        "train_step": [],
        "inference": [],
        "teacher_cache": [],
        "decoding": [],
        "compile": [],
        "optimizer": [],
        "errors": [],
    }
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in both steps

    def attempt(name, fn):
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as err:  # noqa: BLE001 - record, go on, fail at the end
            logging.getLogger("benchmarks").exception("%s failed", name)
            results["errors"].append(f"{name}: {type(err).__name__}: {err}")
            return None
        print(
            f"[benchmarks] {name} done in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        return out

    def collect(key, name, fn):
        """Run one per-size benchmark; keep its result under ``results[key]`` when it ran."""
        r = attempt(name, fn)
        if r is not None:
            results[key].append(r)

    batch_kw = dict(
        num_utterances=args.utterances, min_seconds=args.min_seconds, max_seconds=args.max_seconds
    )
    for size in sizes:
        if size == "real" and device.type != "cuda":
            if {"train", "inference", "optimizer", "compile"} & set(only):
                results["train_step"].append(
                    {"size": "real", "error": "the real sizes are run only on a GPU"}
                )
            continue
        if "train" in only:
            collect(
                "train_step",
                f"training step ({size})",
                lambda size=size: train_step.run(
                    size,
                    rounds=rounds,
                    device=device,
                    precision=args.precision,
                    probe=args.probe,
                    peak=args.peak_tflops,
                    **batch_kw,
                ),
            )
        if "inference" in only:
            collect(
                "inference",
                f"inference ({size})",
                lambda size=size: inference.run(
                    size,
                    rounds=max(3, rounds // 2),
                    device=device,
                    precision=args.precision,
                    num_files=args.inference_files,
                    min_seconds=args.min_seconds,
                    max_seconds=args.max_seconds,
                ),
            )
        if "optimizer" in only:
            collect(
                "optimizer",
                f"optimizer step ({size})",
                lambda size=size: optimizer.run(size, rounds=rounds, device=device),
            )
        if "compile" in only:
            collect(
                "compile",
                f"compiled layers ({size})",
                lambda size=size: compiled_layers.run(
                    size,
                    rounds=rounds,
                    device=device,
                    precision=args.precision,
                    min_seconds=args.min_seconds,
                    max_seconds=args.max_seconds,
                ),
            )
        if "decode" in only:
            collect(
                "decoding",
                f"decoding ({size})",
                lambda size=size: decoding.run(
                    size,
                    rounds=max(3, rounds // 2),
                    device=device,
                    num_utterances=args.decode_utterances,
                ),
            )
        if "teacher" in only:
            n = args.teacher_sentences or (20_000 if device.type == "cuda" else 2_000)
            collect(
                "teacher_cache",
                f"teacher cache ({size})",
                lambda size=size, n=n: teacher_cache.run(
                    size,
                    device,
                    sentences=n,
                    old_sentences=min(n, 500 if size == "real" else 2_000),
                ),
            )
    if "frontend" in only:
        results["frontend"] = attempt(
            "front-end", lambda: frontend.run(rounds=rounds, device=device, **batch_kw)
        )
    if "retrieval" in only:
        results["retrieval"] = attempt(
            "retrieval",
            lambda: retrieval.run(
                num_queries=queries, database_size=args.retrieval_database, device=device
            ),
        )

    if "startup" in only:
        results["startup"] = attempt("start-up", lambda: startup.run(rounds=rounds))
    if "padding" in only:
        if args.padding_durations is None:
            paths = [p for p in ["demo_output/commonvoice"] if os.path.isdir(p)]
        else:
            paths = [p.strip() for p in args.padding_durations.split(",") if p.strip()]
        clips = padding.SYNTHETIC_CLIPS if args.padding_clips is None else args.padding_clips
        results["padding"] = attempt(
            "padding", lambda: padding.run(paths=paths, synthetic_clips=clips)
        )
    if "attention" in only:
        results["attention"] = attempt(
            "attention paths", lambda: attention.run(device, rounds=args.rounds or 1)
        )

    if "search" in only:
        rows = args.search_rows or (100_000 if args.quick else search.ROWS)
        types = [t.strip() for t in args.search_types.split(",") if t.strip()]
        results["search"] = attempt("search", lambda: search.run(rows=rows, types=types))

    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["load_average_end"] = load_average()
    markdown = report.render(results)
    if results.get("search"):
        markdown += "\n".join(search.render(results["search"]))
    if args.output:
        folder = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(folder, exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
        with open(os.path.splitext(args.output)[0] + ".md", "w", encoding="utf-8") as f:
            f.write(markdown)
    print(markdown)
    if results["errors"]:
        print("[benchmarks] failed: " + "; ".join(results["errors"]), file=sys.stderr)
    return results


if __name__ == "__main__":
    _quiet()  # only as a program: logging and warnings are process-wide
    sys.exit(1 if main()["errors"] else 0)
