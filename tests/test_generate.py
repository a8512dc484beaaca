"""melodygenerator.py: sampling with the training context, its settings, and the files it writes."""

import json
import math
import os
import subprocess
import sys
import zipfile

import mido
import pytest
import torch
from conftest import ROOT, TINY_SONGS
from music21 import converter

import config
from melody import artefacts, checkpoints, sampling
from melody.artefacts import UserError
from melody.encoding import DELIMITER, encode_events, events_from_stream
from melody.generation import MelodyGenerator
from melody.models import MelodyLSTM
from melody.outputs import parse_key

VOCABULARY = sorted(set(" ".join(TINY_SONGS).split()) | {DELIMITER})


def save_checkpoint(path, model, vocabulary=VOCABULARY):
    artefacts.save_torch(
        path,
        {
            "format": checkpoints.LEGACY_FORMAT,
            "hyperparameters": model.hyperparameters(),
            "model_state": model.state_dict(),
            "vocabulary": vocabulary,
            "sequence_length": 4,
            "time_step": 0.25,
            "epoch": 1,
            "val_loss": 0.0,
            "val_accuracy": 0.0,
            "val_songs": [0],
            "seed": 0,
            "dataset": "tiny",
        },
    )


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A small LSTM overfitted on TINY_SONGS ([/] + song -> song + [/]), so its greedy choices are
    songs.
    """
    torch.manual_seed(0)
    model = MelodyLSTM(len(VOCABULARY), [32], dropout=0.0)
    index = {s: i for i, s in enumerate(VOCABULARY)}
    rows = [
        [index[DELIMITER]] + [index[s] for s in song.split()] + [index[DELIMITER]]
        for song in TINY_SONGS
    ]
    data = torch.tensor(rows)  # the three songs have the same length
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        logits = model(data[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, len(VOCABULARY)), data[:, 1:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5  # each step is certain except the first note of a song
    path = tmp_path_factory.mktemp("model") / "model.pth"
    save_checkpoint(path, model.eval())
    return path


@pytest.fixture(scope="module")
def mg(model_path):
    return MelodyGenerator(model_path, mapping_path=None)


def greedy_by_full_rerun(mg, seed, num_steps):
    """Reference greedy decoding without carried state: re-run [/] + the whole melody for every
    step.
    """
    melody = list(seed)
    for _ in range(num_steps):
        x = torch.tensor([[mg.index[s] for s in [DELIMITER] + melody]])
        with torch.no_grad():
            symbol = mg.vocabulary[mg.model(x)[0, -1].argmax().item()]
        if symbol == DELIMITER:
            break
        melody.append(symbol)
    return melody


def midi_notes(path):
    """(MIDI number, start, end) in quarter lengths for every note in a MIDI file, read with
    mido.
    """
    midi = mido.MidiFile(path)
    notes, started = [], {}
    for track in midi.tracks:
        ticks = 0
        for message in track:
            ticks += message.time
            if message.type == "note_on" and message.velocity > 0:
                started[message.note] = ticks
            elif message.type in ("note_off", "note_on"):
                notes.append(
                    (
                        message.note,
                        started.pop(message.note) / midi.ticks_per_beat,
                        ticks / midi.ticks_per_beat,
                    )
                )
    return sorted(notes, key=lambda n: n[1])


def expected_notes(symbols, step=0.25):
    """(MIDI number, start, end) in quarter lengths, read straight off the symbols."""
    notes = []
    for i, symbol in enumerate(symbols):
        if symbol.isdigit():
            end = i + 1
            while end < len(symbols) and symbols[end] == "_":
                end += 1
            notes.append((int(symbol), i * step, end * step))
    return notes


def read_back(path):
    return encode_events(events_from_stream(converter.parse(path)))


def same_up_to_final_silence(back, symbols):
    """MIDI has no end for a final rest, so music21 fills the last bar: silence may be added at the
    end.
    """
    padding = back[len(symbols) :]
    ends_with_rest = [s for s in symbols if s != "_"][-1] == "r"
    silent = (
        not padding
        or (padding[0] == "r" or ends_with_rest and padding[0] == "_")
        and set(padding[1:]) <= {"_"}
    )
    return back[: len(symbols)] == symbols and silent


# -------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    "symbols",
    [
        # a note held over the bar line, a rest
        "60 _ 62 _ 64 _ _ _ r _ 67 _ _ _ _ _ _ _ _ _ _ _ 65 64",
        "r _ 57 _ _ 60 r _ _ _ 72 _ _ _ _ _ 71 _ r",  # starts and ends with a rest
    ],
)
def test_midi_round_trip_with_mido_and_music21(mg, tmp_path, symbols):
    symbols = symbols.split()
    path = mg.save_melody(symbols, file_name=tmp_path / "song.mid", bpm=90, time_signature="3/4")
    assert path == tmp_path / "song.mid" and os.listdir(tmp_path) == [
        "song.mid"
    ]  # no temporary file left
    assert midi_notes(path) == expected_notes(symbols)
    meta = {m.type: m for track in mido.MidiFile(path).tracks for m in track if m.is_meta}
    assert round(mido.tempo2bpm(meta["set_tempo"].tempo)) == 90
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (3, 4)
    assert same_up_to_final_silence(
        read_back(path), symbols
    )  # notes, durations, rests through music21


def test_leading_hold_and_hold_after_rest_are_harmless(mg, tmp_path):
    path = mg.save_melody("_ _ 60 _ r _ _ 62", file_name=tmp_path / "odd.mid")
    assert midi_notes(path) == [(60, 0.5, 1.0), (62, 1.75, 2.0)]
    assert same_up_to_final_silence(read_back(path), "r _ 60 _ r _ _ 62".split())


@pytest.mark.parametrize(
    "name, fmt, written",
    [
        ("song.musicxml", "midi", "song.musicxml"),  # the extension decides
        ("song.xml", "midi", "song.xml"),
        ("song.mxl", "midi", "song.mxl"),  # compressed
        ("song.mid", "musicxml", "song.musicxml"),  # format="musicxml" renames a MIDI name
    ],
)
def test_musicxml_by_extension_or_format(mg, tmp_path, name, fmt, written):
    symbols = "64 _ _ _ 62 _ 60 _ r _ _ _ 67 _ _ _ _ _ _ _".split()
    path = mg.save_melody(symbols, format=fmt, file_name=tmp_path / name)
    assert path == tmp_path / written and os.listdir(tmp_path) == [written]
    assert zipfile.is_zipfile(path) == written.endswith(".mxl")
    assert read_back(path) == symbols


def test_key_transposes_by_the_inverse_of_preprocessing(mg, tmp_path):
    symbols = "60 _ 64 _ r _ 67 _".split()
    for key, shift, signature in [
        ("G", 7, "G"),
        ("G major", 7, "G"),
        ("e", -5, "Em"),
        ("Bb", 10, "Bb"),
        ("F# minor", -3, "F#m"),
        (None, 0, "C"),  # C major (or A minor) is written out too
    ]:
        path = mg.save_melody(symbols, file_name=tmp_path / "k.mid", key=key)
        assert midi_notes(path) == [
            (n + shift, start, end) for n, start, end in expected_notes(symbols)
        ], key
        signatures = [
            m.key for t in mido.MidiFile(path).tracks for m in t if m.type == "key_signature"
        ]
        assert signatures == ([signature] if signature else []), key


def test_bad_save_settings_are_clear(mg, tmp_path):
    for kwargs, words in [
        ({"key": "H"}, "key 'H'"),
        ({"bpm": 0}, "bpm"),
        ({"time_signature": "4/x"}, "time signature"),
        ({"format": "wav"}, "format"),
        ({"step_duration": -1}, "step_duration"),
    ]:
        with pytest.raises(ValueError, match=words):
            mg.save_melody(["60"], file_name=tmp_path / "x.mid", **kwargs)
    assert os.listdir(tmp_path) == []


def test_parse_key_names():
    assert [
        (k.tonic.name, k.mode) for k in map(parse_key, ["C", "a", "Eb", "c# minor", "B- major"])
    ] == [("C", "major"), ("A", "minor"), ("E-", "major"), ("C#", "minor"), ("B-", "major")]


# ----------------------------------------------------------------------------------------- sampling


def test_top_k_1_is_greedy_with_carried_state(mg):
    seed = TINY_SONGS[1].split()[:6]
    expected = greedy_by_full_rerun(mg, seed, 40)
    assert mg.generate_melody(" ".join(seed), 40, top_k=1, rng=1) == expected
    assert (
        mg.generate_melody(seed, 40, temperature=3.0, top_k=1, rng=2) == expected
    )  # a list seed too
    assert expected == TINY_SONGS[1].split()  # the model learnt the song, and stopped at its `/`


def test_empty_seed_starts_a_song(mg):
    assert " ".join(mg.generate_melody("", 100, top_k=1)) in TINY_SONGS
    assert " ".join(mg.generate_melody([], 100, top_p=0.01)) in TINY_SONGS


def test_same_rng_same_melody(mg):
    a = mg.generate_melodies("", 5, 30, temperature=2.0, rng=7)
    assert (
        mg.generate_melodies("", 5, 30, temperature=2.0, rng=torch.Generator().manual_seed(7)) == a
    )
    torch.manual_seed(3)
    b = mg.generate_melodies("", 5, 30, temperature=2.0)
    torch.manual_seed(3)
    assert (
        mg.generate_melodies("", 5, 30, temperature=2.0) == b
    )  # rng=None follows torch.manual_seed
    assert len({tuple(m) for m in a + b}) > 1


def test_batch_and_single_agree(mg):
    seed = "57 _ 60"
    for rng in range(3):
        assert mg.generate_melodies(seed, 1, 30, temperature=1.5, top_p=0.9, rng=rng) == [
            mg.generate_melody(seed, 30, temperature=1.5, top_p=0.9, rng=rng)
        ]
    greedy = greedy_by_full_rerun(mg, seed.split(), 30)
    assert mg.generate_melodies(seed, 4, 30, top_k=1) == [greedy] * 4


def test_each_row_of_a_batch_follows_its_own_state_and_stops_at_its_own_end(mg):
    melodies = mg.generate_melodies("", 8, 40, temperature=3.0, top_k=2, rng=0)
    assert len({tuple(m) for m in melodies}) > 1 and DELIMITER not in sum(melodies, [])
    for melody in melodies:
        x = torch.tensor([[mg.index[s] for s in [DELIMITER] + melody]])
        with torch.no_grad():
            top2 = mg.model(x)[0].topk(2).indices.tolist()
        for symbol, allowed in zip(melody, top2):
            assert mg.index[symbol] in allowed
        if len(melody) < 40:
            assert mg.index[DELIMITER] in top2[len(melody)]  # it ended by sampling `/`


def test_num_steps_bounds_a_melody_and_zero_returns_the_seed(mg):
    assert mg.generate_melody("60 _", 0) == ["60", "_"]
    assert len(mg.generate_melody("60 _", 5, temperature=2.0, rng=0)) <= 7
    assert mg.generate_melody("60 _ 62 _", 5, top_k=1) == TINY_SONGS[0].split()[:9]


def test_stops_at_delimiter_or_runs_to_num_steps(model_path, tmp_path):
    model = MelodyLSTM.from_checkpoint(artefacts.load_torch(model_path))
    for bias, length in [
        (1e4, 2),
        (-1e4, 2 + 50),
    ]:  # `/` certain: nothing generated; impossible: all 50 steps
        with torch.no_grad():
            model.head.bias[VOCABULARY.index(DELIMITER)] = bias
        save_checkpoint(tmp_path / "m.pth", model)
        assert (
            len(MelodyGenerator(tmp_path / "m.pth", None).generate_melody("60 _", 50, rng=0))
            == length
        )


def test_max_sequence_length_bounds_the_context_at_per_step_cost(mg, monkeypatch):
    """Every call is one step or a rebuild from `/` + the last N symbols; the context stays in
    N..2N.
    """
    calls = []
    read, step = mg.model.read, mg.model.step

    def recording_read(x, controls=None):
        calls.append((x.clone(), True))
        return read(x, controls)

    def recording_step(symbols, controls, state):
        calls.append((symbols[:, None].clone(), False))
        return step(symbols, controls, state)

    monkeypatch.setattr(mg.model, "read", recording_read)
    monkeypatch.setattr(mg.model, "step", recording_step)
    n, seed = 8, "60 _ 62 _ 64 _ 65 _ 67 _ _ _".split()
    melody = mg.generate_melody(seed, 60, n, temperature=1.5, rng=0)
    context, length = None, len(seed)
    for i, (x, fresh) in enumerate(calls):
        length += i > 0  # every call after the first comes after one more symbol was sampled
        if fresh:
            assert x[0, 0] == mg.index[DELIMITER] and x.shape[1] == 1 + min(n, length)
            assert x[0, 1:].tolist() == [mg.index[s] for s in melody[:length][-n:]]
            context = x.shape[1] - 1
            if i:
                assert length > n  # rebuilt only once the melody outgrew N
        else:
            assert x.shape == (1, 1) and x[0, 0] == mg.index[melody[length - 1]]
            context += 1
        assert context <= 2 * n and context >= min(n, length)
    assert sum(fresh for _, fresh in calls) >= 1 + (len(melody) - len(seed) - 2 * n) // n
    calls.clear()
    mg.generate_melody(
        seed, 60, temperature=1.5, rng=0
    )  # None: the whole melody, one step per call
    assert [x.shape[1] for x, _ in calls] == [1 + len(seed)] + [1] * (len(calls) - 1)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"temperature": 0}, "temperature must be a positive number"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"pitch_temperature": 0}, "pitch_temperature must be a positive number"),
        ({"pitch_temperature": math.nan}, "pitch_temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 1.5}, "top_k"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_sequence_length": 0}, "max_sequence_length"),
        ({"num_steps": -1}, "num_steps"),
        ({"n": 0}, "n must be"),
    ],
)
def test_bad_sampling_settings_are_clear(mg, kwargs, words):
    arguments = {"seed": "60", "n": 2, "num_steps": 5, **kwargs}
    with pytest.raises(ValueError, match=words):
        mg.generate_melodies(**arguments)


def test_pitch_temperature_reshapes_the_pitches_and_keeps_when_a_note_starts():
    # hold, rest, two pitches: 0.5 to hold or rest, 0.5 to start a note
    probs = torch.tensor([[0.4, 0.1, 0.3, 0.2]])
    pitches = torch.tensor([False, False, True, True])
    reshaped = sampling.reshape_pitches(probs.log(), 0.5, pitches).exp()
    squared = torch.tensor([0.09, 0.04]) / 0.13 * 0.5  # p^(1/0.5), renormalised to their 0.5
    assert torch.allclose(reshaped, torch.cat([probs[0, :2], squared])[None])
    assert torch.allclose(sampling.reshape_pitches(probs.log(), 1.0, pitches).exp(), probs)
    # a row with no pitch left (a hold forced) stays as it was
    forced = torch.tensor([[0.0, float("-inf"), float("-inf"), float("-inf")]])
    assert torch.equal(sampling.reshape_pitches(forced, 0.5, pitches), forced)


def test_the_pitch_temperature_changes_the_pitches_not_the_rhythm(mg):
    free = mg.generate_melodies("", 6, 40, rng=3, pitch_temperature=1.0)
    sure = mg.generate_melodies("", 6, 40, rng=3, pitch_temperature=0.05)
    assert free != sure
    assert mg.generate_melodies("", 6, 40, rng=3) == mg.generate_melodies(
        "", 6, 40, rng=3, pitch_temperature=config.PITCH_TEMPERATURE
    )


def test_seed_symbols_outside_the_vocabulary_are_named(mg):
    with pytest.raises(ValueError) as error:
        mg.generate_melody("60 _ 99 x 60", 5)
    message = str(error.value)
    assert (
        "99 x" in message
        and "valid symbols: " + " ".join(s for s in VOCABULARY if s != DELIMITER) in message
    )
    with pytest.raises(ValueError, match="seed symbols not in the model's vocabulary: /"):
        mg.generate_melody("60 / 62", 5)


# ---------------------------------------------------------------------------------------- artefacts


def test_mapping_must_match_the_checkpoint(model_path, tmp_path):
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({s: i for i, s in enumerate(VOCABULARY)}))
    MelodyGenerator(model_path, mapping)  # agrees
    MelodyGenerator(
        model_path, tmp_path / "absent.json"
    )  # absent: the checkpoint's vocabulary is enough
    mapping.write_text(json.dumps({s: i for i, s in enumerate(VOCABULARY + ["84"])}))
    model_time = os.stat(model_path).st_mtime
    os.utime(mapping, (model_time + 60, model_time + 60))
    with pytest.raises(UserError, match="the model is stale.*re-run train.py"):
        MelodyGenerator(model_path, mapping)
    os.utime(mapping, (model_time - 60, model_time - 60))
    with pytest.raises(UserError, match="the mapping is stale.*re-run preprocess.py and train.py"):
        MelodyGenerator(model_path, mapping)


def run_script(*args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "melodygenerator.py"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_script_end_to_end_with_a_trained_model(tiny_artefacts):
    from train import train

    train(
        dataset=tiny_artefacts / "file_dataset",
        mapping=tiny_artefacts / "mapping.json",
        model_path=tiny_artefacts / "model.pth",
        state_path=tiny_artefacts / "train_state.pth",
        log_path=tiny_artefacts / "log.csv",
        plot_path=tiny_artefacts / "curve.png",
        epochs=2,
        units=[16],
        batch_size=2,
        seq_len=8,
        device="cpu",
    )
    args = [
        "--seed",
        "60 _ 62 _",
        "--steps",
        "40",
        "--num-melodies",
        "2",
        "--random-seed",
        "5",
        "--key",
        "G",
        "--bpm",
        "100",
        "--output",
        "out/melody.mid",
    ]
    result = run_script(
        *args, cwd=tiny_artefacts
    )  # model.pth and mapping.json by their default names
    assert result.returncode == 0, result.stderr
    melodies = [
        line.split(": ", 1)[1].split()
        for line in result.stdout.splitlines()
        if line.startswith("melody ")
    ]
    assert len(melodies) == 2 and all(m[:4] == ["60", "_", "62", "_"] for m in melodies)
    for i, melody in enumerate(melodies, start=1):
        path = tiny_artefacts / "out" / f"melody_{i}.mid"
        assert f"wrote {path.relative_to(tiny_artefacts)}" in result.stdout
        assert [n[0] for n in midi_notes(path)] == [n + 7 for n, _, _ in expected_notes(melody)]

    bad = run_script("--seed", "60 q", cwd=tiny_artefacts)
    assert (
        bad.returncode == 1
        and bad.stderr.count("\n") == 1
        and "q" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_script_without_a_usable_model_says_so_in_one_line(tmp_path):
    missing = run_script("--steps", "5", cwd=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [
        "error: model.pth not found, nor the pretrained model "
        "pretrained/deutschl-transformer/model.pth: train one (python preprocess.py && python "
        "train.py), or pass --model (model_path=) a model.pth"
    ]
    (tmp_path / "model.pth").write_bytes(os.urandom(2000))
    corrupt = run_script("--steps", "5", cwd=tmp_path)
    assert corrupt.returncode == 1 and "Traceback" not in corrupt.stderr
    assert (
        len(corrupt.stderr.strip().splitlines()) == 1
        and "model.pth is not a readable" in corrupt.stderr
    )
    assert not list(tmp_path.glob("*.mid"))


def test_one_step_function_matches_the_full_forward_pass():
    torch.manual_seed(0)
    model = MelodyLSTM(12, [32, 16], dropout=0.2).eval()
    x = torch.randint(0, 12, (3, 15))
    with torch.no_grad():
        expected = model(x)
        logits, state = model.read(x[:, :1])
        steps = [logits]
        for t in range(1, x.shape[1]):
            logits, state = model.step(x[:, t], None, state)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, 1), expected, atol=1e-5)
