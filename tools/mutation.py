"""Mutation testing of the modules whose output is a number or a decision (``make mutation``).

mutmut has one global test selection; run on all these modules at once, every
mutant of ``sense/losses.py`` would also run the ZeroST and dual-encoder tests
that happen to call it. So this script runs mutmut once per *group* of modules,
each with its own fast tests (unit tests of that module and its doctests),
in a folder of its own, ``mutants/<group>/`` (linked to ``sense/``, ``tests/``...),
where mutmut keeps its state (``mutants/<group>/mutants/``). The settings shared
by every group (pytest arguments, isolation, timeouts) are ``[tool.mutmut]`` in
pyproject.toml; each group overrides ``only_mutate`` and the test selection.

Usage::

    python tools/mutation.py [GROUP ...]          # run (all groups by default)
    python tools/mutation.py --list               # the groups, modules and tests
    python tools/mutation.py survivors [--diff] [GROUP ...]   # mutants not killed
    python tools/mutation.py show MUTANT          # the diff of one mutant

Each run starts from a clean ``mutants/<group>/`` and ends with a table of
scores (killed / total per module), also written to ``mutants/scores.md``; the
exit status is 1 when a module scores under ``--min-score`` (90 %).
See docs/mutation.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "mutants")
MUTMUT = os.path.join(os.path.dirname(sys.executable), "mutmut")
# What each group's folder links to (mutmut copies them into its own mutants/).
LINKS = ("sense", "tests", "tools", "recipes", "hparams", "benchmarks")


def _module(path: str) -> str:
    return path[: -len(".py")].replace("/", ".")


def _mutants_of(module: str, *functions: str) -> list[str]:
    """mutmut's names of the mutants of some ``functions`` of ``module`` (the ones counted)."""
    return [f"{module}.{name}__mutmut_*" for name in functions]


