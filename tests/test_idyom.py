"""Bits per note (melody/evaluation/surprisal.py) on hand-made probabilities, the surprisal plot,
bench/idyom.py's folds, charges, short-term model (idyom_stm.py) and smoke run (the run needs
../shared/deutschl)."""

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
import idyom_stm  # noqa: E402

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


def smoke_run(tmp_path, *flags):
    deutschl = shared_dataset()
    shared_dataset("kinder")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "idyom.py"), "--smoke", "--sets", "kinder"]
        + ["--arch", "lstm", "--deutschl", str(deutschl), "--work", str(tmp_path / "work")]
        + ["--out", str(tmp_path), *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads((tmp_path / "idyom-quick.json").read_text())


def test_smoke_run_writes_every_figure_reuse_scores_the_same_models_under_other_stms(tmp_path):
    _, results = smoke_run(tmp_path)
    for setting in ("within", "with_deutschl"):
        figures = results["sets"]["kinder"][setting]
        assert figures["folds"] == 2 and figures["songs"] == 12
        assert 0 < figures["pitch_bits"] < figures["all_bits"]
        low, high = figures["pitch_bits_95"]
        assert low <= figures["pitch_bits"] <= high
        both = figures["ltm+stm"]
        low, high = both["pitch_bits_95"]
        assert 0 < low <= both["pitch_bits"] <= high
    folds = json.loads((tmp_path / "idyom-quick.folds.json").read_text())
    assert sorted(len(fold) for fold in folds["kinder"]) == [6, 6]
    table = (tmp_path / "idyom-quick.md").read_text()
    assert "| kinder | within | lstm |" in table and "ltm+stm" in table
    printed, again = smoke_run(tmp_path, "--reuse", "--stm-variants", "idyom-default")
    assert printed.count(": reused") == 5  # the pretrained model, 2 folds x 2 settings
    for setting in ("within", "with_deutschl"):
        first, second = results["sets"]["kinder"][setting], again["sets"]["kinder"][setting]
        assert second["pitch_bits"] == first["pitch_bits"]
        assert second["ltm+stm"] == first["ltm+stm"]
        assert second["ltm+stm:idyom-default"] != first["ltm+stm"]
        assert second["run"]["stm_variants"]["idyom-default"]["escape"] == "x"
    assert "`ltm+stm:idyom-default` | pitch, escape X" in (tmp_path / "idyom-quick.md").read_text()
    assert again["sets"]["kinder"]["within"]["run"]["stm"] == idyom_stm.STM().settings()
    flags = ["--stm-escape", "X", "--stm-viewpoints", "pitch", "--reuse", "--settings", "within"]
    _, third = smoke_run(tmp_path, *flags)  # the STM flags: IDyOM's default, as the variant
    figures, second = third["sets"]["kinder"]["within"], again["sets"]["kinder"]["within"]
    assert figures["run"]["stm"] == {
        "escape": "x",
        "viewpoints": ["pitch"],
        "combine": config.IDYOM_STM_COMBINE,
        "viewpoint_bias": config.IDYOM_VIEWPOINT_BIAS,
        "ltm_stm_bias": config.IDYOM_LTM_STM_BIAS,
    }
    assert figures["ltm+stm"]["pitch_bits"] != second["ltm+stm"]["pitch_bits"]
    same = second["ltm+stm:idyom-default"]["pitch_bits"]
    assert figures["ltm+stm"]["pitch_bits"] == pytest.approx(same, rel=1e-12)


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


def test_the_short_term_model_learns_the_song_as_it_goes():
    a, b, c = 0, 1, 2
    model = idyom_stm.PPM(3)
    b_after_a = []
    for symbol in [a, b, a, b, a]:
        probs = model.predict()
        assert probs.sum() == pytest.approx(1.0) and (probs > 0).all()
        if model.history and model.history[-1] == a:
            b_after_a.append(probs[b])
        model.learn(symbol)
    assert b_after_a[0] < b_after_a[1]  # the second A is followed by B more surely
    probs = model.predict()  # after A B A B A
    assert probs[b] > 0.5 and probs[c] > 0  # never seen, C still has the escape's mass


def test_a_flat_model_before_the_first_note_and_one_row_per_note():
    probs = idyom_stm.stm_probs([3, 3, 1], 5)
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs[0], np.full(5, 0.2))
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert probs[2, 3] > probs[1, 3] > 0.2


def test_the_interval_model_expects_a_motif_repeated_a_step_higher():
    midi = [60, 62, 64, 65, 67]
    notes = [0, 1, 2, 1, 2, 3]  # C D E, then D E F: the same steps a tone higher
    by_interval = idyom_stm.interval_stm_probs(notes, midi)
    by_pitch = idyom_stm.stm_probs(notes, len(midi))
    np.testing.assert_allclose(by_interval.sum(1), 1.0)
    assert by_interval[5, 3] > by_pitch[5, 3]  # F, new as a pitch, is the step up again


def test_every_escape_method_leaves_room_for_the_unseen_and_each_differs():
    notes = [0, 1, 0, 1, 2, 0, 1, 1]
    rows = {e: idyom_stm.stm_probs(notes, 4, escape=e) for e in idyom_stm.ESCAPES}
    for probs in rows.values():
        np.testing.assert_allclose(probs.sum(1), 1.0)
        assert (probs[:, 3] > 0).all()  # never seen, never impossible
    assert len({probs.tobytes() for probs in rows.values()}) == len(rows)


def test_equal_entropies_combine_to_the_renormalised_geometric_mean():
    p = np.array([0.5, 0.3, 0.2])
    q = p[[1, 2, 0]]  # the same entropy
    combined = idyom_stm.combine(np.stack([p, q]), bias=7)
    mean = np.sqrt(p * q)
    np.testing.assert_allclose(combined, mean / mean.sum())


def test_a_confident_model_outweighs_a_flat_one():
    sure = np.array([0.9, 0.05, 0.05])
    flat = np.full(3, 1 / 3)
    combined = idyom_stm.combine(np.stack([sure, flat]), bias=7)
    assert combined[0] > 0.89 and combined.sum() == pytest.approx(1.0)
    assert idyom_stm.combine(np.stack([sure, flat]), bias=0)[0] < combined[0]


def test_the_long_and_short_term_models_cost_less_than_the_long_one_on_a_repeated_song():
    ltm = np.log(np.full((8, 4), 0.25))  # a long-term model that knows nothing
    notes = [0, 1, 2, 3, 0, 1, 2, 3]
    bits = idyom_stm.ltm_stm_bits(ltm, notes, [60, 62, 64, 65])
    assert bits[0] == pytest.approx(2.0)  # the first note: nothing to go on
    assert bits[5:].sum() < bits[1:4].sum() / 2  # the repeat is cheaper than the first time


def test_onset_distributions_are_the_pitch_bits_own():
    song = [1, 3, 2, 4, 1]
    probs = torch.softmax(torch.randn(6, 5), 1)
    pitches = surprisal.pitch_indices(VOCABULARY)
    among, notes = surprisal.onset_pitch_log_probs(probs.log(), song, pitches, 0)
    np.testing.assert_allclose(among.exp().sum(1), 1.0)
    bits = surprisal.songs_bits([probs.log()], [song], VOCABULARY, 0)[0]["pitch_bits"]
    np.testing.assert_allclose(-among[range(3), notes] / math.log(2), bits)
