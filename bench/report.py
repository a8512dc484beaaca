"""The markdown of bench/run.py's results: the side-by-side table, the sampling table, the targets
and how each figure was measured; and the performance page's section made from the latest full
results."""

import json
import re
from pathlib import Path

from generation import NO_STOP_BIAS
from targets import sampling_target_rows, target_rows
from timing import fmt

import config
from melody import artefacts
from melody import models as model

ROOT = Path(__file__).resolve().parent.parent
# The page the bench writes its figures into (the README links to it), and the section it replaces.
PERFORMANCE_PAGE = ROOT / "docs" / "performance.md"
SECTION = "## Performance"
# The section's opening; the rest of the section is made from the latest full results.
SECTION_INTRO = (
    "The project against the tutorial it grew from, measured side by side on the same machine "
    "in one\n"
    "run. `bench/reference.py` re-implements the tutorial's scheme plainly in PyTorch, "
    "for comparison\n"
    "only. A ratio is the project's advantage (above 1: the project is better).\n"
    "\n"
    "    python bench/run.py            # about 35 minutes on a 2-core CPU: "
    "bench/results/<date>.json and .md\n"
    "    python bench/run.py --readme   # rewrites this section from the latest results\n"
)


def markdown_table(results):
    """The figures, side by side: project, reference, and the project's advantage."""
    lines = ["| figure | project | reference | project's advantage |", "|---|---:|---:|---:|"]
    for name, pre in results.get("preprocess", {}).items():
        for run in ("cold", "warm"):
            p, r = pre["project"][run], pre["reference"][run]
            lines.append(
                f"| preprocess {name} ({pre['files']:,} files), {run} | {p['seconds']:.1f} s "
                f"({p['files_per_second']:,.0f} files/s) | {r['seconds']:.1f} s "
                f"({r['files_per_second']:,.0f} files/s) | {fmt(pre[f'{run}_speedup'])}x |"
            )
    if "train" in results:
        lines += training_table_rows(results["train"])
    if "generate" in results:
        lines += generation_table_rows(results["generate"])
    return lines


def training_table_rows(t):
    p, r = t["project"], t["reference"]
    reached = (
        f"{p['seconds_to_reference_nll']:.0f} s (epoch {p['epoch_reaching_reference_nll']})"
        if p["seconds_to_reference_nll"] is not None
        else f"not within {t['budget_minutes']:g} min"
    )
    return [
        f"| training peak memory (whole process) | {p['peak_rss_mib']:,.0f} MiB | "
        f"{r['peak_rss_mib']:,.0f} MiB | {fmt(t['memory_advantage'])}x |",
        f"| seconds per epoch | {p['epoch_seconds']:.1f} s | {r['epoch_seconds']:,.0f} s | "
        f"{fmt(t['epoch_speedup'])}x |",
        f"| held-out NLL after {t['budget_minutes']:g} min (nats/step) | "
        f"{fmt(p['best_val_loss_within_budget'], 3)} | {r['val_loss']:.3f} | |",
        f"| held-out accuracy after {t['budget_minutes']:g} min | "
        f"{fmt(p['best_val_accuracy_within_budget'], 3)} | {r['val_accuracy']:.3f} | |",
        f"| time to the reference's {t['budget_minutes']:g}-min NLL | {reached} | "
        f"{t['budget_minutes'] * 60:.0f} s | {fmt(t['time_to_reference_nll_speedup'])}x |",
    ]


def generation_table_rows(g):
    return [
        f"| generation, {label} | {g[name]['project_steps_per_second']:,.0f} steps/s | "
        f"{g[name]['reference_steps_per_second']:,.0f} steps/s | "
        f"{fmt(g[name]['speedup'])}x |"
        for name, label in (
            ("single", f"1 melody of {g['single_steps']} steps"),
            ("batch", f"{g['batch_melodies']} melodies of {g['batch_steps']} steps"),
        )
    ]


def shown_path(path):
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def markdown(results, results_path):
    m = results["machine"]
    lines = [
        f"Measured by `{results['command']}` on {m['date'][:10]}: {m['cpu']}, {m['cores']} cores, "
        f"{fmt(m['memory_gib'])} GiB, Python {m['python']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), music21 {m['music21']}"
        + (f", load average {m['load_average'][0]:.1f}" if m.get("load_average") else "")
        + ". Full results: "
        f"`{shown_path(results_path)}`.",
        "",
    ]
    if results.get("quick"):
        lines += ["**A --quick smoke run: tiny data and budgets; these figures mean nothing.**", ""]
    table = markdown_table(results)
    lines += table + [""] if len(table) > 2 else []  # none with --sampling-only
    if results.get("sampling"):
        lines += sampling_markdown(results) + [""]
    rows = target_rows(results)
    if rows:
        lines += [
            "| target (the project's advantage) | measured | target | met |",
            "|---|---:|---:|---|",
        ]
        lines += [
            f"| {r['figure']} | {fmt(r['advantage'])}x | {r['target']}x | "
            f"{'yes' if r['met'] else '**no**'} |"
            for r in rows
        ]
        lines.append("")
    lines += [f"- {note}" for note in notes(results)]
    return "\n".join(lines) + "\n"


