"""Writing a melody as the text that folk musicians and Humdrum users trade: ABC and **kern.

    abc_text(symbols, ...) -> "X:1\\nT:t\\nM:3/4\\nL:1/8\\nQ:1/4=120\\nK:G\\nA | d2 e2 f3/g/ |..."
    kern_text(symbols, ...) -> "!!!OTL: ...\\n**kern\\n*M3/4\\n*k[f#]\\n*G:\\n8d\\n=1\\n..."

Both are written in bars of the melody's meter, the pickup an incomplete first bar, in the key
asked (moved from C major / A minor as every output is: render.key_interval) and spelt as the
score spells it. Each note is written as plain or dotted note values, tied within a bar and
across barlines. The project's readers (melody/readers) read both back to the melody's symbols,
but for one thing the formats force: a rest cannot be tied, so a rest that crosses a barline or
lasts no single note value is written, and read back, as several rests (`r _ _ _ r` for
`r _ _ _ _`), just as the readers encode every real song. written_symbols says what a melody
reads back as.
"""

from fractions import Fraction
from typing import NamedTuple

from melody import controls, render
from melody.encoding import HOLD, REST, symbol_runs
from melody.readers import abc, kern

FORMATS = {"abc", "kern"}
SUFFIX_FORMATS = {**dict.fromkeys(abc.SUFFIXES, "abc"), **dict.fromkeys(kern.SUFFIXES, "kern")}
BARS_PER_LINE = 4  # ABC: a line of four bars, as tunes are printed in collections
ABC_UNIT = Fraction(1, 2)  # L:1/8, in quarter lengths: the unit note folk tunes are written in
_ABC_ACCIDENTALS = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}
# Whole-note fractions written as a kern duration without digits: breve and longa
_KERN_LONG = {Fraction(2): "0", Fraction(4): "00"}


class Piece(NamedTuple):
    """One written note or rest: MIDI number (None: rest), steps, its tie ("start", "continue",
    "stop" or None), the score's number of its bar and its first step in that bar."""

    midi: int | None
    steps: int
    tie: str | None
    bar: int
    at: int


def note_values(step_duration):
    """The lengths, in steps, that one written note can have (plain or dotted, from a 64th to a
    dotted longa), longest first."""
    step = Fraction(step_duration).limit_denominator(1024)
    plain = [Fraction(16, 2**i) for i in range(9)]  # quarter lengths: longa .. 64th
    values = {q / step for base in plain for q in (base, base * 3 / 2)}
    return sorted((int(v) for v in values if v.denominator == 1), reverse=True)


def _split(steps, values):
    """Steps -> the written values that add up to them, longest first (a greedy split)."""
    out = []
    while steps:
        value = next((v for v in values if v <= steps), None)
        if value is None:
            raise ValueError(f"{steps} steps cannot be written as note values")
        out.append(value)
        steps -= value
    return out


def bar_steps(meter, step_duration):
    """Steps in a bar of meter, which must hold a whole number of steps."""
    steps = controls.bar_steps(meter, step_duration)
    if steps is None:
        raise ValueError(f"a bar of {meter} is not a whole number of {step_duration}-quarter steps")
    return steps


