"""evaluate.py: its metrics on hand-made cases with known answers, and the script end to end."""

import dataclasses
import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY_SONGS, train_tiny, write_metadata
from test_twosample import walk

import config
import evaluate
import train
from melody import artefacts, checkpoints, controls
from melody.artefacts import UserError
from melody.encoding import DELIMITER, HOLD
from melody.evaluation.features import (
    FEATURES,
    compare_features,
    feature_histograms,
    melody_features,
)
from melody.evaluation.memorisation import VerbatimIndex, longest_run, memorisation, suffix_array
from melody.evaluation.prediction import (
    last_note_tonic,
    ngram_baselines,
    plan_nats,
    prediction_metrics,
    witten_bell_log_probs,
)
from melody.models import MelodyLSTM, load, song_log_probs


def tiny_songs(path):
    return artefacts.load_songs(path / "file_dataset", path / "mapping.json")


def save_checkpoint(path, model, mapping, val_songs):
    """A checkpoint in train.py's format around a model built here."""
    artefacts.save_torch(
        path,
        {
            "format": checkpoints.LEGACY_FORMAT,
            "hyperparameters": model.hyperparameters(),
            "model_state": model.state_dict(),
            "vocabulary": sorted(mapping, key=mapping.get),
            "sequence_length": 4,
            "time_step": 0.25,
            "epoch": 1,
            "val_loss": 1.0,
            "val_accuracy": 0.5,
            "val_songs": val_songs,
            "seed": 1,
            "dataset": "tiny",
        },
    )


