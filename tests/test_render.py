"""What a person sees and hears: the synthesiser's sound, score pictures (SVG, PNG), the command
line writing several kinds of file at once, and a melody shown in a notebook."""

import io
import os
import re
import subprocess
import sys
import wave
from html import unescape

import mido
import nbformat
import numpy as np
import pytest
from conftest import ROOT
from nbclient import NotebookClient
from PIL import Image

from melody import render
from melody.encoding import symbol_runs
from melody.generation import Melody, MelodyGenerator

RATE = render.SAMPLE_RATE


@pytest.fixture(scope="module")
def trained(structured):
    """A tiny model of songs in 2/4, 3/4 and 6/8, major and minor, with its mapping."""
    return structured[0]


def spectrum_peaks(signal, floor_db=-40):
    """Frequencies (Hz) of the spectrum's local maxima within floor_db of its highest."""
    windowed = signal * np.hanning(len(signal))
    magnitude = np.abs(np.fft.rfft(windowed))
    frequency = np.fft.rfftfreq(len(windowed), 1 / RATE)
    level = 20 * np.log10(magnitude / magnitude.max() + 1e-12)
    inner = (magnitude[1:-1] > magnitude[:-2]) & (magnitude[1:-1] > magnitude[2:])
    return frequency[1:-1][inner & (level[1:-1] > floor_db)]


def rms(signal, start, seconds=0.02):
    piece = signal[round(start * RATE) : round((start + seconds) * RATE)]
    return float(np.sqrt(np.mean(piece**2)))


def test_a_note_sounds_like_a_struck_string():
    # middle C held 4 s (16 steps of a 16th at 60 bpm)
    signal = render.samples(["60"] + ["_"] * 15, bpm=60)
    assert len(signal) == round((4 + render.RELEASE_SECONDS) * RATE)
    peaks = spectrum_peaks(signal[round(0.1 * RATE) : round(0.6 * RATE)])
    f0 = 261.63
    # partials near k * f0 (a little sharp), the 7th muted by the strike point; nothing below f0
    harmonics = sorted({round(p / f0) for p in peaks})
    assert harmonics[:6] == [1, 2, 3, 4, 5, 6] and 7 not in harmonics
    for p in peaks:  # each peak a partial k, sharp by the string's stiffness as a piano's are
        k = round(p / f0)
        assert p == pytest.approx(k * f0 * np.sqrt(1 + render.INHARMONICITY * k**2), abs=3)
    assert peaks.min() == pytest.approx(f0, abs=3)
    # a fast attack with no click, then a steady decay, then silence after the release
    assert abs(signal[0]) < 1e-3 and rms(signal, 0.01) > 0.2
    loudness = [rms(signal, t) for t in (0.05, 0.5, 1, 2, 3)]
    assert loudness == sorted(loudness, reverse=True) and loudness[-1] < loudness[0] / 5
    release_end = rms(signal, 4 + render.RELEASE_SECONDS - 0.01, 0.01)
    assert release_end < rms(signal, 3.98) / 5 and signal[-1] == 0
    assert np.abs(signal).max() == pytest.approx(render.PEAK)


def test_tied_notes_sound_once_rests_are_silent_and_transposition_moves_the_pitch():
    step = render.step_seconds(bpm=60)  # 0.25 s
    held = render.samples("60 _ _ _ _ _ _ _".split(), bpm=60)
    struck_twice = render.samples("60 _ _ _ 60 _ _ _".split(), bpm=60)
    # a held (tied) note goes on decaying at step 4; a new onset strikes again
    assert rms(held, 4 * step, 0.05) < rms(held, 4 * step - 0.05, 0.05)
    assert rms(struck_twice, 4 * step, 0.05) > 1.5 * rms(struck_twice, 4 * step - 0.05, 0.05)
    rest = render.samples("60 _ r _ _ _ 64 _".split(), bpm=60)
    assert rms(rest, 2 * step + render.RELEASE_SECONDS, 0.5 - render.RELEASE_SECONDS) == 0
    fifth_up = render.samples("60 _ _ _".split(), bpm=60, transpose=7)
    assert spectrum_peaks(fifth_up[: round(0.5 * RATE)]).min() == pytest.approx(392.0, abs=3)


def read_wav(data):
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return w.getnframes()


