"""listening.py: the cut that matches lengths, the kit's layout, and scoring filled-in sheets."""

import csv

import pytest

from melody.artefacts import UserError
from melody.evaluation import listening


def test_cut_ends_on_a_whole_note():
    real = "60 _ _ 62 _ r _ 64 _ _ _".split()
    assert listening.cut(real, 20) == real  # shorter than the length: whole
    assert listening.cut(real, 7) == real[:7]  # 64 starts at step 7: nothing clipped
    assert listening.cut(real, 5) == real[:5]  # the rest at step 5 would be clipped
    assert listening.cut(real, 4) == real[:3]  # 62 sounds on at step 4: cut before it
    assert listening.cut(real, 2) == real[:3]  # the first note lasts past the cut: kept whole


def write_text_kit(folder, seed=0):
    """A kit of 3 + 3 melodies whose files hold their symbols, so that their origin can be read."""

    def save(symbols, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(symbols))

    real = {
        "song a": "60 _ _ _ 62 _ _ _ 64 _ _ _".split(),
        "song b": "67 _ 65 _".split(),
        "song c": "72 _ _ _ _ _ _ _".split(),
    }
    generated = {"g0": "60 _ _".split(), "g1": "55 _ _ _ _ _ _ _ _ _".split(), "g2": "57 _".split()}
    listening.write_kit(folder, real, generated, save, seed)


def read_key(folder):
    with open(folder / listening.KEY) as file:
        return list(csv.DictReader(file))


def test_kit_layout_lengths_and_key(tmp_path):
    write_text_kit(tmp_path / "kit")
    listener = tmp_path / "kit" / listening.LISTENER
    names = sorted(p.name for p in listener.iterdir())
    assert names == [f"0{i}.{ext}" for i in range(1, 7) for ext in ("mid", "musicxml", "svg")] + [
        "README.txt",
        listening.SHEET,
    ]
    assert not any("key" in name for name in names)
    assert sorted(p.name for p in (tmp_path / "kit").iterdir()) == [listening.KEY, "listener"]
    key = read_key(tmp_path / "kit")
    assert [row["number"] for row in key] == [str(i) for i in range(1, 7)]
    assert sorted(row["source"] for row in key) == ["generated"] * 3 + ["real"] * 3
    steps = {row["melody"]: int(row["steps"]) for row in key}
    # paired by length rank: b (4) with g2 (2), c (8) with g0 (3), a (12) with g1 (10)
    assert steps == {"song b": 2, "song c": 8, "song a": 8, "g0": 3, "g1": 10, "g2": 2}
    for row in key:  # each file holds what the key says
        text = (listener / f"0{row['number']}.mid").read_text().split()
        assert len(text) == int(row["steps"])
    with open(listener / listening.SHEET) as file:
        sheet = list(csv.DictReader(file))
    assert [r["number"] for r in sheet] == [str(i) for i in range(1, 7)]
    assert list(sheet[0]) == ["number", "guess", "confidence", "comment"]
    assert not any(r["guess"] for r in sheet)


def test_kit_order_follows_the_seed_and_an_old_kit_is_kept(tmp_path):
    write_text_kit(tmp_path / "a", seed=1)
    write_text_kit(tmp_path / "b", seed=1)
    write_text_kit(tmp_path / "c", seed=2)
    assert read_key(tmp_path / "a") == read_key(tmp_path / "b") != read_key(tmp_path / "c")
    with pytest.raises(UserError, match="already holds a listening test"):
        write_text_kit(tmp_path / "a")


def fill(path, guesses):
    rows = ["number,guess,confidence,comment"]
    rows += [f"{number},{guess},3," for number, guess in guesses.items()]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_scores_of_filled_in_sheets(tmp_path):
    write_text_kit(tmp_path / "kit")
    truth = {int(row["number"]): row["source"] for row in read_key(tmp_path / "kit")}
    # listener 1: all six right; listener 2: five answered, two right (both on real melodies),
    # every generated melody taken for real
    right = fill(tmp_path / "one.csv", {n: s.upper() for n, s in truth.items()})
    answers = {n: "real" for n in truth}
    answers[next(n for n, s in truth.items() if s == "real")] = ""
    mixed = fill(tmp_path / "two.csv", answers)
    scores = listening.score(tmp_path / "kit", [right, mixed]).set_index("sheet")
    assert scores.loc[str(right)].to_dict() == {
        "answered": 6, "correct": 6, "accuracy": 1.0, "p-value": pytest.approx(2 / 64),
        "generated taken for real": 0.0,
    }  # fmt: skip
    assert scores.loc[str(mixed), ["answered", "correct"]].tolist() == [5, 2]
    assert scores.loc[str(mixed), "p-value"] == pytest.approx(1.0)  # 2 of 5: as by chance
    assert scores.loc[str(mixed), "generated taken for real"] == 1.0
    pooled = scores.loc["all sheets"]
    assert (pooled["answered"], pooled["correct"]) == (11, 8)
    # exact two-sided binomial: P(X >= 8) + P(X <= 3) for X ~ Bin(11, 1/2) = 2 * 232 / 2048
    assert pooled["p-value"] == pytest.approx(464 / 2048)


def test_bad_sheets_are_refused_clearly(tmp_path):
    write_text_kit(tmp_path / "kit")
    for guesses, match in [
        ({1: "maybe"}, "must be real or generated, not 'maybe'"),
        ({9: "real"}, "melody 9 is not in"),
    ]:
        with pytest.raises(UserError, match=match):
            listening.score(tmp_path / "kit", [fill(tmp_path / "bad.csv", guesses)])
    (tmp_path / "nonumber.csv").write_text("guess\nreal\n")
    with pytest.raises(UserError, match="lacks the column"):
        listening.score(tmp_path / "kit", [tmp_path / "nonumber.csv"])
    with pytest.raises(UserError, match="not found"):
        listening.score(tmp_path / "kit", [tmp_path / "missing.csv"])
