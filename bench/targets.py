"""The issue's targets for bench/run.py's figures, and which of them a run met."""

# The project's advantage (reference / project, or project / reference for rates).
TARGETS = {
    "training_memory": 5,
    "time_to_reference_nll": 5,
    "single_melody": 10,
    "preprocess_cold": 3,
    "preprocess_warm": 20,
}
# Sampling, absolute per architecture: steps/s at least, or the step-1000 / step-10 cost ratio at
# most.
SAMPLING_TARGETS = {
    ("lstm", "single"): 5000,
    ("transformer", "single"): 3000,
    ("transformer", "batch"): 30000,
    ("transformer", "late_step_ratio"): 1.5,
}
SAMPLING_LABELS = {
    "single": "1 melody of 1000 steps (steps/s)",
    "batch": "64 melodies of 500 steps together (steps/s)",
    "late_step_ratio": "a step at step 1000 / at step 10",
}


def target_rows(results):
    """(figure, project's advantage, target, met) for each of the issue's targets that was
    measured.
    """
    rows = []
    for name in ("erk", "deutschl"):
        if name in results.get("preprocess", {}):
            pre = results["preprocess"][name]
            rows.append(
                (f"preprocess cold, {name}", pre["cold_speedup"], TARGETS["preprocess_cold"])
            )
            rows.append(
                (f"preprocess warm, {name}", pre["warm_speedup"], TARGETS["preprocess_warm"])
            )
    if "train" in results:
        rows.append(
            (
                "training peak memory",
                results["train"]["memory_advantage"],
                TARGETS["training_memory"],
            )
        )
        rows.append(
            (
                f"time to the reference's {results['train']['budget_minutes']:g}-minute NLL",
                results["train"]["time_to_reference_nll_speedup"],
                TARGETS["time_to_reference_nll"],
            )
        )
    if "generate" in results:
        rows.append(
            (
                "single-melody generation",
                results["generate"]["single"]["speedup"],
                TARGETS["single_melody"],
            )
        )
    return [
        {"figure": f, "advantage": a, "target": t, "met": a is not None and a >= t}
        for f, a, t in rows
    ]


def sampling_target_rows(results):
    rows = []
    for (arch, figure), target in SAMPLING_TARGETS.items():
        measured = results.get("sampling", {}).get(arch, {}).get(figure)
        if measured is None:
            continue
        ratio_target = figure == "late_step_ratio"
        rows.append(
            {
                "figure": f"{arch}, {SAMPLING_LABELS[figure]}",
                "measured": measured,
                "target": target,
                "met": measured <= target if ratio_target else measured >= target,
            }
        )
    return rows
