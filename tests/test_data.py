"""A folder per dataset and per run (data/NAME/ -> runs/NAME/), the collection as a style control,
and the pretrained model that generation falls back to."""

import json
import os
import random
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

import config
import evaluate
import train
from melody import artefacts
from melody.controls import ControlSpace, Plan
from melody.encoding import DELIMITER
from melodygenerator import MelodyGenerator

TINY = {"units": [16], "batch_size": 8, "seq_len": 32, "dropout": 0.0, "device": "cpu"}
# Two collections that differ in everything the features see: "up" climbs in 2/4 major in
# eighths, "down" falls in 3/4 minor in quarters.
COLLECTIONS = {"up": ("2/4", "major", 8, 2), "down": ("3/4", "minor", 12, 4)}


def write_two_collections(folder, songs_each=12, seed=0):
    """data/NAME/'s files, as `preprocess.py --name NAME` writes them, for songs of COLLECTIONS."""
    rng = random.Random(seed)
    songs, rows = [], []
    for i in range(2 * songs_each):
        collection = list(COLLECTIONS)[i % 2]
        meter, mode, bar, note = COLLECTIONS[collection]
        bars, tonic = rng.randint(3, 4), 60 if mode == "major" else 69
        # "up" from the G below: the default seed's symbols (55, 60) are in the vocabulary
        steps = [-5, 0, 2, 4, 5, 7, 9, 12] if collection == "up" else [12, 11, 8, 7, 5, 3, 2, 0]
        pitches = [tonic + p for p in steps]
        symbols = []
        while len(symbols) < bars * bar - note:
            symbols += [str(pitches[len(symbols) // note % 8])] + ["_"] * (note - 1)
        symbols = symbols[: bars * bar - note] + [str(tonic)] + ["_"] * (note - 1)
        songs.append(" ".join(symbols))
        rows.append(
            {
                "index": i,
                "source": f"{collection}/{i}.krn",
                "collection": collection,
                "meter": meter,
                "meters": meter,
                "pickup": 0,
                "mode": mode,
                "key": f"C {mode}",
                "steps": len(symbols),
                "bars": bars,
            }
        )
    text = " ".join(song + " " + " ".join([DELIMITER] * 4) for song in songs)
    vocabulary = sorted(set(text.split()))
    artefacts.write_text(folder / config.SINGLE_FILE_DATASET, text)
    artefacts.write_json(folder / config.MAPPING_PATH, {s: i for i, s in enumerate(vocabulary)})
    artefacts.write_metadata(folder / config.SONG_METADATA, rows)
    return rows


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A repo-like folder with data/two/ and the run of `train.py --data two` in runs/two/."""
    root = tmp_path_factory.mktemp("repo")
    write_two_collections(root / config.DATA_DIR / "two")
    here = os.getcwd()
    os.chdir(root)
    try:
        # enough epochs for each style's melodies to look like their collection
        train.train(data="two", epochs=30, lr=0.01, seed=1, **TINY)
    finally:
        os.chdir(here)
    return root


def test_train_data_name_reads_data_and_writes_its_own_run_folder(two, monkeypatch):
    monkeypatch.chdir(two)
    run = two / config.RUNS_DIR / "two"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [config.MODEL_PATH, config.TRAIN_STATE_PATH, config.TRAINING_LOG, config.TRAINING_PLOT]
    )
    assert not (two / config.MODEL_PATH).exists()  # the root's default flow is left alone
    checkpoint = artefacts.load_torch(run / config.MODEL_PATH)
    assert (checkpoint["dataset"], checkpoint["mapping"], checkpoint["metadata"]) == (
        "data/two/file_dataset",
        "data/two/mapping.json",
        "data/two/song_metadata.csv",
    )
    assert checkpoint["controls"]["styles"] == ["down", "up"]
    sizes = checkpoint["hyperparameters"]["control_sizes"]
    assert sizes[4] == 2 and checkpoint["controls"]["shapes"] == ["form"]  # style, 5th field

    # --resume goes on in the run's folder
    copy = two / "copy"
    shutil.copytree(run, copy / config.RUNS_DIR / "two")
    shutil.copytree(two / config.DATA_DIR, copy / config.DATA_DIR)
    monkeypatch.chdir(copy)
    summary = train.train(data="two", epochs=31, resume=True)
    assert (summary["epochs"], summary["epochs_run"]) == (31, 1)
    log = (copy / config.RUNS_DIR / "two" / config.TRAINING_LOG).read_text().splitlines()
    assert [int(line.split(",")[0]) for line in log[1:]] == list(range(1, 32))

    with pytest.raises(artefacts.UserError, match=r"--data nothing: .*datasets here: two\)"):
        train.train(data="nothing", epochs=1, **TINY)


def test_script_takes_data_and_out_dir(two, tmp_path, monkeypatch):
    monkeypatch.chdir(two)
    out = tmp_path / "elsewhere"
    flags = ["--epochs", "1", "--units", "8", "--seq-len", "32", "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", ["train.py", "--data", "two", "--out-dir", str(out), *flags])
    train.main()
    assert (out / config.MODEL_PATH).is_file() and (out / config.TRAINING_LOG).is_file()
    monkeypatch.setattr(sys, "argv", ["train.py", "--data", "nothing"])
    with pytest.raises(artefacts.UserError, match="preprocess.py --dataset PATH --name nothing"):
        train.main()


def test_generator_finds_the_models_own_mapping_not_the_roots(two, monkeypatch):
    monkeypatch.chdir(two)
    # a root mapping.json of another dataset: not this model's, so not checked against it
    artefacts.write_json(two / config.MAPPING_PATH, {"/": 0, "_": 1, "99": 2})
    try:
        mg = MelodyGenerator(f"{config.RUNS_DIR}/two/model.pth")
        with pytest.raises(artefacts.UserError, match="does not match"):
            MelodyGenerator(f"{config.RUNS_DIR}/two/model.pth", config.MAPPING_PATH)
    finally:
        (two / config.MAPPING_PATH).unlink()
    assert mg.styles == ["down", "up"]


def test_style_is_kept_and_draws_the_rest_of_the_plan_from_its_songs(two):
    mg = MelodyGenerator(two / config.RUNS_DIR / "two" / "model.pth", mapping_path=None)
    for style, (meter, mode, bar, _) in COLLECTIONS.items():
        melodies = mg.generate_melodies("", 8, 100, rng=0, style=style)
        for melody in melodies:
            assert (melody.style, melody.meter, melody.mode) == (style, meter, mode)
            assert len(melody) == melody.bars * bar
    one = mg.generate_melody("", 100, rng=0, style="up")
    assert one.style == "up" and one == mg.generate_melodies("", 1, 100, rng=0, style="up")[0]
    drawn = mg.generate_melodies("", 16, 100, rng=1)
    assert {m.style for m in drawn} == {"up", "down"}  # unset: drawn with the plan
    assert all(m.meter == COLLECTIONS[m.style][0] for m in drawn)
    # a meter no song of the style has: the style is kept, the meter too
    crossed = mg.generate_melody("", 100, rng=0, style="up", meter="3/4")
    assert (crossed.style, crossed.meter) == ("up", "3/4")
    with pytest.raises(ValueError, match=r"^style 'jazz': this model knows down, up$"):
        mg.generate_melody("", 10, style="jazz")


def test_style_fields_and_a_model_of_one_collection():
    plans = [Plan("2/4", "major", 0, 4, "a"), Plan("3/4", "minor", 0, 4, "b")]
    space = ControlSpace.from_songs(plans)
    assert space.sizes()[-1] == 2 and space.fields(plans[1], 0, 1).tolist()[0][-1] == 1
    assert ControlSpace.from_dict(space.as_dict()).styles == ["a", "b"]
    single = ControlSpace.from_songs([plans[0]])
    assert single.styles == [] and len(single.sizes()) == 4 and single.plans[0].style is None
    with pytest.raises(ValueError, match="trained on one collection and takes no style"):
        single.choose(random.Random(0), style="a")


def test_a_model_of_one_collection_refuses_style_in_one_line(tiny_artefacts, tmp_path):
    train.train(
        dataset=tiny_artefacts / "file_dataset",
        mapping=tiny_artefacts / "mapping.json",
        out_dir=tmp_path / "run",
        epochs=1,
        **TINY,
    )
    # an old checkpoint: saved before styles existed
    checkpoint = artefacts.load_torch(tmp_path / "run" / "model.pth")
    del checkpoint["controls"]["styles"]
    checkpoint["controls"]["plans"] = [p[:4] for p in checkpoint["controls"]["plans"]]
    for key in ("mapping", "metadata"):
        del checkpoint[key]
    artefacts.save_torch(tmp_path / "old.pth", checkpoint)
    mg = MelodyGenerator(tmp_path / "old.pth", mapping_path=None)
    assert mg.styles == [] and mg.generate_melody("", 50, rng=0).style is None
    result = subprocess.run(
        [sys.executable, str(ROOT / "melodygenerator.py"), "--model", str(tmp_path / "old.pth")]
        + ["--style", "erk", "--steps", "5", "--seed", ""],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "takes no style" in result.stderr and not list(tmp_path.glob("*.mid"))


def test_evaluate_finds_the_data_and_reports_the_style_matrix(two, monkeypatch):
    monkeypatch.chdir(two)
    model = f"{config.RUNS_DIR}/two/model.pth"
    evaluate.main(
        ["--model", model, "--num-melodies", "24", "--max-order", "2", "--bootstrap", "5"]
        + ["--cv-folds", "2"]
    )
    out = two / config.RUNS_DIR / "two" / config.EVALUATION_DIR  # beside the model
    report = (out / "report.md").read_text()
    assert "--dataset data/two/file_dataset --mapping data/two/mapping.json" in report
    assert "## 6. Styles" in report and (out / "styles.png").is_file()
    results = json.loads((out / "results.json").read_text())
    assert [r["collection"] for r in results["style_references"]] == ["down", "up"]
    assert all(r["real songs"] == "all (12)" for r in results["style_references"])
    matrix = {r["style asked"]: r for r in results["styles"]}
    assert sorted(matrix) == ["down", "up"]
    for row in matrix.values():
        assert 0 <= row["down"] <= 1 and 0 <= row["up"] <= 1
        assert row["closest"] == max(("down", "up"), key=row.get)
    # the collections differ in meter, note length and direction: even this tiny model's
    # melodies of each style are closest to their own collection
    assert all(row["closest"] == style for style, row in matrix.items())


def test_pretrained_model_is_the_fallback_and_says_so(two, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(artefacts.UserError, match="nor the pretrained model"):
        MelodyGenerator()
    pretrained = tmp_path / config.PRETRAINED_MODEL
    pretrained.parent.mkdir(parents=True)
    shutil.copy(two / config.RUNS_DIR / "two" / config.MODEL_PATH, pretrained)
    mg = MelodyGenerator()
    assert capsys.readouterr().err.strip() == (
        f"no model.pth here: using the pretrained model {config.PRETRAINED_MODEL} "
        "(train.py makes your own)"
    )
    assert mg.styles == ["down", "up"]
    # a model.pth of one's own comes first; a path given is never replaced
    shutil.copy(pretrained, tmp_path / config.MODEL_PATH)
    MelodyGenerator()
    assert capsys.readouterr().err == ""
    with pytest.raises(artefacts.UserError, match="other.pth not found"):
        MelodyGenerator("other.pth")
    (tmp_path / config.MODEL_PATH).unlink()

    result = subprocess.run(
        [sys.executable, str(ROOT / "melodygenerator.py"), "--random-seed", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"no model.pth here: using the pretrained model {config.PRETRAINED_MODEL} "
        "(train.py makes your own)"
    ]
    assert (tmp_path / "generated.mid").is_file() and "style " in result.stdout


# ----------------------------------------------------------------------------- primers

KERN_PRIMER = """**kern
*clefG2
*k[f#]
*G:
*M2/4
8d
=1
8g
8a
8b
8g
=2
4a
4d
=3
8g
8a
4b
=4
2g
==
*-
"""
ABC_PRIMERS = """X:1
T:first
M:3/4
L:1/8
K:Am
A2 c2 e2 | a4 e2 | c2 B2 A2 | A6 |]

X:2
T:second
M:2/4
L:1/8
K:C
C2 E2 | G4 |]
"""


def write_midi(path, chords, meter=(2, 4)):
    """A one-track MIDI file of quarter notes; each entry of chords: the pitches starting there."""
    import mido

    track = mido.MidiTrack(
        [mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1])]
    )
    for pitches in chords:
        track += [mido.Message("note_on", note=p, velocity=64, time=0) for p in pitches]
        track += [
            mido.Message("note_off", note=p, velocity=0, time=480 if i == 0 else 0)
            for i, p in enumerate(pitches)
        ]
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)


@pytest.fixture(scope="module")
def mg_two(two):
    return MelodyGenerator(two / config.RUNS_DIR / "two" / config.MODEL_PATH, mapping_path=None)


def test_primer_continues_a_kern_file_in_its_meter_pickup_and_key(mg_two, tmp_path):
    primer = tmp_path / "g.krn"
    primer.write_text(KERN_PRIMER)
    melody = mg_two.generate_melody("", 40, rng=0, primer=primer, primer_bars=2)
    # the pickup (an eighth) and two bars of 2/4, moved from G major to C major
    opening = "55 _ 60 _ 62 _ 64 _ 60 _ 62 _ _ _ 55 _ _ _".split()
    assert melody[:18] == opening and melody.opening == 18 and len(melody) > 18
    assert (melody.meter, melody.mode, melody.pickup, melody.key) == ("2/4", "major", 2, "G major")
    path = mg_two.save_melody(melody, file_name=tmp_path / "out.mid")
    import mido

    onsets = [m.note for m in mido.MidiFile(path) if m.type == "note_on" and m.velocity]
    assert onsets[:7] == [62, 67, 69, 71, 67, 69, 62]  # back in G, as the primer was written
    with pytest.raises(ValueError, match="has meter 2/4, not 3/4: leave meter unset"):
        mg_two.generate_melody("", 10, primer=primer, meter="3/4")
    with pytest.raises(ValueError, match="a seed or a primer, not both"):
        mg_two.generate_melody("60 _", 10, primer=primer)


def test_primer_from_abc_midi_and_musicxml(mg_two, tmp_path):
    abc = tmp_path / "tunes.abc"
    abc.write_text(ABC_PRIMERS)
    melody = mg_two.generate_melody("", 30, rng=0, primer=abc, primer_bars=1)  # the first tune
    assert melody[:12] == "69 _ _ _ 72 _ _ _ 76 _ _ _".split()
    assert (melody.meter, melody.mode, melody.key) == ("3/4", "minor", "A minor")

    midi = tmp_path / "c.mid"
    write_midi(midi, [[60], [64], [67], [72], [67], [64]])
    melody = mg_two.generate_melody("", 30, rng=0, primer=midi, primer_bars=2)
    assert melody[:16] == "60 _ _ _ 64 _ _ _ 67 _ _ _ 72 _ _ _".split()
    assert (melody.meter, melody.pickup, melody.key) == ("2/4", 0, "C major")

    from music21 import converter

    musicxml = tmp_path / "g.musicxml"
    converter.parse(KERN_PRIMER, format="humdrum").write("musicxml", fp=musicxml)
    from_xml = mg_two.generate_melody("", 30, rng=0, primer=musicxml, primer_bars=2)
    assert from_xml[:18] == "55 _ 60 _ 62 _ 64 _ 60 _ 62 _ _ _ 55 _ _ _".split()


def test_bad_primers_get_one_clear_line(mg_two, two, tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    write_midi(tmp_path / "chords.mid", [[60, 64], [62], [64, 67], [60]])
    (tmp_path / "tune.txt").write_text("not music")
    cases = {
        "empty.mid": "cannot use it (empty)",
        "chords.mid": "is polyphonic",
        "tune.txt": "cannot use it (unknown suffix",
        "missing.krn": "not found",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            mg_two.generate_melody("", 10, primer=tmp_path / name)
    result = subprocess.run(
        [sys.executable, str(ROOT / "melodygenerator.py"), "--model", "runs/two/model.pth"]
        + ["--primer", str(tmp_path / "chords.mid")],
        cwd=two,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "chords.mid is polyphonic" in result.stderr and "Traceback" not in result.stderr


def test_the_web_app_offers_the_styles_of_a_model_that_has_them(two):
    from fastapi.testclient import TestClient

    from melody import webapp

    model = two / config.RUNS_DIR / "two" / config.MODEL_PATH
    app = webapp.create_app(model, root=model.parent)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        listed = client.get("/api/models").json()["models"][0]["controls"]
        assert {c["name"]: c for c in listed}["style"]["options"] == ["down", "up"]
        made = client.post("/api/generate", json={"style": "up", "steps": 32, "random_seed": 1})
        assert made.status_code == 200 and made.json()["melodies"][0]["style"] == "up"
        refused = client.post("/api/generate", json={"style": "jazz", "steps": 32})
        assert refused.status_code == 422
        assert refused.json()["error"] == "style 'jazz': this model knows down, up"
