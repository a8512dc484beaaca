"""A melody's form: the bars and phrases that come back, read from its symbols, and the form
notation that generation follows (MelodyGenerator.generate_melodies(form=...)).

Bars are cut in the melody's meter from its first barline (after the pickup); a bar at the end
shorter than the meter's is left out. A bar (or a span of 2 or 4 bars: bars 1-2, 3-4, ...)
*repeats* when its symbols equal an earlier one's; it repeats a *rhythm* when its onsets, holds
and rests equal an earlier one's but its pitches do not; it is a *transposed* repeat (a sequence)
when its notes are an earlier one's moved by the same number of semitones.

Phrases are 2 or 4 bars long (phrase_bars: about three 4/4 bars' worth, so 4 bars of 2/4, 3/4
or 6/8, 2 of 4/4) and counted from the first barline, like the bars: the pickup leads into the
first phrase, and the last phrase ends with the song, its last bar completing the pickup (so it
is compared with the opening of the others). A song of `bars` bars, its pickup counted as real
songs count it, is bars / phrase_bars phrases. The form notation, one letter per phrase:

    A      a new phrase where A comes first; where it comes back, A again (the same symbols)
    A'     A varied: its first half (the opening) as A's, a new close (A'' the same)
    A^     A moved (a sequence): A's notes moved up or down together, by an interval that
           keeps every note in the key (C major or A minor, where the songs are kept); the model
           picks the interval with the first note, else (no interval fits) A's rhythm
    A~     A's rhythm (onsets, holds and rests) with other pitches
    /N     after the letters: N bars per phrase ("AABB/4"); without it, the bars asked divided
           by the letters ("AABB" in 8 bars: 2-bar phrases)
    -      no form: nothing is made to come back (unset, a melody takes the form of the training
           song its plan is drawn from, bar by bar: song_form)

phrase_form reads the same notation back from a melody ("AA'BB"); Form.copies says, step by
step, what a melody of a form takes from where.
"""

import re
import string
from dataclasses import dataclass

import numpy as np

from melody.encoding import HOLD, REST

PHRASE_STEPS = 48  # a phrase is 4 bars where that is at most 48 16ths (three 4/4 bars), else 2
SPANS = (1, 2, 4)  # the bar spans whose repeats are counted
# form_shares' names: bars and spans that repeat exactly, bars that repeat a rhythm or a sequence
REPEAT_SHARES = (
    "bar repeats",
    "2-bar repeats",
    "4-bar repeats",
    "rhythm repeats",
    "transposed repeats",
)
VARIED, MOVED, RHYTHM = "'", "^", "~"
EXACT = ""  # Form.copies' mark of a step that takes the earlier step's symbol as it is
NO_FORM = "-"  # asked for no form (None: a training song's, drawn with the plan)
# How closely a bar comes back: repeats' kinds, and what each mark of the notation asks for
STRENGTH = {None: 0, "rhythm": 1, "transposed": 2, "exact": 3}
MARK_STRENGTH = {EXACT: 3, MOVED: 2, RHYTHM: 1}
# The form field the model reads (bar_roles): a bar's STRENGTH, + RETURN_NEXT before a return
RETURN_NEXT = len(STRENGTH)
ROLE_VALUES = 2 * RETURN_NEXT
_FORM = re.compile(r"\s*((?:[A-Za-z](?:'+|~|\^)?)+)\s*(?:/\s*(\d+))?\s*")
_TOKEN = re.compile(r"([A-Za-z])('+|~|\^)?")


def bars_of(symbols, bar_steps, pickup):
    """The melody's whole bars from its first barline, each a tuple of symbols."""
    body = list(symbols)[pickup:]
    return [tuple(body[i : i + bar_steps]) for i in range(0, len(body) - bar_steps + 1, bar_steps)]


def spans_of(bars, n):
    """Bars 1..n, n+1..2n, ... joined: the n-bar spans, whole ones only."""
    return [sum(bars[i : i + n], ()) for i in range(0, len(bars) - n + 1, n)]


