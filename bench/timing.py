"""Measuring for bench/run.py: a command's wall time and peak memory in its own process, a call's
seconds, the machine, and one printed line per figure with the project's advantage."""

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from melody import artefacts

CHILD_ENV = {}  # environment for every measured process (--threads sets it)


def timed_process(command, cwd, log_path, env=None):
    """Run a command to the end; its wall seconds and the peak resident memory of that process
    (MiB).

    The output goes to log_path; a failure raises with the log's tail.
    """
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CHILD_ENV, **(env or {})},
        )
        _, status, usage = os.wait4(
            process.pid, 0
        )  # this child's own rusage, not all children's together
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = Path(log_path).read_text(errors="replace")[-3000:]
        raise artefacts.UserError(
            f"{' '.join(map(str, command))} failed (exit {process.returncode}):\n{tail}"
        )
    peak_kib = usage.ru_maxrss / (
        1024 if sys.platform == "darwin" else 1
    )  # bytes on macOS, KiB on Linux
    return {"seconds": seconds, "peak_rss_mib": peak_kib / 1024}


def timed(function):
    started = time.perf_counter()
    out = function()
    return out, time.perf_counter() - started


def ratio(numerator, denominator):
    return numerator / denominator if numerator is not None and denominator else None


def show(label, project, reference_value, unit, better="lower"):
    """Print one figure for both and the project's advantage."""
    advantage = (
        ratio(reference_value, project) if better == "lower" else ratio(project, reference_value)
    )
    print(
        f"  {label:<38} project {fmt(project)} {unit:<8} reference {fmt(reference_value)} "
        f"{unit:<8} -> {fmt(advantage)}x",
        flush=True,
    )
    return advantage


def fmt(value, decimals=None):
    if value is None:
        return "-"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return (
        f"{value:,.0f}"
        if abs(value) >= 100
        else f"{value:.3g}"
        if abs(value) < 1
        else f"{value:.1f}"
    )


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = (
            next(
                int(line.split()[1])
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
            / 2**20
        )
    except OSError:
        memory = None
    import music21

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "music21": music21.__version__,
        "platform": platform.platform(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),  # other work on the machine slows every figure
    }
