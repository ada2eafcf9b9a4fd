"""Markdown rendering of a benchmark result (the dict ``python -m benchmarks`` writes as JSON)."""

from __future__ import annotations


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def _params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _ms(seconds) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:.1f} ms"


def train_step_explanation(r: dict) -> str:
    """Where the two steps' times differ, from the component timings."""
    c = r["components_median_s"]
    ours, theirs = r["ours"]["step_median_s"], r["theirs"]["step_median_s"]
    common = max(0.0, ours - c["our_frontend"] - c["our_teacher_lookup"])
    extra = c["their_frontend"] + c["their_teacher"]
    bound = (common + extra) / max(common + c["our_frontend"] + c["our_teacher_lookup"], 1e-12)
    return (
        f"Of our {_ms(ours)} step, {_ms(c['our_frontend'])} is the batched front-end and "
        f"{_ms(c['our_teacher_lookup'])} the cache lookup; the rest, about {_ms(common)}, is the "
        "student's forward and backward pass and the optimizer steps, which both steps share. "
        f"The recipe's step adds its numpy front-end ({_ms(c['their_frontend'])}) and a teacher "
        f"forward ({_ms(c['their_teacher'])}) to that shared part: components alone predict a "
        f"ratio of about {bound:.2f}x (measured: {r['speedup']:.2f}x; {_ms(theirs)} per step)."
    )


def render(results: dict) -> str:
    """The whole report as markdown."""
    out = ["# sense benchmarks", ""]
    m = results.get("machine", {})
    out.append(
        f"Machine: {m.get('cpu', '?')}, {m.get('cpu_cores', '?')} cores "
        f"({m.get('torch_threads', '?')} torch threads), {m.get('memory_gb', '?')} GB RAM"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
        + f"; load average {m.get('load_average_start')} at start, "
        f"{results.get('load_average_end')} at end. torch {m.get('torch')}, "
        f"speechbrain {m.get('speechbrain')}, transformers {m.get('transformers')}."
    )
    out.append(
        f"Command: `{results.get('command', 'python -m benchmarks')}` "
        f"({results.get('elapsed_s', 0):.0f} s)."
    )
    out.append("")

    for r in results.get("train_step", []):
        if "error" in r:
            out += [f"## Training step: {r['size']}", "", f"Not run: {r['error']}", ""]
            continue
        out += _train_step(r)
    if results.get("frontend"):
        out += _frontend(results["frontend"])
    for r in results.get("inference", []):
        out += _inference(r)
    if results.get("retrieval"):
        out += _retrieval(results["retrieval"])
    for r in results.get("teacher_cache") or []:
        out += _teacher_cache(r)
    for r in results.get("decoding") or []:
        out += _decoding(r)
    for r in results.get("optimizer") or []:
        out += _optimizer(r)
    for r in results.get("compile") or []:
        out += _compile(r)
    if results.get("startup"):
        out += _startup(results["startup"])
    if results.get("padding"):
        out += _padding(results["padding"])
    if results.get("attention"):
        out += _attention(results["attention"])
    return "\n".join(out).rstrip() + "\n"


