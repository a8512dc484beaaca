"""bench/run.py's run: the sections its flags ask for, in a scratch folder; then the targets, and
the results as <out>/<date>.json and .md."""

import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from generation import bench_generate, untrained_models
from preprocessing import bench_preprocess, quick_subset
from report import markdown
from sampling import bench_sampling
from targets import sampling_target_rows, target_rows
from timing import CHILD_ENV, fmt, machine
from training import bench_train

import config
from melody import artefacts

ROOT = Path(__file__).resolve().parent.parent


def run(args):
    minutes = budget(args)
    set_threads(args)
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    results = {
        "command": command.strip(),
        "quick": args.quick,
        "machine": machine(),
        "preprocess": {},
    }
    print(
        f"{results['machine']['cpu']}, {results['machine']['cores']} cores, torch "
        f"{results['machine']['torch']} ({results['machine']['torch_threads']} threads)",
        flush=True,
    )
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="melody-bench-"))
    try:
        run_sections(args, results, work, minutes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["targets"] = target_rows(results)
    results["sampling_targets"] = sampling_target_rows(results)
    results["wall_seconds"] = time.perf_counter() - started
    print_targets(results)
    write_results(args, results)


def budget(args):
    """The training budget in minutes, for the reference and for the project."""
    minutes = (
        args.reference_minutes
        if args.reference_minutes is not None
        else 0.05
        if args.quick
        else 10.0
    )
    if minutes <= 0:
        raise artefacts.UserError(f"--reference-minutes {minutes}: must be above 0")
    return minutes


def set_threads(args):
    """Torch threads here and in every measured process, from --threads (1 with --quick)."""
    threads = args.threads if args.threads is not None else 1 if args.quick else None
    if threads is not None:
        if threads < 1:
            raise artefacts.UserError(f"--threads {threads}: must be 1 or more")
        torch.set_num_threads(threads)
        CHILD_ENV.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def run_sections(args, results, work, minutes):
    data, data_label = args.data, f"the songs in {args.data}"
    if args.sampling_only:  # section 4 alone
        data = data or ROOT
        mapping = artefacts.load_mapping(data / config.MAPPING_PATH)
        results["sampling"] = bench_sampling(mapping, data, work, args.quick)
        return
    data, data_label = run_preprocess(args, results, work, data, data_label)
    if data is None and (ROOT / config.SINGLE_FILE_DATASET).is_file():
        data, data_label = ROOT, f"the songs in {config.SINGLE_FILE_DATASET}"
    if data is None:
        print(
            "training and generation: skipped (no data: pass --data or a --dataset-root with erk/)"
        )
        return
    run_models(args, results, work, minutes, data, data_label)


def run_preprocess(args, results, work, data, data_label):
    """Section 1; the data to train on: the erk output where --data is not given."""
    if args.skip_preprocess:
        print("preprocess: skipped (--skip-preprocess)")
        return data, data_label
    if not (args.dataset_root / "erk").is_dir():
        print(
            f"preprocess: skipped ({args.dataset_root / 'erk'} not found; --dataset-root "
            "points at deutschl/)"
        )
        results["preprocess_skipped"] = f"{args.dataset_root / 'erk'} not found"
        return data, data_label
    datasets = {"erk": args.dataset_root / "erk", "deutschl": args.dataset_root}
    if args.quick:
        del datasets["deutschl"]  # the same code path again: not worth the seconds in a smoke test
    for name, folder in datasets.items():
        if args.quick:
            folder = quick_subset(folder, work / f"quick-{name}")
        results["preprocess"][name], output = bench_preprocess(name, folder, work)
        if name == "erk" and data is None:
            data, data_label = output, "the project's preprocessed erk songs"
    return data, data_label


def run_models(args, results, work, minutes, data, data_label):
    """Sections 2, 3 and 4 on data."""
    if args.skip_train:
        print("training: skipped (--skip-train): generation uses untrained models of the same size")
        models = untrained_models(artefacts.load_mapping(data / config.MAPPING_PATH), data)
    else:
        results["train"], models = bench_train(data, data_label, work, minutes, args.quick)
        if args.keep:
            shutil.copytree(work / "project-train", args.keep, dirs_exist_ok=True)
    if args.skip_generate:
        print("generation: skipped (--skip-generate)")
        return
    mapping = artefacts.load_mapping(data / config.MAPPING_PATH)
    results["generate"] = bench_generate(models, mapping, work, args.quick)
    results["sampling"] = bench_sampling(mapping, data, work, args.quick)


def print_targets(results):
    for row in results["targets"]:
        print(
            f"  target {row['figure']}: {fmt(row['advantage'])}x (target {row['target']}x) "
            f"{'met' if row['met'] else 'NOT met'}"
        )
    for row in results["sampling_targets"]:
        print(
            f"  target {row['figure']}: {fmt(row['measured'])} (target {fmt(row['target'])}) "
            f"{'met' if row['met'] else 'NOT met'}"
        )


def write_results(args, results):
    name = datetime.date.today().isoformat() + ("-quick" if args.quick else "")
    name += "-sampling" if args.sampling_only else ""
    artefacts.write_json(args.out / f"{name}.json", results)
    artefacts.write_text(
        args.out / f"{name}.md",
        f"# Benchmark, {name}\n\n" + markdown(results, args.out / f"{name}.json"),
    )
    print(
        f"wrote {args.out / name}.json and .md in {results['wall_seconds']:.0f} s"
        + (
            ""
            if args.quick
            else "; `python bench/run.py --readme` puts them in docs/performance.md"
        )
    )