def run_evaluate(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


# ----------------------------------------------------------------------------- prediction


def test_uniform_model_scores_log_vocabulary_size(tiny_artefacts):
    songs, mapping = tiny_songs(tiny_artefacts)
    model = MelodyLSTM(len(mapping), [8], 0.0)
    with torch.no_grad():  # zero head: equal logits for every symbol, whatever the input
        model.head.weight.zero_()
        model.head.bias.zero_()
    result = prediction_metrics(
        song_log_probs(model, songs, mapping[DELIMITER]), songs, mapping[DELIMITER], mapping[HOLD]
    )
    size = len(mapping)
    assert result["nll"] == pytest.approx(math.log(size))
    assert result["perplexity"] == pytest.approx(size)
    assert result["onset_nll"] == pytest.approx(math.log(size))
    assert result["hold_nll"] == pytest.approx(math.log(size))
    assert result["steps"] == sum(len(s) + 1 for s in songs)


A, B, END = 0, 1, 2  # a three-symbol vocabulary; END is the delimiter


def witten_bell(train_songs, eval_songs, max_order):
    return {
        order: torch.cat(lp).exp().numpy()
        for order, lp in witten_bell_log_probs(train_songs, eval_songs, 3, END, max_order)
    }


def test_witten_bell_matches_hand_computed_values():
    # Training song "a b a a": targets a b a a / after the contexts / a b a a (padded with /).
    probs = witten_bell([[A, B, A, A]], [[A, B]], max_order=3)  # targets a, b, / of the song "a b"
    # unigram: counts a 3, b 1, / 1 (5 steps, 3 types) over the uniform 1/3: (c + 3/3) / (5 + 3)
    assert probs[1][0] == pytest.approx([4 / 8, 2 / 8, 2 / 8])
    p2_b_after_a = (1 + 3 * 2 / 8) / (3 + 3)  # a was followed by b, a and / (c 3, 3 types)
    assert probs[2][:, [A, B, END]].diagonal() == pytest.approx(
        [(1 + 1 * 4 / 8) / 2, p2_b_after_a, (0 + 2 / 8) / 2]
    )
    # order 3: each context (/ /), (/ a), (a b) was seen once in training, followed by a, b and a
    assert probs[3][:, [A, B, END]].diagonal() == pytest.approx(
        [(1 + 0.75) / 2, (1 + p2_b_after_a) / 2, 0.125 / 2]
    )


def test_witten_bell_is_a_distribution_at_every_context():
    train_songs = [[A, B, A, A, B, B], [B, A, B]]
    eval_songs = [[B, B, B, B, A], [A], [B, A, B]]  # contexts seen and never seen in training
    for order, probs in witten_bell(train_songs, eval_songs, max_order=5).items():
        assert probs.shape == (sum(len(s) + 1 for s in eval_songs), 3)
        assert probs.sum(1) == pytest.approx(np.ones(len(probs))), order
        assert (probs > 0).all()


def test_ngram_order_is_chosen_on_training_songs_alone():
    rng = random.Random(0)
    motif = [A, A, B, A, B, B, A]  # long repeated contexts: higher orders predict better
    train_songs = [motif * rng.randint(2, 4) for _ in range(20)]
    results = [
        ngram_baselines(train_songs, test, 3, END, B, max_order=6, seed=3)
        for test in ([motif * 3], [[B] * 9])
    ]
    assert results[0]["chosen"] == results[1]["chosen"] > 2
    assert [r["validation_nll"] for r in results[0]["orders"].values()] == [
        r["validation_nll"] for r in results[1]["orders"].values()
    ]
    assert results[0]["subset"] == (18, 2)


# ----------------------------------------------------------------------------- generated vs real


def test_melody_features_on_a_hand_made_melody():
    melody = "_ r 60 _ _ _ 62 _ 71 _ _ _ _ _ _ _ r _ 69 _ _ _ 61 _".split()
    features = melody_features(melody, bar_steps=16)
    assert features["pitch class"] == [0, 2, 11, 9, 1]
    assert features["interval (semitones)"] == [2, 9, -2, -8]
    assert features["note length (steps)"] == [4, 2, 8, 4, 2]
    assert features["pitch range (semitones)"] == 11
    assert features["onsets per bar"] == pytest.approx(5 * 16 / 24)
    assert features["rest share"] == pytest.approx(4 / 24)  # the leading hold is a rest too
    assert features["in-scale share"] == pytest.approx(4 / 5)  # 61 (C#) is outside C major
    assert features["length (steps)"] == 24
    assert features["ends on tonic"] == 0.0  # ends on C#
    assert melody_features("64 _ 57 _".split(), 16)["ends on tonic"] == 1.0  # A
    empty = melody_features([], 16)
    assert (
        empty["length (steps)"] == 0
        and empty["pitch range (semitones)"] is None
        and empty["pitch class"] == []
    )


def test_songs_compared_with_themselves_overlap_fully():
    songs = [s.split() for s in TINY_SONGS]
    histograms = feature_histograms(songs, 16)
    assert compare_features(histograms, feature_histograms(songs, 16)) == {
        name: pytest.approx(1.0) for name in FEATURES
    }
    other = feature_histograms(
        ["48 _ _ _ _ _ _ _ r _ 49 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _".split()], 16
    )
    overlaps = compare_features(histograms, other)
    assert overlaps["ends on tonic"] == 0.0  # the three songs end on C, C and A; this one on C#
    assert all(0 <= v < 1 for v in overlaps.values())


# ----------------------------------------------------------------------------- memorisation


def test_suffix_array_sorts_the_suffixes():
    data = bytes(random.Random(1).choice([0, 1, 2, 7]) for _ in range(500))
    assert suffix_array(data).tolist() == sorted(range(len(data)), key=lambda i: data[i:])


def test_copied_melody_is_flagged_as_memorised():
    training = [[3, 4, 5, 4, 3, 6, 6, 6], [5, 5, 4, 3, 3, 7, 5, 4, 3, 4]]
    index = VerbatimIndex(training, separator=0)
    copied = memorisation([training[1]], index, window=4)
    assert (
        copied["window_share"] == 1.0 and copied["melody_share"] == 1.0 and copied["runs"] == [10]
    )
    novel = memorisation([[7, 7, 6, 5, 7, 7, 6, 5]], index, window=4)
    assert novel["window_share"] == 0.0 and novel["melody_share"] == 0.0 and novel["runs"] == [1]
    # a run inside new material; runs do not cross from one training song into the next
    assert longest_run(bytes([7, 7, 4, 3, 6, 6, 6, 7, 7]), index) == 5
    assert longest_run(bytes([6, 6, 6, 5, 5, 4]), index) == 3


# ----------------------------------------------------------------------------- the script


def test_script_end_to_end_on_tiny_trained_models(tiny_artefacts, tmp_path):
    dataset, mapping_path = tiny_artefacts / "file_dataset", tiny_artefacts / "mapping.json"
    models = []  # an LSTM and a Transformer, compared in one report
    for arch, settings in [
        ("lstm", {"units": [16]}),
        ("transformer", {"layers": 1, "width": 16, "heads": 2, "context": 8}),
    ]:
        model_path = tmp_path / f"{arch}.pth"
        train.train(
            dataset=dataset,
            mapping=mapping_path,
            model_path=model_path,
            state_path=tmp_path / "state.pth",
            log_path=tmp_path / "log.csv",
            plot_path=tmp_path / "curve.png",
            epochs=3,
            arch=arch,
            seed=5,
            device="cpu",
            **settings,
        )
        models.append(model_path)

    # the held-out NLL is model.score's, as in training: the checkpoint's val_loss
    checkpoint = artefacts.load_torch(models[0])
    songs, mapping = tiny_songs(tiny_artefacts)
    held_out = [songs[i] for i in checkpoint["val_songs"]]
    rows = artefacts.load_metadata(tiny_artefacts / "song_metadata.csv")
    plans = [controls.Plan.from_row(rows[i]) for i in checkpoint["val_songs"]]
    fields = controls.checkpoint_fields(checkpoint, plans, held_out)
    model = load(checkpoint)
    log_probs = song_log_probs(model, held_out, mapping[DELIMITER], controls=fields)
    assert prediction_metrics(log_probs, held_out, mapping[DELIMITER], mapping[HOLD])[
        "nll"
    ] == pytest.approx(checkpoint["val_loss"], rel=1e-5)

    out = tmp_path / "evaluation"
    flags = [
        "--model",
        models[0],
        "--model",
        models[1],
        "--dataset",
        dataset,
        "--mapping",
        mapping_path,
        "--num-melodies",
        6,
        "--max-order",
        4,
        "--seed",
        7,
        "--out",
        out,
    ]
    result = run_evaluate(*flags)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "NLL" in result.stdout and "wrote" in result.stdout
    report = (out / "report.md").read_text()
    for model_path in models:
        assert str(model_path) in report
    assert "| lstm " in report and "| transformer " in report  # each model's architecture
    for section in (
        "## 1. Held-out prediction",
        "## 2. Generated vs real melodies",
        "## 3. Memorisation",
        "## 5. Can a classifier tell?",
    ):
        assert section in report
    assert "Skipped: 1 melodies in the smallest set" in report  # one held-out song: too few
    results = json.loads((out / "results.json").read_text())
    assert sorted(results) == [
        "features", "form", "form_held", "form_letters", "memorisation", "models", "ngram_orders",
        "prediction", "surprisal",
    ]  # fmt: skip
    assert [r["model"] for r in results["prediction"]][:2] == [str(m) for m in models]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["features.png", "form.png", "ngram_orders.png", "surprisal_1.png"]
    assert all(png.startswith(b"\x89PNG") for png in (p.read_bytes() for p in out.glob("*.png")))
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))

    # same inputs and seed, same report
    evaluate.main([str(f) for f in flags[:-1]] + [str(tmp_path / "again")])
    assert (tmp_path / "again" / "report.md").read_text() == report.replace(
        str(out), str(tmp_path / "again")
    )

    # some sections only: the report has those, and says how to run them again
    some = tmp_path / "some"
    evaluate.main([str(f) for f in flags[:-1]] + [str(some), "--sections", "memorisation", "form"])
    report = (some / "report.md").read_text()
    assert "## 3. Memorisation" in report and "## 1. Held-out prediction" not in report
    assert "--sections memorisation form" in report
    assert sorted(json.loads((some / "results.json").read_text())) == [
        "form", "form_held", "form_letters", "memorisation", "models"
    ]  # fmt: skip