def _train_step(r: dict) -> list[str]:
    b, s, t = r["batch"], r["student"], r["teacher"]
    o, h = r["ours"], r["theirs"]
    n = len(o["step_times_s"])
    lines = [
        f"## Training step: {r['size']} size, {r['device_name']}, {r['precision']}",
        "",
        f"Batch: {b['utterances']} utterances, {b['audio_seconds']:.1f} s of audio "
        f"({min(b['durations_s']):.1f}-{max(b['durations_s']):.1f} s). Student: w2v-BERT 2.0 "
        f"architecture, hidden {s['hidden_size']}, {s['layers']} layers, {s['heads']} heads, "
        f"FFN {s['ffn']} ({_params(s['parameters'])} parameters). Teacher: XLM-RoBERTa, "
        f"hidden {t['hidden_size']}, {t['layers']} layers ({_params(t['parameters'])} "
        f"parameters), {sum(t['tokens'])} tokens per batch. Medians of {n} steps each, "
        "in alternation.",
        "",
        "| | ours (`DistillationBrain`) | SpeechBrain recipe | ratio |",
        "|---|---:|---:|---:|",
        f"| step time | {_ms(o['step_median_s'])} | {_ms(h['step_median_s'])} | "
        f"**{r['speedup']:.2f}x** |",
        f"| audio seconds per second | {o['audio_seconds_per_second']:.1f} | "
        f"{h['audio_seconds_per_second']:.1f} | {r['speedup']:.2f}x |",
        f"| peak memory (state + step), MB | {_fmt(o['peak_memory_mb'])} "
        f"({_fmt(o['state_mb'])} + {_fmt(o['step_peak_increase_mb'])}) | "
        f"{_fmt(h['peak_memory_mb'])} ({_fmt(h['state_mb'])} + "
        f"{_fmt(h['step_peak_increase_mb'])}) | |",
        f"| model TFLOP/s | {o['model_tflops_per_s']:.3g} | {h['model_tflops_per_s']:.3g} | |",
    ]
    if r.get("peak_tflops"):
        lines.append(
            f"| MFU (peak {r['peak_tflops']:g} TFLOP/s bf16) | {100 * o['mfu']:.1f}% | "
            f"{100 * h['mfu']:.1f}% | |"
        )
    c = r["components_median_s"]
    lines += [
        "",
        f"Parts that differ (medians): front-end {_ms(c['our_frontend'])} (ours) vs "
        f"{_ms(c['their_frontend'])} (recipe); teacher: cache lookup "
        f"{_ms(c['our_teacher_lookup'])} vs forward {_ms(c['their_teacher'])}"
        + (" (with FlagEmbedding's probe forward)" if r.get("probe") else "")
        + f". Model FLOPs: {r['model_gflops_per_audio_second']:.3g} GFLOP per second of audio "
        f"for training ({r['model_gflops_per_step']:.4g} GFLOP per step); the recipe's teacher "
        f"adds {t['forward_gflops_per_step']:.3g} GFLOP per step.",
        "",
        train_step_explanation(r),
        "",
    ]
    return lines


def _frontend(r: dict) -> list[str]:
    lines = [
        f"## Front-end: batch of {r['batch']['utterances']} utterances "
        f"({r['batch']['audio_seconds']:.0f} s of audio)",
        "",
        "| | time | audio s per s | speedup | max abs error vs HF |",
        "|---|---:|---:|---:|---:|",
        f"| HF `SeamlessM4TFeatureExtractor` (numpy, per utterance) | "
        f"{_ms(r['hf_extractor_s'])} | {r['audio_seconds_per_second']['hf']:,.0f} | 1x | |",
    ]
    for dev, p in r["parity"].items():
        lines.append(
            f"| `W2VBertFbank` on {dev} (batched torch) | {_ms(r[f'ours_{dev}_s'])} | "
            f"{r['audio_seconds_per_second'][f'ours_{dev}']:,.0f} | {r[f'speedup_{dev}']:.1f}x | "
            f"{p['max_abs_error']:.2g} (features have std {p['feature_std']:.2g}; "
            f"frame counts equal: {p['frame_counts_equal']}) |"
        )
    return lines + [""]


