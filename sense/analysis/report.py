"""The Markdown report of the attention analysis (:func:`sense.analysis.run.analyze`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sense.analysis.attention import EDGE_FRAMES

#: Relative positions shown in the report's Figure 2 table.
REPORT_POSITIONS = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def format_report(
    summary: Mapping, edge_frames: int = EDGE_FRAMES, word_langs: Sequence[str] | None = None
) -> str:
    """The Markdown report of :func:`analyze`'s summary (Table IX of ``word_langs`` only,
    when given)."""
    langs = summary["languages"]
    lines = [
        "# Where the meaning is: attention of the pooling (SENSE paper, section VII)",
        "",
        f"{summary['utterances']} utterance(s) analysed"
        + (f", {len(summary['skipped'])} skipped" if summary["skipped"] else "")
        + ".",
        "",
        "## Figure 2: mean attention logit against relative position",
        "",
        "| lang | utt. | " + " | ".join(f"{p:.2f}" for p in REPORT_POSITIONS) + " |",
        "|---" * (len(REPORT_POSITIONS) + 2) + "|",
    ]
    for lang, info in langs.items():
        cells = " | ".join(f"{v:.2f}" for v in info["position_curve"].values())
        lines.append(f"| {lang} | {info['utterances']} | {cells} |")
    lines += [
        "",
        f"## Attention on the first and last {edge_frames} frames",
        "",
        "| lang | mean frames | first: weight | first: share of frames | last: weight "
        "| last: share of frames | non-speech: weight | non-speech: share of frames |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, info in langs.items():
        first, last = info["first_frames"], info["last_frames"]
        silence = info.get("nonspeech")
        quiet = f"{_pct(silence['mass'])} | {_pct(silence['frame_share'])}" if silence else "- | -"
        lines.append(
            f"| {lang} | {first['mean_frames']:.1f} | {_pct(first['mass'])} | "
            f"{_pct(first['frame_share'])} | {_pct(last['mass'])} | {_pct(last['frame_share'])} "
            f"| {quiet} |"
        )
    lines += ["", "## Word boundaries", ""]
    for lang, info in langs.items():
        sources = ", ".join(f"{n} from {k}" for k, n in info["word_sources"].items()) or "none"
        line = (
            f"- {lang}: {info['aligned']} of {info['utterances']} utterance(s) aligned ({sources})"
        )
        if info["alignment_problems"]:
            why = "; ".join(f"{n} x {k}" for k, n in info["alignment_problems"].items())
            line += f"; curve only for the others: {why}"
        lines.append(line)
    for lang, info in langs.items():
        if "top_occurrences" not in info or (word_langs is not None and lang not in word_langs):
            continue
        lines += [
            "",
            f"## Table IX ({lang}): top word occurrences by attention-logit sum, "
            "and the most frequent words",
            "",
            "| word | sum | utterance | | word | mean sum | count |",
            "|---|---:|---|---|---|---:|---:|",
        ]
        top, frequent = info["top_occurrences"], info["frequent_words"]
        for i in range(max(len(top), len(frequent))):
            left = (
                f"{top[i]['word']} | {top[i]['logit_sum']:.3f} | {top[i]['utterance']}"
                if i < len(top)
                else " | | "
            )
            right = (
                f"{frequent[i]['word']} | {frequent[i]['mean_sum']:.3f} | {frequent[i]['count']}"
                if i < len(frequent)
                else " | | "
            )
            lines.append(f"| {left} | | {right} |")
    classes = [
        (lang, info["word_classes"]) for lang, info in langs.items() if "word_classes" in info
    ]
    if classes:
        lines += [
            "",
            "## Content words against function words",
            "",
            "| lang | class | occurrences | mean logit sum | mean logit per frame "
            "| mean logit minus the utterance's mean | mean frames |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for lang, stats in classes:
            for name, s in stats.items():
                lines.append(
                    f"| {lang} | {name} | {s['count']} | {s['mean_sum']:.3f} | "
                    f"{s['mean_logit']:.3f} | {s['centred_logit']:+.3f} | {s['mean_frames']:.1f} |"
                )
    if summary.get("pooling"):
        pooling = summary["pooling"]
        pair_names = list(next(iter(pooling.values())))
        lines += [
            "",
            "## Learned attention against uniform mean pooling (R@1, same model, same frames)",
            "",
            "| pooling | " + " | ".join(pair_names) + " | mean |",
            "|---" * (len(pair_names) + 2) + "|",
        ]
        for name, per_pair in pooling.items():
            values = [100 * per_pair[p]["R@1"] for p in pair_names]
            cells = " | ".join(f"{v:.1f}" for v in values)
            lines.append(f"| {name} | {cells} | **{sum(values) / len(values):.1f}** |")
    if summary["skipped"]:
        lines += ["", "## Skipped", ""]
        lines += [f"- {s['id']}: {s['reason']}" for s in summary["skipped"]]
    return "\n".join(lines) + "\n"
