"""Preprocessing figures per dataset: files, songs kept, vocabulary, steps, cold and warm seconds.

    python bench/preprocess.py                        # the datasets in DATASETS
    python bench/preprocess.py music21:bach ../shared/deutschl/erk

Each dataset runs as `python preprocess.py --dataset D --name bench` in an empty scratch folder
(cold: no cache), then again there (warm: every parse from the cache); the wall time of the whole
command, interpreter start and imports included. The counts come from the data/bench/ it writes.
Prints a markdown table, with the machine and its load average before and after; a run of the
default datasets (no arguments) also writes it to bench/results/<date>-preprocess.md and .json.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = [
    "music21:essenFolksong",
    "music21:oneills1850",
    "music21:ryansMammoth",
    "music21:bach",
    str(ROOT.parent / "shared" / "deutschl"),
]


def timed(dataset, cwd):
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "preprocess.py"), "--dataset", dataset, "--name", "bench"],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def counts(folder):
    """files, kept, vocabulary and steps from data/NAME/README.md's `- name: value` lines."""
    lines = dict(
        line[2:].split(": ", 1)
        for line in (folder / "README.md").read_text().splitlines()
        if line.startswith("- ")
    )
    return {
        "files": int(lines["files"]),
        "songs": int(lines["songs found"]),
        "kept": int(lines["kept"]),
        "vocabulary": int(lines["vocabulary"].split()[0]),
        "steps": int(lines["steps in file_dataset"]),
    }


def main():
    datasets = sys.argv[1:] or DATASETS
    machine = f"{os.cpu_count()} cores, load average before {os.getloadavg()[0]:.1f}"
    rows = []
    for dataset in datasets:
        if not dataset.startswith("music21:") and not Path(dataset).is_dir():
            print(f"{dataset}: not found, left out", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as scratch:
            cold, warm = timed(dataset, scratch), timed(dataset, scratch)
            row = {"dataset": dataset, **counts(Path(scratch) / "data" / "bench")}
        rows.append({**row, "cold_s": round(cold, 2), "warm_s": round(warm, 2)})
        print(rows[-1], flush=True)
    machine += f", after {os.getloadavg()[0]:.1f}"
    table = [
        "| dataset | files | songs | kept | vocabulary | steps | cold (s) | warm (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ] + [
        f"| {Path(r['dataset']).name if '/' in r['dataset'] else r['dataset']} | {r['files']:,} | "
        f"{r['songs']:,} | {r['kept']:,} | {r['vocabulary']} | {r['steps']:,} | {r['cold_s']:.1f} "
        f"| {r['warm_s']:.1f} |"
        for r in rows
    ]
    text = "\n".join(table) + f"\n\nMeasured by `python bench/preprocess.py` on {machine}.\n"
    print(text)
    if sys.argv[1:]:
        return
    date = datetime.date.today().isoformat()
    results = ROOT / "bench" / "results"
    (results / f"{date}-preprocess.md").write_text(text)
    (results / f"{date}-preprocess.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