def test_wav_bytes_are_a_wav_of_the_melody_length_and_repeat_exactly():
    symbols = "/ _ 67 _ _ _ r _ 72 _ _ _ _ _ _ _".split()  # `/` takes no time, `_` first is a rest
    data = render.wav_bytes(symbols, step_duration=0.5, bpm=90)
    assert read_wav(data) == round((15 * 0.5 * 60 / 90 + render.RELEASE_SECONDS) * RATE)
    assert render.wav_bytes(symbols, step_duration=0.5, bpm=90) == data
    assert render.wav_bytes([], bpm=90)[:4] == b"RIFF"


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_png_draws_the_score_in_black_on_white():
    from music21 import key

    score = render.melody_score(
        "67 _ _ _ 72 _ _ _ _ _ _ _ 71 _ _ _ _ _ _ _".split(),
        meter="3/4",
        pickup=4,
        key=key.Key("D"),
    )
    image = png_size(render.png(render.svg(score))).convert("L")
    assert image.width >= 1000 and 100 <= image.height <= 600
    pixels = np.asarray(image)
    assert pixels[0, 0] == 255 and 0.005 < (pixels < 128).mean() < 0.2  # ink, on a white page


def svg_notes(text):
    """(note elements, ties) verovio drew: notes split at a barline are drawn tied."""
    return text.count('class="note"'), text.count('class="tie"')


def test_cli_writes_several_kinds_of_file_for_each_melody(trained):
    out = trained / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "melodygenerator.py"),
            "--seed",
            "",
            "--meter",
            "3/4",
            "--bars",
            "4",
            "--num-melodies",
            "2",
            "--random-seed",
            "4",
            "--key",
            "G",
            "--bpm",
            "90",
            "--output",
            "out/a.mid",
            "out/a.wav",
            "out/a.svg",
            "out/a.png",
        ],
        cwd=trained,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    melodies = [
        line.split(": ", 1)[1].split()
        for line in result.stdout.splitlines()
        if line.startswith("melody ")
    ]
    assert len(melodies) == 2
    assert sorted(os.listdir(out)) == sorted(
        f"a_{i}.{suffix}" for i in (1, 2) for suffix in ("mid", "wav", "svg", "png")
    )
    for i, symbols in enumerate(melodies, start=1):
        assert len(symbols) == 4 * 12  # 4 bars of 3/4 in 16ths
        seconds = len(symbols) * render.step_seconds(bpm=90)
        frames = read_wav((out / f"a_{i}.wav").read_bytes())
        assert frames == round((seconds + render.RELEASE_SECONDS) * RATE)
        notes, ties = svg_notes((out / f"a_{i}.svg").read_text())
        sounding = [m for m, _ in symbol_runs(symbols) if m is not None]
        assert notes - ties == len(sounding)  # every note drawn, a tied one once per bar
        midi = [m.note for m in mido.MidiFile(out / f"a_{i}.mid") if m.type == "note_on"]
        assert midi == [m + 7 for m in sounding]  # in G, as the WAV is
        image = png_size((out / f"a_{i}.png").read_bytes())
        assert image.width >= 1000 and image.height >= 100


def test_save_melody_wav_follows_key_and_bpm(trained, tmp_path):
    mg = MelodyGenerator(trained / "model.pth", trained / "mapping.json")
    melody = Melody("69 _ _ _ _ _ _ _".split(), meter="2/4", mode="minor")
    path = mg.save_melody(melody, file_name=tmp_path / "m.wav", key="e", bpm=120)
    data = path.read_bytes()
    assert read_wav(data) == round((8 * 0.125 + render.RELEASE_SECONDS) * RATE)
    assert data == render.wav_bytes(melody, 0.25, 120, transpose=-5)  # A minor -> E minor


def test_a_melody_shows_as_score_and_player_and_stays_the_tutorials_list(trained):
    mg = MelodyGenerator(trained / "model.pth", trained / "mapping.json")
    melody = mg.generate_melody("", 200, meter="2/4", bars=3, rng=0)
    html = melody._repr_html_()
    assert "<svg" in html and "</svg>" in html
    sound = re.search(r'<audio controls[^>]* src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', html)
    assert sound is not None
    symbols = list(melody)
    assert melody == symbols and symbols == melody and len(melody) == 24
    assert melody[0] == symbols[0] and melody[-3:] == symbols[-3:]
    assert [s for s in melody] == symbols and isinstance(melody, list)
    assert " ".join(melody).split() == symbols