def rhythm(symbols):
    """Onsets, holds and rests: every note's pitch replaced by one mark."""
    return tuple("o" if s not in (HOLD, REST) else s for s in symbols)


def transposition(a, b):
    """The semitones that move a's notes onto b's where both have the same rhythm and at least
    one note, else None (0: the same notes)."""
    if rhythm(a) != rhythm(b):
        return None
    shifts = {int(y) - int(x) for x, y in zip(a, b) if x not in (HOLD, REST)}
    return shifts.pop() if len(shifts) == 1 else None


def repeats(units):
    """Per unit: "exact" where an earlier unit has its symbols, else "transposed" where an earlier
    one has its notes moved, else "rhythm" where one has its rhythm, else None."""
    kinds = []
    for i, unit in enumerate(units):
        earlier = units[:i]
        if unit in earlier:
            kinds.append("exact")
        elif any(transposition(e, unit) for e in earlier):
            kinds.append("transposed")
        elif rhythm(unit) in {rhythm(e) for e in earlier}:
            kinds.append("rhythm")
        else:
            kinds.append(None)
    return kinds


def form_counts(symbols, bar_steps, pickup):
    """{"bars", "bar repeats", "rhythm repeats", "transposed repeats", "2-bar spans",
    "2-bar repeats", "4-bar spans", "4-bar repeats"}: counts of one melody.

    A rhythm repeat has another bar's rhythm and other pitches (not transposed); a transposed
    repeat, another bar's notes moved; exact repeats are counted apart from both."""
    bars = bars_of(symbols, bar_steps, pickup)
    kinds = repeats(bars)
    counts = {
        "bars": len(bars),
        "bar repeats": kinds.count("exact"),
        "rhythm repeats": kinds.count("rhythm"),
        "transposed repeats": kinds.count("transposed"),
    }
    for n in SPANS[1:]:
        spans = spans_of(bars, n)
        counts[f"{n}-bar spans"] = len(spans)
        counts[f"{n}-bar repeats"] = sum(s in spans[:i] for i, s in enumerate(spans))
    return counts


def form_shares(counts):
    """Counts (form_counts, or their sums over melodies) -> {name: share} for REPEAT_SHARES: of
    the bars, or of the spans of that many bars; 0 where there are none."""
    units = {name: name.replace("repeats", "spans") for name in REPEAT_SHARES}
    units |= {"bar repeats": "bars", "rhythm repeats": "bars", "transposed repeats": "bars"}
    return {
        name: counts[name] / counts[units[name]] if counts[units[name]] else 0.0
        for name in REPEAT_SHARES
    }


def phrase_bars(bar_steps):
    """The phrase length a meter suggests: 4 bars of a short bar, 2 of a long one."""
    return 4 if 4 * bar_steps <= PHRASE_STEPS else 2


def phrases_of(symbols, bar_steps, pickup, phrase_length):
    """The phrases of phrase_length bars from the first barline; the last one may lack the
    pickup's steps (the melody's last bar completes the pickup), a shorter one is left out."""
    length, body = phrase_length * bar_steps, list(symbols)[pickup:]
    starts = range(0, len(body) - length + pickup + 1, length)
    return [tuple(body[i : i + length]) for i in starts]