def notes(results):
    """How each figure was measured: what a reader needs to trust it."""
    out = [
        "The reference is `bench/reference.py`: the tutorial's scheme (music21 stream parsing and "
        "transposition, one process; one-hot float32 windows of 64 steps, stride 1, materialised "
        "for the whole dataset; one target per window; generation re-running the one-hot window of "
        "the last 64 steps for every step), re-implemented plainly in PyTorch with the same "
        "LSTM(256), dropout 0.2, Adam 1e-3 and batch 64."
    ]
    if results.get("preprocess"):
        out.append(
            "Preprocess: wall time of the whole command in its own process (interpreter start and "
            "imports included). Project cold: an empty folder, no cache; warm: the same command "
            "again. Reference cold: every file parsed from source (forceSource=True); reference "
            "warm: its second run with music21's pickle cache, which the tutorial's "
            "converter.parse uses by default (its first run, writing that cache, is in the JSON as "
            "cold_writing_music21_cache)."
        )
    if "train" in results:
        out += training_notes(results["train"])
    if "generate" in results:
        out.append(generation_note(results["generate"]))
    return out


def training_notes(t):
    return [
        (
            f"Training on {t['data']} ({t['train_songs']:,} training songs, {t['val_songs']} held "
            f"out, {t['val_steps']:,} held-out target steps; the split train.py makes). The "
            "reference trains on windows built from the same training songs as the project "
            "preprocessed them (so both predict the same targets; the tutorial's own preprocessing "
            f"starts a new onset at each tied note), for {t['budget_minutes']:g} min of training "
            f"time ({t['reference']['windows']:,} windows, a {t['reference']['onehot_gib']:.2f} "
            f"GiB one-hot array built in {t['reference']['onehot_build_seconds']:.0f} s, not "
            "counted). The project runs `train.py` with its defaults and `--max-minutes "
            f"{t['budget_minutes']:g}`."
        ),
        (
            "Both are scored by `model.score` on the same held-out songs and targets (every step "
            "of each song and its closing `/`), each with its generation context: the project from "
            "a zero state after one `/`; the reference from the window of the previous 64 symbols, "
            "the song start padded with `/`."
        ),
        (
            "Seconds per epoch: the project's is the median epoch including its validation pass "
            "(an epoch predicts every training step once); the reference's (an epoch is one pass "
            f"over all windows) is {t['reference']['epoch_seconds_how']}. Time to the reference's "
            "NLL: elapsed_seconds in training_log.csv at the first epoch whose validation NLL is "
            "at or below it."
        ),
        "Peak memory: ru_maxrss of the training process (os.wait4), imports and data included.",
    ]


def generation_note(g):
    return (
        "Generation with the "
        f"{'trained' if g['trained_models'] else 'untrained (--skip-train)'} models, on the "
        f"CPU, temperature {g['temperature']}, seed `{g['seed'] or '(none)'}`, both bounded to "
        "the tutorial's 64-step window (`generate_melody(seed, steps, "
        f"{g['max_sequence_length']}, T)`); the delimiter's logit is lowered by "
        f"{NO_STOP_BIAS:g} in both so that no melody stops early. The reference's batch runs "
        f"the {g['batch_melodies']} windows as one batch per step (the tutorial had no batch "
        "generation). The project's recommended call (no window, the state carries the whole "
        f"melody) ran {g['single']['project_unbounded_steps_per_second']:,.0f} steps/s on the "
        "single melody."
    )


def sampling_markdown(results):
    s = results["sampling"]
    lines = [
        "| architecture (config size) | 1 melody (steps/s) | 1 melody, best of "
        f"{config.END_CANDIDATES} | {s['batch_melodies']} melodies (steps/s) | step 10 | "
        f"step {s['late_step']} | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arch in model.ARCHITECTURES:
        if arch in s:
            a = s[arch]
            h = {k: v for k, v in a["hyperparameters"].items() if k not in ("vocab_size",)}
            h.pop("control_sizes", None)
            lines.append(
                f"| {arch} {h} | {a['single']:,.0f} | "
                f"{format(a['single_chosen'], ',.0f') if 'single_chosen' in a else '-'} | "
                f"{a['batch']:,.0f} | "
                f"{a['step_10_seconds'] * 1e6:.0f} us | "
                f"{a['step_late_seconds'] * 1e6:.0f} us | "
                f"{a['late_step_ratio']:.2f} |"
            )
    rows = sampling_target_rows(results)
    if rows:
        lines += ["", "| sampling target | measured | target | met |", "|---|---:|---:|---|"]
        lines += [
            f"| {r['figure']} | {fmt(r['measured'])} | {fmt(r['target'])} | "
            f"{'yes' if r['met'] else '**no**'} |"
            for r in rows
        ]
    return lines


def latest_results(out_dir):
    # a full run is named by its date alone; -quick, -sampling... runs are partial
    full = sorted(p for p in Path(out_dir).glob("*.json") if re.fullmatch(r"[\d-]{10}", p.stem))
    if not full:
        raise artefacts.UserError(f"no full results in {out_dir}: run `python bench/run.py` first")
    return full[-1]


def update_readme(out_dir, page=PERFORMANCE_PAGE):
    """Replace the page's "## Performance" section with the table of the latest full results."""
    path = latest_results(out_dir)
    results = json.loads(path.read_text())
    if not Path(page).is_file():
        raise artefacts.UserError(
            f"{page} not found: the bench writes its figures into that page's {SECTION!r} "
            "section (create the page with that heading)"
        )
    text = Path(page).read_text(encoding="utf-8")
    section = f"{SECTION}\n\n{SECTION_INTRO}\n{markdown(results, path)}"
    match = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if match:
        text = (
            text[: match.start()]
            + section
            + ("\n" if match.end() < len(text) else "")
            + text[match.end() :]
        )
    else:
        text = text.rstrip("\n") + "\n\n" + section
    artefacts.write_text(page, text)
    print(f"{page}: {SECTION} now shows {path}")
