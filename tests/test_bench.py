"""bench/: the tutorial re-implementation agrees with the project where it should, the shared
scoring is right, and `bench/run.py --quick` runs end to end (no speed assertions: timings here are
noise)."""

import importlib.util
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, shared_dataset

sys.path.insert(0, str(ROOT / "bench"))
import reference  # noqa: E402

from melody import dataset as preprocess  # noqa: E402
from melody.models import MelodyLSTM, score, song_log_probs  # noqa: E402

# Songs without ties, each exercising a step both pipelines must take the same way.
UNTIED_SONGS = {
    # G major declared, a pickup, a dotted rhythm, a rest: transposed down to C major.
    "g_major.krn": (
        "**kern\n*M3/4\n*k[f#]\n*G:\n8d\n=1\n4.g\n8a\n4b\n=2\n4r\n4dd\n4b\n=3\n2.g\n==\n*-\n"
    ),
    # E minor declared: lands in A minor.
    "e_minor.krn": "**kern\n*M4/4\n*k[f#]\n*e:\n=1\n4e\n8f#\n8g\n4a\n4b\n=2\n4cc\n4b\n2e\n==\n*-\n",
    # No key declared: both ask music21's key analysis (F major here).
    "no_key.krn": (
        "**kern\n*M4/4\n=1\n4f\n4a\n4cc\n4a\n=2\n8b-\n8a\n8g\n8e\n2f\n=3\n4c\n4f\n2f\n==\n*-\n"
    ),
}
# C major, a half note G tied over the barline into a quarter.
TIED_SONG = "**kern\n*M4/4\n*C:\n=1\n4c\n4e\n[2g\n=2\n4g]\n4e\n2c\n==\n*-\n"


def write_songs(folder, songs):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in songs.items():
        (folder / name).write_text(text)
    return folder


def project_encodings(dataset, out):
    preprocess.preprocess(
        dataset,
        out / "music_dataset",
        out / "file_dataset",
        out / "mapping.json",
        workers=1,
        use_cache=False,
    )
    return (out / "file_dataset").read_text(), json.loads((out / "mapping.json").read_text())


def reference_encodings(dataset, out):
    reference.preprocess(dataset, out, music21_cache=False)
    return (out / "file_dataset").read_text(), json.loads((out / "mapping.json").read_text())


def test_reference_and_project_encode_untied_songs_alike(tmp_path):
    dataset = write_songs(tmp_path / "songs", UNTIED_SONGS)
    project_text, project_mapping = project_encodings(dataset, tmp_path / "project")
    reference_text, reference_mapping = reference_encodings(dataset, tmp_path / "reference")
    assert project_text == reference_text
    assert project_mapping == reference_mapping
    songs = [song.strip(" /") for song in project_text.split("/ /") if song.strip(" /")]
    assert songs[:2] == [
        "69 _ _ _ 71 _ 72 _ 74 _ _ _ 76 _ _ _ 77 _ _ _ 76 _ _ _ 69 _ _ _ _ _ _ _",  # e_minor.krn
        "55 _ 60 _ _ _ _ _ 62 _ 64 _ _ _ r _ _ _ 67 _ _ _ 64 _ _ _ 60 _ _ _ _ _ _ _ _ _ _ _",
    ]  # g_major.krn


def test_ties_are_where_the_two_differ(tmp_path):
    """The tutorial starts a new onset at every written note; the project holds a tied note with
    `_`.
    """
    dataset = write_songs(tmp_path / "songs", {"tied.krn": TIED_SONG})
    project_text, _ = project_encodings(dataset, tmp_path / "project")
    reference_text, _ = reference_encodings(dataset, tmp_path / "reference")
    assert (
        project_text.split(" /")[0]
        == "60 _ _ _ 64 _ _ _ 67 _ _ _ _ _ _ _ _ _ _ _ 64 _ _ _ 60 _ _ _ _ _ _ _"
    )
    assert (
        reference_text.split(" /")[0]
        == "60 _ _ _ 64 _ _ _ 67 _ _ _ _ _ _ _ 67 _ _ _ 64 _ _ _ 60 _ _ _ _ _ _ _"
    )