def phrase_form(symbols, bar_steps, phrase_length=None, pickup=0):
    """The melody's phrases (phrases_of; phrase_length None: the meter's phrase_bars) as form
    letters, e.g. ["A", "A'", "B", "B~"].

    A phrase takes the letter of the first earlier phrase with a letter of its own whose symbols
    it has, else (unless a later phrase has its symbols: then it needs a letter of its own to be
    repeated by) whose first half it has (A'), else whose notes it has moved (A^), else whose
    rhythm it has (A~), else the next new letter; a last phrase short of the pickup is compared
    with the others' openings."""
    length = (phrase_length or phrase_bars(bar_steps)) * bar_steps
    phrases = phrases_of(symbols, bar_steps, pickup, length // bar_steps)
    letters, origins = [], []  # origins: (letter, phrase) where each letter came first
    for k, phrase in enumerate(phrases):
        half = min(length // 2, len(phrase))
        found = next((a for a, o in origins if o[: len(phrase)] == phrase), None)
        if found is None and phrase not in phrases[k + 1 :]:  # else a letter to come back to
            found = (
                next((a + VARIED for a, o in origins if half and o[:half] == phrase[:half]), None)
                or next(
                    (a + MOVED for a, o in origins if transposition(o[: len(phrase)], phrase)), None
                )
                or next(
                    (a + RHYTHM for a, o in origins if rhythm(o[: len(phrase)]) == rhythm(phrase)),
                    None,
                )
            )
        if found is None:
            found = letter(len(origins))
            origins.append((found, phrase))
        letters.append(found)
    return letters


def song_form(symbols, bar_steps, pickup=0):
    """A song's form bar by bar ("ABAC.../1": 1-bar phrases), its last bar new so that a melody
    made to it closes as the model learned to; None where the meter has no bars, or the song has
    more new bars than there are letters. Training keeps each song's (controls.Plan.form), and
    generation draws one with the rest of the plan where no form is asked."""
    letters = phrase_form(symbols, bar_steps, 1, pickup) if bar_steps else []
    if letters:
        letters[-1] = letter(len({token[0] for token in letters[:-1]}))
    if not letters or "?" in letters:
        return None
    return "".join(letters) + "/1"


def letter(i):
    """The i-th new phrase's letter: A..Z, then "?" (no letter left: a form no one can ask)."""
    return string.ascii_uppercase[i] if i < len(string.ascii_uppercase) else "?"


def similarity(symbols, bar_steps, pickup):
    """Bar-by-bar self-similarity [bars, bars]: 1 where two bars are the same, 2/3 where one's
    notes are the other's moved (transposition), 1/3 where they share their rhythm only, else 0."""
    bars = bars_of(symbols, bar_steps, pickup)
    matrix = np.zeros((len(bars), len(bars)))
    for i, a in enumerate(bars):
        for j, b in enumerate(bars):
            moved = transposition(a, b)
            matrix[i, j] = 1 if a == b else 2 / 3 if moved else 1 / 3 * (rhythm(a) == rhythm(b))
    return matrix


@dataclass(frozen=True)
class Form:
    """A parsed form: its letters ("A", "A'", "A~" per phrase) and bars per phrase (None: the
    bars asked divided by the letters)."""

    text: str
    letters: tuple
    phrase_bars: int | None = None

    def fit(self, bars, bar_steps):
        """(bars, bars per phrase) of a melody of this form in a meter of bar_steps steps, with
        `bars` asked (None: as many as the form needs, in the meter's phrase length); a form that
        does not fit is a ValueError in one line."""
        n = len(self.letters)
        if bar_steps is None:
            raise ValueError(f"form {self.text!r} needs bars: this melody's meter has none")
        length = self.phrase_bars or (phrase_bars(bar_steps) if bars is None else bars // n)
        if bars is None:
            bars = n * length
        if length < 1 or n * length != bars:
            need = f"{n * self.phrase_bars}" if self.phrase_bars else f"a multiple of {n}"
            raise ValueError(
                f"form {self.text!r} does not fit {bars} bars: its {n} phrases need {need} bars"
            )
        return bars, length

    def copies(self, bars, bar_steps, pickup=0):
        """[(step, earlier step, mark)] of a melody of `bars` bars after a pickup of that many
        steps: each step of a phrase that comes back (up to the melody's end), the step of its
        letter's first phrase that it takes, and how: EXACT (its symbol), MOVED or RHYTHM."""
        _, length = self.fit(bars, bar_steps)
        steps, end = length * bar_steps, bars * bar_steps
        first, copies = {}, []
        for k, token in enumerate(self.letters):
            name, mark = token[0], token[1:]
            if name not in first:
                first[name] = k
                continue
            source, span = pickup + first[name] * steps, steps // 2 if mark == VARIED else steps
            start = pickup + k * steps
            how = EXACT if mark == VARIED else mark
            copies += [(start + o, source + o, how) for o in range(min(span, end - start))]
        return copies

    def planned_strengths(self, bars, bar_steps):
        """Per bar of a melody of this form, how closely it is to come back (STRENGTH): 0 in a
        letter's first phrase, else as the phrase's mark says; a varied phrase (A') takes its
        opening half's bars as they are and may keep the rhythm of its close."""
        _, length = self.fit(bars, bar_steps)
        seen, strengths = set(), []
        for token in self.letters:
            name, mark = token[0], token[1:]
            for bar in range(length):
                if name not in seen:
                    strengths.append(0)
                elif mark == VARIED:
                    strengths.append(STRENGTH["exact" if 2 * (bar + 1) <= length else "rhythm"])
                else:
                    strengths.append(MARK_STRENGTH[mark])
            seen.add(name)
        return strengths


def unplanned_repeats(symbols, form, bars, bar_steps, pickup=0):
    """How many bars of a melody made to `form` (a Form, in `bars` bars) come back more closely
    than the form asks: a bar of a new phrase that repeats an earlier bar, by its notes, moved or
    by its rhythm; a bar meant to keep a rhythm that keeps the notes too."""
    found = [STRENGTH[kind] for kind in repeats(bars_of(symbols, bar_steps, pickup))]
    return sum(f > p for f, p in zip(found, form.planned_strengths(bars, bar_steps)))


def bar_roles(text, bars, bar_steps):
    """The form field of each bar of a melody of form `text` in `bars` bars: how closely the bar
    comes back (STRENGTH: 0 new, 1 rhythm, 2 moved, 3 exact), plus RETURN_NEXT where the next bar
    comes back, so that a bar knows it closes before a return; None where the text is no form
    (None, NO_FORM) or does not fit the bars."""
    if text in (None, NO_FORM) or not bar_steps or bars is None:
        return None
    try:
        strengths = parse_form(text).planned_strengths(bars, bar_steps)
    except ValueError:
        return None
    ahead = strengths[1:] + [0]
    return [s + RETURN_NEXT * bool(n) for s, n in zip(strengths, ahead)]


def parse_form(text):
    """ "AABB", "ABA'C", "AA~BB/4" -> a Form; anything else is a ValueError in one line."""
    match = _FORM.fullmatch(str(text))
    length = int(match[2]) if match and match[2] else None
    if not match or length == 0:
        raise ValueError(
            f"form {text!r} is not a form like 'AABB', \"ABA'C\" or 'AA^B~/4': a letter per "
            "phrase, ' after one for a new close, ^ for its notes moved, ~ for its rhythm "
            "with other notes, /N for N bars per phrase"
        )
    letters = tuple(
        a.upper() + (VARIED if mark.startswith(VARIED) else mark)
        for a, mark in _TOKEN.findall(match[1])
    )
    seen = set()
    for token in letters:
        if token[1:] and token[0] not in seen:
            raise ValueError(
                f"form {text!r}: {token} varies {token[0]}, which has not come yet; the first "
                f"{token[0]} is a plain letter"
            )
        seen.add(token[0])
    return Form(str(text).strip(), letters, length)


def phrase_labels(symbols, bar_steps, pickup=0, phrase_length=None):
    """[(step, letter)]: where each phrase of phrase_form's starts, in steps from the melody's
    start, and its letter; the first phrase's at step 0, its pickup leading into it. [] where the
    meter has no bars (bar_steps None)."""
    if not bar_steps:
        return []
    length = (phrase_length or phrase_bars(bar_steps)) * bar_steps
    letters = phrase_form(symbols, bar_steps, phrase_length, pickup)
    return [(pickup + k * length if k else 0, token) for k, token in enumerate(letters)]
