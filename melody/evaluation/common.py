"""What the report's sections share: the Section each one returns, markdown tables, number formats,
the overlap of two distributions and saving a figure."""

import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np

from melody import artefacts, controls

# C and A: every song is moved to C major or A minor
TONIC_PITCH_CLASSES = set(controls.TONICS.values())


@dataclass
class Section:
    """One analysis's part of the report.

    tables: {name: DataFrame}, in results.json under these names; lines: its lines of report.md,
    starting with a blank one; headline: {model path: its fragment of that model's line on the
    console}; summary: its own lines on the console, placed by report.print_summary.
    """

    tables: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)
    headline: dict = field(default_factory=dict)
    summary: list = field(default_factory=list)


def overlap(p, q):
    """Overlapping area of two distributions on the same bins: 1 = identical, 0 = disjoint."""
    return float(np.minimum(p, q).sum())


def markdown(frame, formats=None):
    """A DataFrame as the lines of a markdown table. formats: {column: format string or function};
    a missing value (None, NaN) is "-"."""
    formats = formats or {}

    def cell(column, value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        form = formats.get(column, "{}")
        return form(value) if callable(form) else form.format(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
    return lines + [
        "| " + " | ".join(cell(c, v) for c, v in zip(frame.columns, row)) + " |"
        for row in frame.itertuples(index=False)
    ]


def three(value):
    return f"{value:.3f}"


def percent(share):
    return "n/a" if math.isnan(share) else f"{share:.1%}"


def save_figure(fig, path):
    with artefacts.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