def test_reference_and_project_agree_on_real_songs_but_for_ties(tmp_path):
    erk = shared_dataset("erk")
    dataset = tmp_path / "erk"
    dataset.mkdir()
    for path in sorted(erk.glob("*.krn"))[:40]:
        shutil.copyfile(path, dataset / path.name)
    project_text, _ = project_encodings(dataset, tmp_path / "project")
    reference_text, _ = reference_encodings(dataset, tmp_path / "reference")
    project_songs = [s.strip(" /") for s in project_text.split("/ /") if s.strip(" /")]
    reference_songs = [s.strip(" /") for s in reference_text.split("/ /") if s.strip(" /")]
    assert len(project_songs) == len(reference_songs) > 30
    same = sum(p == r for p, r in zip(project_songs, reference_songs))
    assert same >= len(project_songs) - 5, "only songs with ties may differ"
    for p, r in zip(project_songs, reference_songs):
        p, r = p.split(), r.split()
        assert len(p) == len(r)  # a tie changes onsets into holds, never the song's length
        assert all(a == b or (a == "_" and b not in ("_", "r")) for a, b in zip(p, r))


# ---------------------------------------------------------------------------------------------
# One scoring function for both models

SONGS = [[1, 2, 3, 1, 1], [2, 2], [3, 1, 2, 2, 3, 3, 1]]
DELIMITER = 0
VOCAB = 4


def hand_nll(log_prob_rows):
    """Mean of -log p(target) and the accuracy, from one (log-probabilities, target) pair per
    step.
    """
    nll = sum(-float(lp[target]) for lp, target in log_prob_rows) / len(log_prob_rows)
    accuracy = sum(int(lp.argmax()) == target for lp, target in log_prob_rows) / len(log_prob_rows)
    return nll, accuracy


def test_score_of_the_project_model_matches_a_step_by_step_computation():
    torch.manual_seed(0)
    model = MelodyLSTM(VOCAB, [5], dropout=0.0).eval()
    rows = []
    with torch.no_grad():
        for song in SONGS:
            logits, state = model.read(torch.tensor([[DELIMITER]]))
            for symbol, target in zip(song + [None], song + [DELIMITER]):
                rows.append((torch.log_softmax(logits[0], -1), target))
                if symbol is not None:
                    logits, state = model.step(torch.tensor([symbol]), None, state)
    result = score(song_log_probs(model, SONGS, DELIMITER), SONGS, DELIMITER)
    nll, accuracy = hand_nll(rows)
    assert result["steps"] == sum(len(s) + 1 for s in SONGS)
    assert result["nll"] == pytest.approx(nll, abs=1e-5)
    assert result["accuracy"] == pytest.approx(accuracy)


def test_score_of_the_reference_model_matches_a_window_by_window_computation():
    torch.manual_seed(0)
    model = reference.ReferenceLSTM(VOCAB, num_units=5).eval()
    window = 3  # shorter than some songs: the window both slides and is padded with `/`
    rows = []
    with torch.no_grad():
        for song in SONGS:
            padded = [DELIMITER] * window + song
            for t, target in enumerate(song + [DELIMITER]):
                x = torch.eye(VOCAB)[padded[t : t + window]][None]
                rows.append((torch.log_softmax(model(x)[0], -1), target))
    result = score(
        reference.window_log_probs(model, SONGS, DELIMITER, sequence_length=window),
        SONGS,
        DELIMITER,
    )
    nll, accuracy = hand_nll(rows)
    assert result["nll"] == pytest.approx(nll, abs=1e-5)
    assert result["accuracy"] == pytest.approx(accuracy)


