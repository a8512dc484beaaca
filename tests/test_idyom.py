"""Bits per note (melody/evaluation/surprisal.py) on hand-made probabilities, the surprisal plot,
and bench/idyom.py's folds, charges and smoke run (the run needs ../shared/deutschl)."""

import argparse
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, shared_dataset

import config
from melody import controls
from melody.evaluation import surprisal

sys.path.insert(0, str(ROOT / "bench"))
import idyom_cv  # noqa: E402

VOCABULARY = ["/", "60", "62", "_", "r"]


def test_pitch_bits_renormalise_over_pitches_and_all_steps_count():
    # the song C _ D r C, then `/`; each row is the model's distribution at that step
    song = [1, 3, 2, 4, 1]
    probs = torch.tensor(
        [
            [0.1, 0.4, 0.1, 0.3, 0.1],  # C: 0.4 of the pitches' 0.5
            [0.1, 0.1, 0.1, 0.6, 0.1],  # hold
            [0.0, 0.25, 0.25, 0.25, 0.25],  # D: half of the pitches' mass
            [0.1, 0.1, 0.1, 0.1, 0.6],  # rest
            [0.2, 0.2, 0.6, 0.0, 0.0],  # C: 0.2 of 0.8
            [0.5, 0.1, 0.1, 0.2, 0.1],  # `/`
        ]
    )
    result = surprisal.songs_bits([probs.log()], [song], VOCABULARY, 0)[0]
    assert result["notes"] == 3 and result["steps"] == 6
    np.testing.assert_allclose(result["pitch_bits"], [-math.log2(0.8), 1.0, 2.0], rtol=1e-6)
    step_nats = -sum(math.log(p) for p in [0.4, 0.6, 0.25, 0.6, 0.2, 0.5])
    assert result["step_nats"] == pytest.approx(step_nats, rel=1e-6)


def test_a_song_without_notes_has_no_pitch_bits():
    probs = torch.full((3, 5), 0.2)
    result = surprisal.songs_bits([probs.log()], [[4, 3]], VOCABULARY, 0)[0]
    assert result["notes"] == 0 and len(result["pitch_bits"]) == 0


def test_surprisal_plot_draws_the_score_above_the_bits(tmp_path):
    symbols = ["60", "_", "62", "_", "64", "_", "_", "_"]
    plan = controls.Plan("2/4", "major")
    surprisal.plot_song(tmp_path / "s.png", symbols, np.array([1.0, 2.5, 0.5]), plan, "a song")
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")


def test_folds_are_a_seeded_partition():
    folds = idyom_cv.make_folds(range(23), 10, seed=3)
    assert sorted(i for fold in folds for i in fold) == list(range(23))
    assert {len(fold) for fold in folds} == {2, 3}
    assert folds == idyom_cv.make_folds(range(23), 10, seed=3)
    assert folds != idyom_cv.make_folds(range(23), 10, seed=4)


def test_the_key_and_the_told_plan_are_charged():
    record = {"pitch_bits": 10.0, "step_nats": math.log(2) * 30, "plan_nats": math.log(2) * 2}
    pitch, every = idyom_cv.charged(record, keys=16)
    assert pitch == pytest.approx(14.0) and every == pytest.approx(36.0)


def test_smoke_run_writes_every_figure(tmp_path):
    deutschl = shared_dataset()
    shared_dataset("kinder")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "idyom.py"), "--smoke", "--sets", "kinder"]
        + ["--arch", "lstm", "--deutschl", str(deutschl), "--work", str(tmp_path / "work")]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "idyom-quick.json").read_text())
    for setting in ("within", "with_deutschl"):
        figures = results["sets"]["kinder"][setting]
        assert figures["folds"] == 2 and figures["songs"] == 12
        assert 0 < figures["pitch_bits"] < figures["all_bits"]
        low, high = figures["pitch_bits_95"]
        assert low <= figures["pitch_bits"] <= high
    folds = json.loads((tmp_path / "idyom-quick.folds.json").read_text())
    assert sorted(len(fold) for fold in folds["kinder"]) == [6, 6]
    assert "| kinder | within | lstm |" in (tmp_path / "idyom-quick.md").read_text()


def test_report_section_draws_each_held_out_songs_bits_under_its_score(structured, tmp_path):
    from melody.evaluation import report

    folder, _ = structured
    args = argparse.Namespace(
        dataset=str(folder / "file_dataset"),
        mapping=str(folder / "mapping.json"),
        metadata=None,
        out=str(tmp_path),
        seed=1,
        num_melodies=2,
        device="cpu",
    )
    run = report.Run(args, [str(folder / "model.pth")])
    section = surprisal.section(run)
    table = section.tables["surprisal"]
    drawn = min(config.SURPRISAL_SONGS, len(run.held_out))
    assert list(table["song"]) == run.held_out[:drawn]
    assert (table["pitch bits/note"] > 0).all()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        f"surprisal_{k}.png" for k in range(1, drawn + 1)
    ]
    assert "## Surprisal" in "\n".join(section.lines)