# name: modules mutated, the pytest arguments that select their fast tests, and
# (optional) which mutants count, as mutmut names (fnmatch patterns); by default
# every mutant of the modules. -k keeps the doctests of the modules by their
# dotted name (doctest items are named ``sense.module.function``).
GROUPS = {
    "slu": {
        "modules": ["sense/slu/metrics.py", "sense/slu/markup.py", "sense/slu/ctc.py"],
        "tests": [
            "tests/test_slu_metrics.py",
            "tests/test_slu_metrics_mutants.py",
            "tests/test_slu_ctc.py",
            "tests/test_slu_ctc_mutants.py",
            "tests/test_slu_markup_mutants.py",
            "-k",
            "not known_ctc_path",  # test_slu_ctc's exported model: not a unit test
        ],
    },
    "bleu": {
        "modules": ["sense/translation/metrics.py"],
        "tests": [
            "tests/test_translation.py",
            "tests/test_bleu_mutants.py",
            "-k",
            "bleu or sense.translation.metrics",
        ],
    },
    "summarization": {
        "modules": ["sense/summarization/metrics.py"],
        "tests": [
            "tests/test_summarization.py",
            "tests/test_summarization_mutants.py",
            "-k",
            "rouge or bertscore or sense.summarization.metrics",
        ],
    },
    "zerost": {
        "modules": ["sense/zerost/losses.py"],
        "tests": [
            "tests/test_zerost.py",
            "tests/test_zerost_losses_mutants.py",
            "-k",
            "kd_loss or kd_projection or gradients or losses_mutants or sense.zerost.losses",
        ],
    },
    "tokens": {
        "modules": ["sense/dual_encoder/tokens.py"],
        # the tokenizer on a stand-in encoder (test_tokenizer_mutants), not a tiny w2v-BERT
        "tests": [
            "tests/test_dual_encoder.py",
            "tests/test_tokens_mutants.py",
            "tests/test_tokenizer_mutants.py",
            "-k",
            "recovers_separated_clusters or tokens_mutants or tokenizer_mutants"
            " or sense.dual_encoder.tokens",
        ],
    },
    "retrieval": {
        "modules": ["sense/retrieval.py"],
        "tests": ["tests/test_retrieval.py", "tests/test_retrieval_mutants.py"],
    },
    "losses": {
        "modules": ["sense/losses.py"],
        "tests": ["tests/test_losses.py", "tests/test_losses_mutants.py"],
    },
    "trust": {
        "modules": ["sense/trust.py"],
        "tests": ["tests/test_trust.py", "tests/test_trust_mutants.py"],
    },
    "teacher_cache": {
        "modules": ["sense/teacher_cache.py"],
        # not the tests that load a real teacher or start processes (build_distributed)
        "tests": [
            "tests/test_teacher_cache.py",
            "tests/test_teacher_cache_mutants.py",
            "-k",
            "not sentence_encoder_teacher and not build_distributed",
        ],
        # its key: the row hash and the decisions built on it (which rows are
        # reused, re-encoded, served, or reported stale); not the file handling
        "mutants": _mutants_of(
            "sense.teacher_cache",
            "x_row_hash",
            "x__teacher_id_of",
            "x__prepare",
            "x__prepare_layout",
            "x__reusable",
            "x__todo",
            "xǁTeacherCacheǁverify",
            "xǁTeacherCacheǁ__contains__",
            "xǁTeacherCacheǁ_row",
        ),
    },
    "windows": {
        "modules": ["sense/windows.py"],
        "tests": [
            "tests/test_inference.py",
            "tests/test_windows_mutants.py",
            "-k",  # not the tests that export and run a model
            "window_planning or windows_mutants or sense.windows",
        ],
    },
    "attention": {
        "modules": ["sense/analysis/attention.py"],
        "tests": [
            "tests/test_attention_analysis.py",
            "tests/test_attention_mutants.py",
            "-k",  # the unit tests, not those that run a model (sense attention, the recipe)
            "position_curve or first_frames or word_sums or nonspeech_mass or attention_mutants"
            " or sense.analysis.attention",
        ],
    },
    "relative_key": {
        "modules": ["sense/lobes/attention.py"],
        "tests": [
            "tests/test_attention_paths.py",
            "-k",  # not flex (its CPU compile takes seconds a mutant) nor the benchmark's report
            "not flex and not benchmark or sense.lobes.attention",
        ],
        # every path but flex's, whose tests compile it (and run its backward on a GPU only)
        "mutants": _mutants_of(
            "sense.lobes.attention",
            "x_check_attention",
            "x_distance_index",
            "x_distance_table",
            "x_relative_key_bias",
            "x_key_padding",
            "x__far",
            "x__skew",
            "x__band",
            "x_regional_attention",
            "x__add_mask",
            "xǁ_RelativeKeyAttentionǁforward",
            "x__regional",
            "x_regional_from",
            "xǁSdpaRelativeKeyAttentionǁattend",
            "x_use_attention",
        ),
    },
    "samplers": {
        "modules": ["sense/samplers.py"],
        "tests": [
            "tests/test_samplers.py",
            "tests/test_samplers_padding.py",
            "tests/test_samplers_mutants.py",
        ],
    },
    "pooling": {
        "modules": ["sense/nnet/pooling.py"],
        "tests": ["tests/test_pooling.py", "tests/test_pooling_mutants.py"],
    },
    "features": {
        "modules": ["sense/features.py"],
        "tests": ["tests/test_features.py", "tests/test_features_mutants.py"],
    },
    "ann": {
        "modules": ["sense/ann.py"],
        "tests": [
            "tests/test_index_ann.py",
            "tests/test_ann_memory.py",
            "tests/test_ann_mutants.py",
        ],
    },
    "finetune": {
        "modules": ["sense/finetune.py"],
        "tests": ["tests/test_finetune_mutants.py"],
        # the fine-tuning decisions: rates, schedules, warm-up, optimizers, checkpoints;
        # not the experiment's opening (argv, YAML, device) nor the logs, which the
        # recipes' tests run
        "mutants": _mutants_of(
            "sense.finetune",
            "x_optimizer_steps",
            "x_scale_learning_rates",
            "x_three_phase_schedule",
            "xǁFineTuneBrainǁencode",
            "xǁFineTuneBrainǁend_valid_epoch",
            "xǁFineTuneBrainǁload_best",
            "xǁFineTuneBrainǁupdate_average",
            "xǁFineTuneBrainǁhead_parameters",
            "xǁFineTuneBrainǁinit_optimizers",
            "xǁFineTuneBrainǁfreeze_optimizers",
            "xǁFineTuneBrainǁon_fit_batch_start",
            "xǁFineTuneBrainǁfollow_schedules",
            "xǁFineTuneBrainǁanneal",
        ),
    },
    "storage": {
        "modules": ["sense/storage.py"],
        "tests": [
            "tests/test_index_ann.py",
            "tests/test_storage_mutants.py",
            "-k",
            "int8 or storage_mutants or sense.storage",
        ],
    },
    "dataio": {
        "modules": ["sense/dataio.py"],
        "tests": ["tests/test_dataio.py", "tests/test_dataio_mutants.py"],
    },
    "index": {
        "modules": ["sense/index.py", "sense/index_shards.py"],
        "tests": [
            "tests/test_index_ann.py",
            "tests/test_index_incremental.py",
            "tests/test_index_torchrun.py",
            "tests/test_index_mutants.py",
            "-k",  # not the runs of torchrun (processes of their own)
            "not two_ranks and not killed and not fails_to_load",
        ],
    },
    "speechbrain_import": {
        "modules": ["sense/speechbrain_import.py"],
        "tests": ["tests/test_speechbrain_import.py", "tests/test_speechbrain_import_mutants.py"],
    },
}


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _table(name: str, table: dict) -> str:
    return f"[{name}]\n" + "".join(f"{key} = {_toml(v)}\n" for key, v in table.items())


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def check_groups(config: dict) -> None:
    """Every module of ``[tool.mutmut] only_mutate`` is in exactly one group."""
    grouped = [m for g in GROUPS.values() for m in g["modules"]]
    listed = config["tool"]["mutmut"]["only_mutate"]
    if sorted(grouped) != sorted(listed) or len(set(grouped)) != len(grouped):
        raise SystemExit(
            f"tools/mutation.py GROUPS {sorted(grouped)} and pyproject's [tool.mutmut] "
            f"only_mutate {sorted(listed)} disagree"
        )