def test_the_quickstart_notebook_runs(trained, tmp_path, monkeypatch):
    notebook = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells)  # committed without outputs
    # the kernel inherits this environment; it runs in tmp_path, not in notebooks/
    monkeypatch.setenv("MELODY_MODEL", str(trained / "model.pth"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": tmp_path}}).execute()
    shown = [
        output["data"]["text/html"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    ]
    assert len(shown) == 3 and all("<svg" in h and "<audio" in h for h in shown)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"waltz.{suffix}" for suffix in ("mid", "musicxml", "svg", "png", "wav")
    )


def written_accidentals(symbols, key_name, meter="2/4"):
    """(step, accidental shown or None) of each note of the MusicXML render writes."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from melody.outputs import parse_key

    key = parse_key(key_name) if key_name else None
    score = render.melody_score(symbols.split(), meter=meter, key=key)
    text = GeneralObjectExporter(score).parse().decode()
    notes = re.findall(r"<note\b.*?</note>", text, re.S)
    steps = [re.search(r"<step>(\w)</step>", n).group(1) for n in notes if "<step>" in n]
    shown = [(re.findall(r">(\w+)</accidental>", n) or [None])[0] for n in notes if "<step>" in n]
    return list(zip(steps, shown)), text


@pytest.mark.parametrize(
    "key_name, expected",
    [(None, [("G", "sharp"), ("A", None), ("G", None), ("G", "sharp"), ("G", None)]),
     ("E minor", [("D", "sharp"), ("E", None), ("D", None), ("D", "sharp"), ("D", None)])],
)  # fmt: skip
def test_no_courtesy_natural_for_the_bar_before_and_accidentals_keep_their_spelling(
    key_name, expected
):
    """A G# then a G in the next bar: no natural on the G (issue 21); moved to E minor, the G#
    is a D#, not an Eb."""
    notes, _ = written_accidentals("68 _ _ _ 69 _ _ _ 67 _ _ _ 68 _ _ _ 67 _ _ _", key_name)
    assert notes == expected


def test_a_natural_in_the_same_bar_is_still_written():
    notes, _ = written_accidentals("68 _ _ _ 67 _ _ _", None)
    assert notes == [("G", "sharp"), ("G", "natural")]


def test_the_score_ends_with_a_final_barline():
    _, text = written_accidentals("60 _ _ _ 62 _ _ _ 64 _ _ _", None)
    assert text.count("<bar-style>light-heavy</bar-style>") == 1


@pytest.mark.parametrize(
    "name, signature",
    [("Db minor", "C#m"), ("Gb minor", "F#m"), ("Cb minor", "Bm"), ("D# major", "Eb"),
     ("Cb major", "Cb"), ("A# minor", "A#m")],
)  # fmt: skip
def test_midi_keys_take_one_of_the_15_standard_signatures(name, signature, tmp_path):
    """Issue 21: Db minor (8 flats) is written as C# minor, which mido can read."""
    from melody.outputs import write_melody

    path = write_melody("60 _ 62 _".split(), 0.25, "midi", tmp_path / "a.mid", 120, name, None, 0)
    keys = [m.key for t in mido.MidiFile(path).tracks for m in t if m.type == "key_signature"]
    assert keys == [signature]


@pytest.mark.parametrize("name", ["C####", "Cbb", "H", "Db dorian"])
def test_keys_past_the_standard_spellings_are_refused(name):
    from melody.outputs import parse_key

    with pytest.raises(ValueError, match="is not a key like"):
        parse_key(name)


# A 2/4 tune of four 2-bar phrases, A A B B, after a pickup of a quarter; its last bar completes
# the pickup, so the last B is short of the pickup's 4 steps.
PICKUP = "67 _ _ _".split()
PHRASE_A = "60 _ _ _ 62 _ _ _ 64 _ _ _ 65 _ _ _".split()
PHRASE_B = "67 _ _ _ _ _ _ _ 65 _ _ _ 64 _ _ _".split()
AABB = PICKUP + PHRASE_A + PHRASE_A + PHRASE_B + PHRASE_B[:-4]


def test_phrase_labels_name_the_step_each_phrase_starts_at():
    from melody import form

    plain = PHRASE_A * 2 + PHRASE_B * 2
    assert form.phrase_labels(plain, 8, 0, 2) == [(0, "A"), (16, "A"), (32, "B"), (48, "B")]
    # the pickup leads into the first phrase; the others start at a barline
    assert form.phrase_labels(AABB, 8, 4, 2) == [(0, "A"), (20, "A"), (36, "B"), (52, "B")]
    assert form.phrase_labels(AABB, 8, 4) == [(0, "A"), (36, "B")]  # 2/4's 4-bar phrases
    assert form.phrase_labels(AABB, None, 4) == []  # a meter without bars has no phrases


def drawn_letters(svg_text):
    """[(measure index, letter)] of the rehearsal marks verovio drew, each checked to stand above
    its staff (SVG y grows downwards), measures counted from 0 (a pickup is measure 0)."""
    letters = []
    for index, measure in enumerate(svg_text.split('class="measure"')[1:]):
        top = int(re.search(r'class="staff">\s*<path d="M\d+ (\d+) ', measure).group(1))
        for y, letter in re.findall(
            r'class="reh".*?<text[^>]* y="(\d+)".*?<tspan[^>]*>([^<]+)</tspan>', measure, re.S
        ):
            assert int(y) < top, (letter, y, top)
            letters.append((index, unescape(letter)))
    return letters


def test_a_score_picture_draws_the_form_letters_over_the_bars_each_phrase_starts(tmp_path):
    from melody.outputs import write_melody

    melody = Melody(AABB, meter="2/4", pickup=4, bars=8, form="AABB")
    path = write_melody(melody, 0.25, "midi", tmp_path / "m.svg", None, None, None, None)
    # A over the pickup, then over bars 3, 5 and 7 (2-bar phrases, as the form asked)
    assert drawn_letters(path.read_text()) == [(0, "A"), (3, "A"), (5, "B"), (7, "B")]
    # no form, or a training song's bar by bar: letters over the meter's 4-bar phrases
    for i, song_form in enumerate([None, "ABABCDCE/1"]):
        unasked = Melody(AABB, meter="2/4", pickup=4, bars=8, form=song_form)
        path = write_melody(unasked, 0.25, "midi", tmp_path / f"{i}.svg", None, None, None, None)
        assert drawn_letters(path.read_text()) == [(0, "A"), (5, "B")]
    varied = render.melody_score(AABB, meter="2/4", pickup=4, phrases=[(0, "A'"), (20, "B~")])
    assert drawn_letters(render.svg(varied)) == [(0, "A'"), (3, "B~")]
    assert drawn_letters(melody._repr_html_()) == [(0, "A"), (3, "A"), (5, "B"), (7, "B")]


def test_no_letters_without_bars_for_plain_symbols_or_for_a_single_phrase(tmp_path):
    from melody.outputs import write_melody

    unbarred = Melody(AABB, meter="?", form="AABB")  # drawn in 4/4, a meter it was not made in
    one_phrase = Melody(AABB[:36], meter="2/4", pickup=4, bars=4)  # a lone A shows no form
    for i, (melody, meter) in enumerate(
        [(unbarred, None), (list(AABB), "2/4"), (one_phrase, None)]
    ):
        path = write_melody(melody, 0.25, "midi", tmp_path / f"{i}.svg", None, None, meter, 4)
        assert 'class="reh"' not in path.read_text() and 'class="note"' in path.read_text()
    with pytest.raises(ValueError, match="phrase 'B' at step 64 is not within the melody"):
        render.melody_score(AABB, meter="2/4", pickup=4, phrases=[(64, "B")])


def test_musicxml_carries_the_letters_and_reads_back_to_the_same_symbols_midi_carries_none(
    tmp_path,
):
    from melody import dataset, readers
    from melody.outputs import write_melody

    melody = Melody(AABB, meter="2/4", pickup=4, bars=8, form="AABB")
    path = write_melody(melody, 0.25, "musicxml", tmp_path / "m.musicxml", 96, None, None, None)
    assert re.findall(r"<rehearsal[^>]*>([^<]+)</rehearsal>", path.read_text()) == list("AABB")
    [(_, song)] = readers.read_file(path)
    assert dataset.encode_parsed(song) == AABB
    midi = [write_melody(m, 0.25, "midi", tmp_path / f"{i}.mid", 96, None, "2/4", 4) for i, m in
            enumerate([melody, list(AABB)])]  # fmt: skip
    assert midi[0].read_bytes() == midi[1].read_bytes()