def test_missing_model_is_one_line(tiny_artefacts, tmp_path):
    result = run_evaluate(
        "--model",
        tmp_path / "nothing.pth",
        "--dataset",
        tiny_artefacts / "file_dataset",
        "--mapping",
        tiny_artefacts / "mapping.json",
        "--out",
        tmp_path / "out",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nothing.pth'} not found: run train.py first (or pass the right path)"
    ]
    assert not (tmp_path / "out").exists()


def test_bad_inputs_are_refused_clearly(tiny_artefacts, tmp_path):
    songs, mapping = tiny_songs(tiny_artefacts)
    model = MelodyLSTM(len(mapping), [8], 0.0)
    args = [
        "--dataset",
        str(tiny_artefacts / "file_dataset"),
        "--mapping",
        str(tiny_artefacts / "mapping.json"),
        "--out",
        str(tmp_path / "out"),
    ]

    def refuse(checkpoint_paths, match):
        with pytest.raises(UserError, match=match):
            evaluate.main([a for p in checkpoint_paths for a in ("--model", str(p))] + args)

    good = tmp_path / "good.pth"
    save_checkpoint(good, model, mapping, [2])
    other_vocabulary = tmp_path / "other_vocabulary.pth"
    save_checkpoint(
        other_vocabulary,
        MelodyLSTM(len(mapping) + 1, [8], 0.0),
        {**mapping, "90": len(mapping)},
        [2],
    )
    refuse([other_vocabulary], "another vocabulary than the mapping's")
    out_of_range = tmp_path / "out_of_range.pth"
    save_checkpoint(out_of_range, model, mapping, [7])
    refuse([out_of_range], "do not fit the dataset's 3 songs")
    other_split = tmp_path / "other_split.pth"
    save_checkpoint(other_split, model, mapping, [0])
    refuse([good, other_split], "hold out different songs")
    refuse([good, good], "given twice")
    with pytest.raises(UserError, match="--num-melodies"):
        evaluate.main(["--model", str(good), "--num-melodies", "0"] + args)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- classifier test and