def _inference(r: dict) -> list[str]:
    lines = [
        f"## Inference: `SENSE.encode_files`, {r['size']} size, {r['device']}, {r['precision']}",
        "",
        f"{r['files']} WAV files, {r['audio_seconds']:.0f} s of audio, read, embedded "
        f"({r['embedding_dim']}-dim).",
        "",
        "| batch size | time | real-time factor | audio s per s | files per s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(k for k in r if k.startswith("batch_")):
        v = r[key]
        lines.append(
            f"| {key.split('_')[1]} | {_ms(v['median_s'])} | {v['rtf']:.4f} | "
            f"{v['audio_seconds_per_second']:,.0f} | {v['files_per_second']:,.1f} |"
        )
    return lines + [""]


def _retrieval(r: dict) -> list[str]:
    nd, dim = r["database"]
    return [
        f"## Retrieval: {r['queries']:,} queries against {nd:,} x {dim} ({r['device']})",
        "",
        "| | time | queries per s | R@1 |",
        "|---|---:|---:|---:|",
        f"| `sense.retrieval.search` (exact, {r['backend']}) | {r['search_s']:.2f} s | "
        f"{r['search_queries_per_second']:,.0f} | {r['r_at_1_search']:.4f} |",
        f"| one matmul (full score matrix, top-1) | {r['brute_force_s']:.2f} s | "
        f"{r['brute_force_queries_per_second']:,.0f} | {r['r_at_1_brute_force']:.4f} |",
        "",
        f"Speed of search against one matmul: {r['brute_force_s'] / r['search_s']:.2f}x.",
        "",
        f"Top-1 agreement with brute force: {100 * r['top1_agreement']:.2f}% of queries. "
        f"Mean subtraction and normalisation of both sides: {r['prepare_s']:.2f} s.",
        "",
    ]


def _teacher_cache(r: dict) -> list[str]:
    new, old = r["new"], r["old"]
    return [
        f"## Teacher cache ({r['size']} teacher, {r['machine_device']})",
        "",
        "| path | device, precision | sentences | time | sentences per s |",
        "|---|---|---:|---:|---:|",
        f"| before: main process, no device given | {old['device']}, {old['precision']} | "
        f"{old['sentences']:,} | {old['seconds']:.1f} s | {old['per_second']:,.0f} |",
        f"| now: the run's device, length-sorted batches | {new['device']}, {new['precision']} | "
        f"{new['sentences']:,} | {new['seconds']:.1f} s | {new['per_second']:,.0f} |",
        "",
        f"Throughput ratio (now / before): {r['ratio']:.1f}x per process; under DDP each of "
        "the N ranks encodes 1/N of the transcripts.",
        "",
    ]


def _decoding(r: dict) -> list[str]:
    d = r["decoder"]
    ours, theirs = r["sense"], r["speechbrain"]
    return [
        f"## Speech translation decoding: beam {r['beam_size']}, {r['size']} mBART decoder "
        f"({d['layers']} layers, d_model {d['d_model']}, {d['vocab']:,} tokens), {r['device']}",
        "",
        f"{r['utterances']} utterances of {r['frames']} encoder frames, {r['output_tokens']} "
        "output tokens each (the same length for both).",
        "",
        "| system | time | utterances per s |",
        "|---|---:|---:|",
        f"| sense `Seq2SeqDecoder.generate_ids` (transformers `generate`) | "
        f"{_ms(ours['median_s'])} | {ours['utterances_per_second']:,.1f} |",
        f"| SpeechBrain SAMU-mBART (`S2SHFTextBasedBeamSearcher`) | "
        f"{_ms(theirs['median_s'])} | {theirs['utterances_per_second']:,.1f} |",
        "",
        f"Throughput ratio (sense / SpeechBrain): {r['speedup']:.2f}x.",
        "",
    ]


def _startup(r: dict) -> list[str]:
    lines = [
        f"## Start-up: each command in a fresh process (median of {r['rounds']}, tiny models)",
        "",
        "| command | time | / `import torch` | exit status |",
        "|---|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['command']} | {row['median_s']:.2f} s | {row['ratio_to_import_torch']:.2f} | "
            f"{row['exit_status']} |"
        )
    return lines + [""]


def _attention(r: dict) -> list[str]:
    mib = 2.0**20
    lines = [
        "## w2v-BERT 2.0 relative-key attention: eager, sdpa, flex",
        "",
        "`sdpa` as it runs (CPU inference from "
        f"{r.get('regional_min_frames', 1000):,} frames: the regional split), "
        "`sdpa-gathered` with the split off.",
        "",
        f"One real-size Conformer layer (batch 1, fp32, inference); measured peak: {r['method']}; "
        f"median of {r['rounds']} after one warm-up call.",
        "",
        "| frames | path | largest attention tensor (analytic) | measured peak | time |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in r["layer_memory"]:
        if "error" in row:
            lines.append(
                f"| {row['frames']} | {row['path']} | "
                f"{row['largest_intermediate_bytes'] / mib:.1f} MiB | not run: {row['error']} | |"
            )
            continue
        peak = row["step_peak_bytes"]
        lines.append(
            f"| {row['frames']} | {row['path']} | {row['largest_intermediate_bytes'] / mib:.1f} MiB"
            f" | {'n/a' if peak is None else f'{peak / mib:.0f} MiB'} | {_ms(row['median_s'])} |"
        )
    lines += [
        "",
        "Full randomly initialised w2v-BERT 2.0 (580M, `inference_mode`), one utterance; "
        "CPU RTF: CPU seconds of the process per audio second and thread (the RTF of "
        "those threads on an idle machine):",
        "",
        "| audio | path | precision | time | RTF | CPU RTF | floor RTF |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    rates = {}
    for row in r["rtf"]:
        head = f"| {row['seconds']} s | {row['path']} | {row.get('precision', 'fp32')} |"
        floor = f"{row['floor_rtf']:.3f}" if "floor_rtf" in row else "n/a"
        if "matmul_gflops" in row:
            rates[row.get("precision", "fp32")] = row["matmul_gflops"]
        if "error" in row:
            lines.append(f"{head} not run: {row['error']} | | | {floor} |")
            continue
        cpu = f"{row['cpu_rtf']:.3f}" if "cpu_rtf" in row else "n/a"
        lines.append(f"{head} {row['median_s']:.2f} s | {row['rtf']:.3f} | {cpu} | {floor} |")
    if rates:
        measured = ", ".join(f"{gflops:,.0f} GFLOP/s in {p}" for p, gflops in rates.items())
        lines += [
            "",
            "Floor RTF: the forward pass's FLOPs (73 relative-key distances) at the best rate "
            f"of one `[1500, 1024] @ [1024, 4096]` matmul on this machine ({measured}): "
            "no path can be faster.",
        ]
    return lines + [""]


def _optimizer(r: dict) -> list[str]:
    lines = [
        f"## The encoder's Adam step: {r['size']}, {r['device']}",
        "",
        f"{r['parameters'] / 1e6:.1f}M parameters in {r['tensors']} tensors (w2v-BERT 2.0's "
        f"shapes); {r['steps_each']} steps each, in alternation; the parameters of the three "
        f"differ by at most {r['max_parameter_difference']:.1e} after them.",
        "",
        "| implementation | step (median) | speed-up over the for-loop |",
        "|---|---:|---:|",
    ]
    for name, seconds in r["step_median_s"].items():
        lines.append(f"| {name} | {_ms(seconds)} | {r['speedup_over_for_loop'][name]:.2f}x |")
    return lines + [""]


def _compile(r: dict) -> list[str]:
    frames = r["frames_computed"]
    batches = ", ".join(
        f"{b['utterances']} x {b['longest_frames']} ({b['bucket_frames']})" for b in r["batches"]
    )
    lines = [
        f"## Compiled encoder layers: {r['size']}, {r['device']}, {r['precision']}",
        "",
        f"One pass = a DistillationBrain training step on each of {len(r['batches'])} batches "
        f"(utterances x longest frames (bucket)): {batches}; {r['audio_seconds']:.1f} s of audio. "
        f"Buckets of {r['length_bucket']} frames: the compiled layers compute "
        f"{frames['compiled']:,} frames where eager computes {frames['eager']:,} "
        f"({frames['real']:,} real); {r['compiled_graphs']} graphs compiled in the first pass.",
        "",
        "| | first pass (compiling) | pass (median) | CPU s | step peak increase, MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("eager", "compiled"):
        peak = r["step_peak_increase_mb"][name]
        lines.append(
            f"| {name} | {r['first_pass_s'][name]:.1f} s | {_ms(r['pass_median_s'][name])} | "
            f"{r['pass_cpu_s'][name]:.2f} | {'n/a' if peak is None else f'{peak:,.0f}'} |"
        )
    lines += ["", f"Speed-up of the compiled layers: **{r['speedup']:.2f}x**.", ""]
    return lines


def _padding(r: dict) -> list[str]:
    lines = [
        "## Padding of duration-filled batches",
        "",
        "Padded fraction: padding / all padded frames (w2v-BERT 2.0 encoder frames); frames "
        "per real frame = 1 / (1 - padded fraction), and per second of real audio; fill: padded "
        "audio / (batches x budget); "
        "budget / real s: GPU budget per second of real audio (1.00: full, unpadded batches); "
        f"steps on {r['world_size']} GPUs; pair repeat: of the pairs sharing a batch in "
        "epoch 0, the share sharing one again in epoch 1 (1.0: the same batches every epoch).",
        "",
    ]
    for s in r["sources"]:
        lines += [
            f"### {s['name']}: {s['clips']:,} clips, {s['hours']:.1f} h",
            "",
            f"{s['description']}; mean {s['mean_s']:.2f} s, median {s['median_s']:.2f} s, "
            f"90th percentile {s['p90_s']:.2f} s, longest {s['max_s']:.1f} s.",
            "",
            "| budget per GPU | batches | steps | mean batch | padded | frames per real frame "
            "| frames per real s | fill | budget / real s | pair repeat | two epochs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        budget = None
        for row in s["rows"]:
            if row["budget"] != budget:
                budget = row["budget"]
                lines.append(f"| **{budget}: {row['budget_s']:g} s** | | | | | | | | | | |")
            lines.append(
                f"| {row['system']} | {row['batches']:,} | {row['steps']:,} | "
                f"{row['mean_batch_size']:.1f} | {100 * row['padded_fraction']:.2f}% | "
                f"{row['frames_per_real_frame']:.3f} | {row['frames_per_real_second']:.1f} | "
                f"{row['budget_fill']:.3f} | "
                f"{row['budget_per_real_second']:.3f} | {row['pair_repeat']:.4f} | "
                f"{row['two_epochs_s']:.1f} s |"
            )
        lines.append("")
    return lines