def test_both_models_score_a_known_distribution_to_its_closed_form_nll():
    """Zero weights and a fixed output bias predict the same distribution at every step, for
    both.
    """
    probabilities = [0.1, 0.2, 0.3, 0.4]
    targets = [t for song in SONGS for t in song + [DELIMITER]]
    expected = sum(-math.log(probabilities[t]) for t in targets) / len(targets)
    project, ref = MelodyLSTM(VOCAB, [5], dropout=0.0), reference.ReferenceLSTM(VOCAB, num_units=5)
    for model in (project, ref):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.zero_()
            model.head.bias.copy_(torch.tensor(probabilities).log())
    assert score(song_log_probs(project, SONGS, DELIMITER), SONGS, DELIMITER)[
        "nll"
    ] == pytest.approx(expected, abs=1e-6)
    assert score(reference.window_log_probs(ref, SONGS, DELIMITER), SONGS, DELIMITER)[
        "nll"
    ] == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# The reference's generation loop


def test_reference_generation_stops_at_the_delimiter_and_is_reproducible():
    torch.manual_seed(0)
    model = reference.ReferenceLSTM(VOCAB, num_units=5)
    mapping = {"/": 0, "60": 1, "62": 2, "_": 3}
    first = reference.generate_melody(model, mapping, "60 _", 60, rng=1)
    assert first == reference.generate_melody(model, mapping, "60 _", 60, rng=1)
    assert first[:2] == ["60", "_"] and "/" not in first
    batch = reference.generate_melodies(model, mapping, "60 _", 3, 20, rng=1)
    assert len(batch) == 3 and all(
        m[:2] == ["60", "_"] and len(m) <= 22 and "/" not in m for m in batch
    )


# ---------------------------------------------------------------------------------------------
# bench/run.py


def load_run_module():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_end_to_end_and_readme_section(tmp_path):
    root = tmp_path / "deutschl"
    write_songs(root / "erk", {**UNTIED_SONGS, "tied.krn": TIED_SONG})
    out = tmp_path / "results"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--dataset-root",
            str(root),
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    [results_file] = out.glob("*-quick.json")
    results = json.loads(results_file.read_text())
    assert results["quick"] and results["machine"]["cores"] >= 1
    assert results["preprocess"]["erk"]["files"] == 4
    assert results["train"]["val_songs"] == 1 and results["train"]["reference"]["val_loss"] > 0
    # model.pth's recorded validation loss is what the shared scoring gives it.
    assert results["train"]["project"]["model_pth_val_loss_rescored"] == pytest.approx(
        results["train"]["project"]["model_pth_val_loss_recorded"], abs=1e-5
    )
    assert results["generate"]["single"]["project_steps_per_second"] > 0
    for arch in ("lstm", "transformer"):  # section 4: sampling per architecture
        assert results["sampling"][arch]["single"] > 0 and results["sampling"][arch]["batch"] > 0
    assert {row["figure"].split(",")[0] for row in results["sampling_targets"]} == {
        "lstm",
        "transformer",
    }
    assert [row["figure"] for row in results["targets"]] == [
        "preprocess cold, erk",
        "preprocess warm, erk",
        "training peak memory",
        "time to the reference's 0.05-minute NLL",
        "single-melody generation",
    ]
    assert all(isinstance(row["met"], bool) for row in results["targets"])
    assert "| figure | project | reference |" in (out / f"{results_file.stem}.md").read_text()

    # --readme takes the latest full results (a quick one, renamed, stands in) and replaces only its
    # section.
    shutil.copyfile(results_file, out / "2000-01-01.json")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n## Setup\n\nsteps\n\n## Performance\n\nold figures\n\n## Licence\n\nMIT\n"
    )
    load_run_module().update_readme(out, readme)
    text = readme.read_text()
    assert (
        "old figures" not in text
        and "## Setup\n\nsteps\n\n## Performance\n\nThe project against" in text
    )
    assert "Measured by `python bench/run.py --quick" in text
    assert "| training peak memory (whole process) |" in text and text.endswith(
        "\n\n## Licence\n\nMIT\n"
    )