def prepare(name: str, config: dict) -> str:
    """A fresh ``mutants/<name>/``: links to the tree and the group's pyproject.toml."""
    group = GROUPS[name]
    folder = os.path.join(WORK, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for link in LINKS:
        os.symlink(os.path.join(ROOT, link), os.path.join(folder, link))
    mutmut = dict(config["tool"]["mutmut"])
    mutmut["only_mutate"] = list(group["modules"])
    mutmut["pytest_add_cli_args_test_selection"] = group["tests"] + group["modules"]
    mutmut["also_copy"] = [p for p in mutmut.get("also_copy", []) if p in LINKS]
    text = "# written by tools/mutation.py for the group " + repr(name) + "\n"
    text += _table("tool.pytest.ini_options", config["tool"]["pytest"]["ini_options"])
    text += "\n" + _table("tool.mutmut", mutmut)
    with open(os.path.join(folder, "pyproject.toml"), "w") as f:
        f.write(text)
    return folder


def patterns(name: str) -> list[str]:
    group = GROUPS[name]
    return group.get("mutants") or [_module(m) + ".*" for m in group["modules"]]


def results(name: str) -> dict[str, dict[str, str]]:
    """``{module: {mutant: status}}`` of the group's last run (counted mutants only)."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for module in GROUPS[name]["modules"]:
        meta = os.path.join(WORK, name, "mutants", module + ".meta")
        statuses = {}
        if os.path.exists(meta):
            with open(meta) as f:
                codes = json.load(f)["exit_code_by_key"]
            for key, code in codes.items():
                if any(fnmatch.fnmatch(key, p) for p in patterns(name)):
                    statuses[key] = status_by_exit_code[code]
        out[module] = statuses
    return out


def score_rows(names) -> list[dict]:
    rows = []
    for name in names:
        for module, statuses in results(name).items():
            counts = {}
            for status in statuses.values():
                counts[status] = counts.get(status, 0) + 1
            total = len(statuses)
            # a mutant that makes the tests run past the time limit is caught too
            killed = counts.get("killed", 0) + counts.get("timeout", 0)
            rows.append(
                {
                    "group": name,
                    "module": module,
                    "killed": killed,
                    "total": total,
                    "survived": counts.get("survived", 0),
                    "other": {k: v for k, v in counts.items() if k not in ("killed", "survived")},
                    "score": 100.0 * killed / total if total else 0.0,
                }
            )
    return rows


def table(rows, seconds: dict[str, float] | None = None) -> str:
    lines = [
        "| module | killed / total | score | survived | other | group time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        other = ", ".join(f"{k} {v}" for k, v in sorted(r["other"].items()) if k != "timeout")
        timeouts = r["other"].get("timeout")
        killed = f"{r['killed']} / {r['total']}" + (f" ({timeouts} by timeout)" if timeouts else "")
        spent = f"{seconds[r['group']]:.0f} s" if seconds and r["group"] in seconds else ""
        lines.append(
            f"| {r['module']} | {killed} | {r['score']:.1f} % | {r['survived']} | {other} | {spent} |"
        )
    return "\n".join(lines)


def run(names, max_children: int, min_score: float) -> int:
    config = _pyproject()
    check_groups(config)
    env = dict(os.environ)
    # The tests run in processes forked from one that already ran torch: one thread
    # (an OpenMP pool does not survive a fork), and each worker a core of its own.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    seconds = {}
    start_all = time.monotonic()
    for name in names:
        folder = prepare(name, config)
        log = os.path.join(folder, "mutmut.log")
        print(f"== {name}: {', '.join(GROUPS[name]['modules'])}", flush=True)
        start = time.monotonic()
        with open(log, "w") as out:
            proc = subprocess.run(
                [MUTMUT, "run", "--max-children", str(max_children), *patterns(name)],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        seconds[name] = time.monotonic() - start
        if proc.returncode != 0:
            with open(log, errors="replace") as f:
                tail = f.read().replace("\r", "\n").splitlines()[-30:]
            print("\n".join(tail))
            print(f"mutmut failed for {name} (exit {proc.returncode}); log: {log}")
            return 2
        print(table(score_rows([name]), seconds), flush=True)
    rows = score_rows(names)
    total = time.monotonic() - start_all
    report = table(rows, seconds) + f"\n\nwall time: {total / 60:.1f} min\n"
    with open(os.path.join(WORK, "scores.md"), "w") as f:
        f.write(report)
    print("\n" + report)
    low = [r["module"] for r in rows if r["score"] < min_score]
    if low:
        print(f"under {min_score:g} %: {', '.join(low)}  (python tools/mutation.py survivors)")
        return 1
    return 0


def survivors(names, diff: bool = False) -> None:
    """List the mutants not killed; with ``diff``, each one's change too."""
    for name in names:
        for module, statuses in results(name).items():
            left = [k for k, s in statuses.items() if s not in ("killed", "timeout")]
            if not left:
                continue
            print(f"== {module} ({name})")
            for key in left:
                print(f"   {key}: {statuses[key]}")
                if diff:
                    print(_diff(name, module, key))


def _diff(name: str, module: str, key: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = os.getcwd()
    os.chdir(os.path.join(WORK, name))  # mutmut reads its config and mutants/ from here
    try:
        lines = get_diff_for_mutant(key, path=module).splitlines()[2:]  # no file header
    finally:
        os.chdir(here)
    return "\n".join("      " + line for line in lines if not line.startswith("@@"))


def show(mutant: str) -> int:
    for name, group in GROUPS.items():
        if any(mutant.startswith(_module(m) + ".") for m in group["modules"]):
            folder = os.path.join(WORK, name)
            return subprocess.run([MUTMUT, "show", mutant], cwd=folder).returncode
    print(f"no group mutates {mutant}")
    return 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "args", nargs="*", help="GROUP ..., or survivors [GROUP ...], or show MUTANT"
    )
    parser.add_argument("--list", action="store_true", help="print the groups and exit")
    parser.add_argument("--diff", action="store_true", help="survivors: show each one's change")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--min-score", type=float, default=90.0, help="lowest passing score, %%")
    args = parser.parse_intermixed_args(argv)
    if args.list:
        for name, group in GROUPS.items():
            print(f"{name}: {' '.join(group['modules'])}\n    tests: {' '.join(group['tests'])}")
        return 0
    command, rest = "run", args.args
    if rest and rest[0] in ("survivors", "show", "run"):
        command, rest = rest[0], rest[1:]
    if command == "show":
        return show(rest[0])
    unknown = [n for n in rest if n not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; known: {', '.join(GROUPS)}")
    names = rest or list(GROUPS)
    if command == "survivors":
        survivors(names, args.diff)
        return 0
    return run(names, args.max_children, args.min_score)


if __name__ == "__main__":
    sys.exit(main())