# listening kit, on a synthetic dataset large enough to cross-validate on


@pytest.fixture(scope="module")
def walks(tmp_path_factory):
    """60 random-walk songs as preprocess.py would write them, and a small model trained on them."""
    path = tmp_path_factory.mktemp("walks")
    rng = random.Random(0)
    songs = [
        " ".join(walk(rng, [-2, -1, 0, 1, 2], [2, 4])[: rng.randint(24, 60)]) for _ in range(60)
    ]
    text = " ".join(" ".join([song] + [DELIMITER] * 4) for song in songs)
    vocabulary = sorted(set(text.split()) | {"r"})
    (path / "file_dataset").write_text(text)
    (path / "mapping.json").write_text(json.dumps({s: i for i, s in enumerate(vocabulary)}))
    # 2/4, a pickup of an eighth in every other
    write_metadata(
        path / "song_metadata.csv", songs, "2/4", pickups=[2 * (i % 2) for i in range(60)]
    )
    train_tiny(path, epochs=3, units=[16], seed=5)
    return path


def walk_flags(path, out):
    return [
        "--model", path / "model.pth", "--dataset", path / "file_dataset", "--mapping",
        path / "mapping.json", "--seed", 3, "--out", out,
    ]  # fmt: skip


def test_report_has_the_classifier_test_and_its_results_file(walks, tmp_path):
    out = tmp_path / "evaluation"
    flags = walk_flags(walks, out) + ["--num-melodies", 12, "--max-order", 3, "--cv-folds", 3]
    result = run_evaluate(*flags, "--bootstrap", 50)
    assert result.returncode == 0, result.stderr
    assert "classifier AUC, generated by" in result.stdout
    report = (out / "report.md").read_text()
    assert "## 5. Can a classifier tell?" in report and "--cv-folds 3 --bootstrap 50" in report
    results = json.loads((out / "results.json").read_text())
    aucs = results["classifier_auc"]
    model = str(walks / "model.pth")
    assert [(r["melodies"], r["classifier"]) for r in aucs] == [
        (set_, classifier)
        for set_ in ("training songs (calibration)", f"generated by {model}")
        for classifier in ("logistic regression", "random forest")
    ]
    assert all(r["melodies per set"] == 6 and r["low"] <= r["auc"] <= r["high"] for r in aucs)
    for r in aucs:  # the report's table and the results file show the same figures
        assert f"| {r['melodies']} | {r['classifier']} | 6 | {r['auc']:.3f} |" in report
    assert len(results["classifier_importance"]) == len(results["classifier_features"]) == 5
    assert all(r["melodies"] == f"generated by {model}" for r in results["classifier_features"])

    # section 4: melodies asked for 2/4 (the only meter with 5 held-out songs) and for major
    assert "## 4. Meter, mode and endings" in report and (out / "onsets.png").is_file()
    meters = {(r["meter"], r["melodies"]): r for r in results["meters"]}
    assert set(meters) == {("2/4", "held-out songs"), ("2/4", f"asked of {model}")}
    asked = meters[("2/4", f"asked of {model}")]
    assert asked["count"] == 12 and asked["on a barline"] == 1.0  # planned endings
    assert 0 <= asked["onset overlap"] <= 1
    assert [(r["mode"], r["melodies"]) for r in results["modes"]] == [
        ("major", "held-out songs"),
        ("major", f"asked of {model}"),
    ]
    plans = {r["melodies"]: r for r in results["plans"]}
    many = f"{model}, {config.END_CANDIDATES} candidates"
    assert list(plans) == ["held-out songs", f"{model}, 1 candidate", many]
    held_out = plans["held-out songs"]  # with their own plans
    assert held_out["close on their final"] == 1.0 and held_out["ambitus off by (mean)"] == 0