def pieces(symbols, step_duration, meter, pickup):
    """Symbols -> the written notes and rests, bar by bar: [[Piece]] (bar 0 the pickup, if any)."""
    bar = bar_steps(meter, step_duration)
    if not 0 <= pickup < bar:
        raise ValueError(f"pickup {pickup} steps must be shorter than a bar of {meter} ({bar})")
    values, start = note_values(step_duration), (bar - pickup) % bar
    bars, at = [], start
    for midi, steps in symbol_runs(symbols):
        lengths, done = [], 0
        while done < steps:  # split at each barline, then into note values
            room = min(steps - done, bar - (at + done) % bar)
            lengths += [(value, (at + done) // bar) for value in _split(room, values)]
            done += room
        at = _place(bars, midi, lengths, at, bar, pickup)
    return bars


def _place(bars, midi, lengths, at, bar, pickup):
    """Append a run's written values to bars; returns the step after it."""
    for i, (length, index) in enumerate(lengths):
        while len(bars) <= index:
            bars.append([])
        tie = None
        if midi is not None and len(lengths) > 1:
            tie = "start" if i == 0 else "stop" if i == len(lengths) - 1 else "continue"
        number = index + (0 if pickup else 1)
        bars[index].append(Piece(midi, length, tie, number, at % bar))
        at += length
    return at


def written_symbols(symbols, step_duration, meter, pickup):
    """The symbols a melody reads back as from its ABC or kern: its own, each rest split as it is
    written (a rest per barline crossed, and per note value of a rest no single value lasts)."""
    out = []
    for bar in pieces(symbols, step_duration, meter, pickup):
        for piece in bar:
            held = piece.midi is not None and piece.tie in ("continue", "stop")
            first = HOLD if held else REST if piece.midi is None else str(piece.midi)
            out += [first] + [HOLD] * (piece.steps - 1)
    return out


def _speller(key):
    """MIDI number -> the music21 Pitch written for it in `key` (a music21 Key), as the score
    spells it: C major / A minor's spelling, moved by render.key_interval."""
    shift, spelt = render.key_interval(key), {}

    def spell(midi):
        if midi not in spelt:
            spelt[midi] = render.spelt(midi).transpose(shift)
        return spelt[midi]

    return spell


def _signature(key):
    """{step letter: alteration} of the key signature of a music21 Key, in its written order."""
    return {p.step: int(p.alter) for p in key.alteredPitches}


def _beat(meter, step_duration):
    """Steps in a beat: a dotted quarter in compound meters (6/8, 9/8, 12/8), else 1/denominator."""
    numerator, denominator = controls.parse_meter(meter)
    compound = denominator >= 8 and numerator % 3 == 0 and numerator > 3
    beat = Fraction(4, denominator) * (3 if compound else 1)
    return beat / Fraction(step_duration).limit_denominator(1024)


def _abc_length(steps, step_duration):
    """Steps -> an ABC length in units of L:1/8 ("" for one unit, "2", "/", "3/", "/4")."""
    units = Fraction(steps) * Fraction(step_duration).limit_denominator(1024) / ABC_UNIT
    number = "" if units.numerator == 1 else str(units.numerator)
    if units.denominator == 1:
        return number
    return number + "/" + ("" if units.denominator == 2 else str(units.denominator))


def _abc_note(pitch, written_accidental):
    """A music21 Pitch -> ABC ("^f", "B,", "c'"), its accidental written where asked."""
    letter = pitch.step if pitch.octave <= 4 else pitch.step.lower()
    marks = "," * max(0, 4 - pitch.octave) + "'" * max(0, pitch.octave - 5)
    accidental = _ABC_ACCIDENTALS[int(pitch.alter)] if written_accidental else ""
    return accidental + letter + marks


def _abc_bar(bar, spell, signature, beat, step_duration):
    """One bar's notes and rests as ABC, a space before each beat that starts a note."""
    text, altered = "", set()  # steps given an accidental in this bar: it holds to the barline
    for piece in bar:
        if text and piece.at % beat == 0:
            text += " "
        if piece.midi is None:
            text += "z"
        else:
            pitch = spell(piece.midi)
            # an accidental wherever the key signature or an earlier one in the bar says otherwise
            written = pitch.step in altered or int(pitch.alter) != signature.get(pitch.step, 0)
            altered |= {pitch.step} if written else set()
            text += _abc_note(pitch, written)
        text += _abc_length(piece.steps, step_duration)
        text += "-" if piece.tie in ("start", "continue") else ""
    return text


def _abc_key(key):
    """A music21 Key -> ABC's K: value ("G", "Bb", "F#m")."""
    return key.tonic.name.replace("-", "b") + ("m" if key.mode == "minor" else "")


def abc_text(symbols, step_duration, meter, pickup, key, bpm=None, title="Melody"):
    """A melody (symbols in C major / A minor) as one ABC tune in `meter` with `pickup` steps
    before the first barline, written in music21 Key `key`; bpm quarter notes a minute (None:
    no Q: line)."""
    bars = pieces(symbols, step_duration, meter, pickup)
    spell, signature = _speller(key), _signature(key)
    beat = _beat(meter, step_duration)
    header = [f"X:1\nT:{title}\nM:{meter}\nL:1/8"]
    header += [f"Q:1/4={bpm:g}"] if bpm is not None else []
    header += [f"K:{_abc_key(key)}"]
    body = ""
    for i, bar in enumerate(bars):
        last = i == len(bars) - 1
        body += _abc_bar(bar, spell, signature, beat, step_duration)
        body += " |]" if last else " |"
        body += "\n" if last or (bar[0].bar % BARS_PER_LINE == 0 and bar[0].bar) else " "
    return "\n".join(header) + "\n" + body


def _kern_duration(steps, step_duration):
    """Steps -> a kern duration ("4", "8.", "0" a breve), for a plain or dotted note value."""
    whole = Fraction(steps) * Fraction(step_duration).limit_denominator(1024) / 4
    dots = ""
    if whole not in _KERN_LONG and (1 / whole).denominator != 1:
        whole, dots = whole * 2 / 3, "."
    return _KERN_LONG.get(whole, str(1 / whole)) + dots


def _kern_pitch(pitch):
    """A music21 Pitch -> kern ("c" C4, "cc" C5, "B-" B-flat 3, "f#")."""
    if pitch.octave >= 4:
        letters = pitch.step.lower() * (pitch.octave - 3)
    else:
        letters = pitch.step * (4 - pitch.octave)
    alter = int(pitch.alter)
    return letters + ("#" * alter if alter > 0 else "-" * -alter)


def _kern_token(piece, spell, step_duration):
    duration = _kern_duration(piece.steps, step_duration)
    if piece.midi is None:
        return duration + "r"
    token = duration + _kern_pitch(spell(piece.midi))
    return {"start": "[" + token, "continue": token + "_", "stop": token + "]"}.get(
        piece.tie, token
    )


def kern_text(symbols, step_duration, meter, pickup, key, bpm=None, title="Melody"):
    """A melody (symbols in C major / A minor) as a **kern file in `meter` with `pickup` steps
    before the first barline (`=1`), written in music21 Key `key` (`*k[...]`, `*G:`); bpm quarter
    notes a minute (None: no `*MM`)."""
    bars = pieces(symbols, step_duration, meter, pickup)
    spell = _speller(key)
    signature = "".join(
        step.lower() + ("#" if alter > 0 else "-") * abs(alter)
        for step, alter in _signature(key).items()
    )
    tonic = key.tonic.name
    lines = [f"!!!OTL: {title}", "**kern", f"*M{meter}", f"*k[{signature}]"]
    lines += [f"*{tonic.lower() if key.mode == 'minor' else tonic}:"]
    lines += [f"*MM{bpm:g}"] if bpm is not None else []
    for bar in bars:
        number = bar[0].bar  # the barline before each bar; "=1-": an unseen one before bar 1
        if number:
            lines.append(f"={number}" if number > 1 or pickup else "=1-")
        lines += [_kern_token(piece, spell, step_duration) for piece in bar]
    return "\n".join(lines + ["==", "*-"]) + "\n"


def text(fmt, symbols, step_duration, meter, pickup, key, bpm=None, title="Melody"):
    """The melody as the text of fmt ("abc" or "kern")."""
    write = abc_text if fmt == "abc" else kern_text
    return write(symbols, step_duration, meter, pickup, key, bpm, title)
