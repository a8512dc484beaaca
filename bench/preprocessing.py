"""Section 1 of bench/run.py: preprocess, cold and warm, by the project and by the reference, each
command timed whole in its own process."""

import shutil
import sys
from pathlib import Path

from timing import show, timed_process

ROOT = Path(__file__).resolve().parent.parent
QUICK_FILES = 6  # .krn files of erk in --quick


def krn_files(folder):
    return sorted(Path(folder).rglob("*.krn"))


def quick_subset(folder, destination, count=QUICK_FILES):
    """The first few .krn files of a folder, copied (with their relative paths) into a scratch
    folder.
    """
    for path in krn_files(folder)[:count]:
        target = destination / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return destination


def bench_preprocess(name, dataset, work):
    python = sys.executable
    files = len(krn_files(dataset))
    print(f"preprocess {name}: {files} files in {dataset}", flush=True)
    project_dir = work / f"project-{name}"
    project_dir.mkdir()
    command = [python, str(ROOT / "preprocess.py"), "--dataset", str(dataset)]
    project = {
        "cold": timed_process(command, project_dir, work / f"project-{name}-cold.log"),
        "warm": timed_process(command, project_dir, work / f"project-{name}-warm.log"),
    }
    scratch = work / f"music21-scratch-{name}"  # music21 keeps its pickles under $TMPDIR/music21
    scratch.mkdir()
    ref = [python, str(ROOT / "bench" / "reference.py"), "preprocess", str(dataset), "--out"]
    reference_runs = {
        "cold": timed_process(
            ref + [str(work / f"reference-{name}-cold"), "--no-music21-cache"],
            work,
            work / f"reference-{name}-cold.log",
        ),
        "cold_writing_music21_cache": timed_process(
            ref + [str(work / f"reference-{name}-first")],
            work,
            work / f"reference-{name}-first.log",
            {"TMPDIR": str(scratch)},
        ),
        "warm": timed_process(
            ref + [str(work / f"reference-{name}-warm")],
            work,
            work / f"reference-{name}-warm.log",
            {"TMPDIR": str(scratch)},
        ),
    }
    result = {"files": files, "dataset": str(dataset), "project": {}, "reference": {}}
    for run in ("cold", "warm"):
        p, r = project[run]["seconds"], reference_runs[run]["seconds"]
        result["project"][run] = {"seconds": p, "files_per_second": files / p}
        result["reference"][run] = {"seconds": r, "files_per_second": files / r}
        result[f"{run}_speedup"] = show(f"{name} {run} (s)", p, r, "s")
    seconds = reference_runs["cold_writing_music21_cache"]["seconds"]
    result["reference"]["cold_writing_music21_cache"] = {
        "seconds": seconds,
        "files_per_second": files / seconds,
    }
    return result, project_dir