def test_listening_kit_is_reproducible_and_scored(walks, tmp_path):
    for name in ("one", "two"):
        result = run_evaluate(*walk_flags(walks, tmp_path / name), "--listening-test", 3)
        assert result.returncode == 0, result.stderr
    one, two = tmp_path / "one" / "listening", tmp_path / "two" / "listening"
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert [str(f) for f in files] == ["key.csv"] + [
        f"listener/{name}"
        for name in [f"0{i}.{ext}" for i in range(1, 7) for ext in ("mid", "musicxml", "svg")]
        + ["README.txt", "answers.csv"]
    ]
    for f in files:  # same seed: the same bytes, MIDI and MusicXML included
        assert (one / f).read_bytes() == (two / f).read_bytes(), f
    assert (one / "listener" / "01.mid").read_bytes().startswith(b"MThd")
    assert b"<score-partwise" in (one / "listener" / "01.musicxml").read_bytes()

    key = (one / "key.csv").read_text().splitlines()[1:]
    truth = {int(row.split(",")[0]): row.split(",")[1] for row in key}
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "number,guess,confidence,comment\n"
        + "".join(f"{n},{'real' if n < 5 else ''},," + "\n" for n in truth)
    )
    correct = sum(truth[n] == "real" for n in range(1, 5))
    result = run_evaluate("--score-listening", one, sheet)
    assert result.returncode == 0, result.stderr
    assert f"| {sheet} | 4 | {correct} | {correct / 4:.1%} |" in result.stdout

    result = run_evaluate(*walk_flags(walks, tmp_path / "one"), "--listening-test", 3)
    assert result.returncode == 1 and "already holds a listening test" in result.stderr
    result = run_evaluate(*walk_flags(walks, tmp_path / "many"), "--listening-test", 7)
    assert result.stderr.strip() == (
        "error: --listening-test 7 asks for more real melodies than the 6 held-out songs"
    )


def test_plan_nats_is_a_smoothed_factorised_prior():
    seen = controls.Plan("3/4", "major", 4, 8)
    # a model not told finals: two factors, each with two training counts of one outcome,
    # (2 + 1) / (2 + 1 + 1)
    two = plan_nats([seen, seen], [seen], told_final=False)
    assert two == pytest.approx(-2 * math.log(3 / 4))
    # an unseen meter-mode-pickup gets 1 / 4; bars given a meter never seen count over all
    # meters: 8 bars, 3 / 4
    unseen = controls.Plan("6/8", "minor", 2, 8)
    expected = -math.log(1 / 4) - math.log(3 / 4)
    assert plan_nats([seen, seen], [unseen], told_final=False) == pytest.approx(expected)
    # told the final: a third factor, P(final | mode), here (2 + 1) / (2 + 1 + 1) again
    closing = dataclasses.replace(seen, final=0)
    three = plan_nats([closing, closing], [closing])
    assert three == pytest.approx(-3 * math.log(3 / 4))


def test_last_note_tonic_reads_each_songs_last_onset():
    vocabulary = ["/", "60", "62", "69", "_", "r"]
    songs = [[1, 4, 2, 4, 1, 4, 5], [3, 4, 2, 4, 4]]  # 60 _ 62 _ 60 _ r, and 69 _ 62 _ _
    uniform = torch.zeros(8, len(vocabulary))
    peaked = torch.full((6, len(vocabulary)), -30.0)
    peaked[2, 2] = 0.0  # all of its mass on 62 at its last onset
    given, share = last_note_tonic([uniform, peaked], songs, vocabulary)
    assert given == pytest.approx((2 / 3 + 0) / 2, abs=1e-6)  # C and A of three notes; then none
    assert share == 0.5  # the first ends on C, the second on D
