"""Standard MIDI files (.mid, .midi), read with mido: the top voice, quantised to 16ths.

The rule, for any MIDI file, one track or many, one voice or chords:

1. Every note of every track and channel, except channel 10 (General MIDI drums), is one
   (onset, end, pitch), in ticks; a note_on of velocity 0 ends a note as a note_off does.
2. Onsets and ends are quantised to the nearest 16th (ticks_per_beat / 4); a note that would then
   last no time lasts one 16th.
3. The top voice: at each quantised onset, the highest note sounding then (a new note on a draw),
   where a note held from before counts only if no new note starts in its own track and channel
   (there one player has moved on: the overlap of legato playing, or a hand of a piano track).
   Where that note is the one the top voice already holds, it goes on (a soprano's half note
   under moving inner parts); otherwise it enters the top voice there, cutting the note before,
   and lasts until its own end or the next note that enters; a new note of another voice on the
   pitch the top voice holds does not strike it again. A gap before an onset is a rest, as is
   the time before the first note in its bar (whole bars of silence before it are dropped): a
   lower note sounding on after the top one ends is not followed. A note or a silence of more
   than config.MAX_HELD_BARS bars of 4/4 marks a damaged file (huge delta times), which is
   skipped.
4. MIDI has no written notes, so each note and rest is written as a score would write it (as
   music21 reads a MIDI file): split at the barlines of the meter in force (bars counted from the
   start of the file, and again from each time_signature message), then into the longest of
   config.ACCEPTABLE_DURATIONS that fit, the pieces of a note tied. (So the duration filter never
   drops a MIDI song: quantisation has already done its work.) Silence after the last note is not
   read: MIDI marks it only by where a track ends.
5. Meters: the time_signature messages of the file in order (repeats dropped); none, as music21
   reads such a file: 4/4. The key: the first key_signature message that names one (mido's
   "Bb", "F#m"; one of 9 sharps or mode byte 2 names none, and the file is read on), else
   music21's analysis of the notes. MIDI marks no pickup: it is 0.

Before mido reads a file, scan() walks its bytes and counts its notes, so that a file of more than
config.MAX_SONG_NOTES notes or config.MAX_MIDI_EVENTS events, a note after
config.MAX_SONG_QUARTERS quarter notes, or a damaged
chunk is refused in a fraction of the time mido would take.
"""

import bisect
import contextlib
import io
import struct

import config
from melody.readers import common

SUFFIXES = (".mid", ".midi")
DRUM_CHANNEL = 9  # channel 10, counted from 1
_DRUM_ON = 0x90 | DRUM_CHANNEL  # the status byte of its note_on
STEPS_PER_QUARTER = 4  # 16ths
MAX_HELD = config.MAX_HELD_BARS * 4  # in quarter lengths: bars of 4/4
MAX_STEPS = config.MAX_SONG_QUARTERS * STEPS_PER_QUARTER  # a longer file is damaged, or no song


def parse(path, data):
    """A file's bytes -> a result (its top voice)."""
    import mido

    if not data.strip():
        return {"skip": "empty"}
    if len(data) > config.MAX_SONG_BYTES:
        return common.too_big(len(data))
    try:
        ticks_per_beat, count, last_onset, events = scan(data)
    except ValueError as error:
        return common.failure("not a readable MIDI file", error)
    # mido makes an object of every message, seconds for a long file: the scan refuses it first
    if count > config.MAX_SONG_NOTES:
        return common.too_many_notes(count)
    if events > config.MAX_MIDI_EVENTS:
        return {"skip": f"more than {config.MAX_MIDI_EVENTS} MIDI events ({events}): not one song"}
    if last_onset > config.MAX_SONG_QUARTERS * ticks_per_beat:
        return common.too_long(last_onset / ticks_per_beat)
    try:
        with _lenient_key_signatures():
            midi = mido.MidiFile(file=io.BytesIO(data))
        notes, meter_changes, declared = _notes(midi)
    # mido raises many types (OSError, EOFError, ValueError, KeyError) on a damaged file
    except Exception as error:
        return common.failure("not a readable MIDI file", error)
    ticks_per_step = midi.ticks_per_beat / STEPS_PER_QUARTER
    if notes and max(note[1] for note in notes) / ticks_per_step > MAX_STEPS:
        return common.too_long(max(note[1] for note in notes) / midi.ticks_per_beat)
    bars = [(round(tick / ticks_per_step), _bar_steps(meter)) for tick, meter in meter_changes]
    events = top_voice(notes, ticks_per_step, bars)
    if _longest_held(events) > MAX_HELD:
        return {"skip": f"a note or silence of over {config.MAX_HELD_BARS} bars (damaged?)"}
    meters = [
        meter
        for i, (_, meter) in enumerate(meter_changes)
        if i == 0 or meter != meter_changes[i - 1][1]
    ]
    return common.result(events, declared, meters or ["4/4"], 0.0, "midi", _polyphonic(notes))


# Data bytes after each status byte of a channel or system message (sysex and meta have a length)
_DATA_BYTES = {
    **{status: 1 if 0xC0 <= status < 0xE0 else 2 for status in range(0x80, 0xF0)},
    **{0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0},
}


def scan(data):
    """A MIDI file's bytes, walked as mido reads them but building no message -> (ticks per
    beat, notes, tick of the last note's onset, events). Notes are those _notes makes: note_ons of
    velocity above 0 outside the drum channel. A damaged file is a ValueError saying where."""
    if len(data) < 14 or data[:4] != b"MThd":
        raise ValueError("no MThd header: not a MIDI file")
    kind, tracks, ticks_per_beat = struct.unpack(">hhh", data[8:14])
    if int.from_bytes(data[4:8]) < 6:
        raise ValueError("a header chunk shorter than 6 bytes")
    if kind == 2 or ticks_per_beat <= 0:
        raise ValueError(f"MIDI type {kind} or SMPTE timing: no beats to quantise")
    start, notes, last_onset, events = 8 + int.from_bytes(data[4:8]), 0, 0, 0
    for number in range(1, tracks + 1):
        if data[start : start + 4] != b"MTrk":
            raise ValueError(f"no track {number} of the {tracks} its header names (truncated?)")
        end = start + 8 + int.from_bytes(data[start + 4 : start + 8])
        if end > len(data):
            raise ValueError(f"track {number} is cut short: {end - len(data)} bytes missing")
        count, onset, track_events = _scan_track(data, start + 8, end)
        notes, last_onset, start = notes + count, max(last_onset, onset), end
        events += track_events
    return ticks_per_beat, notes, last_onset, events


def _scan_track(data, at, end):
    """The notes of one track's events, data[at:end], the tick of its last onset, its events."""
    tick = notes = last_onset = events = 0
    running = None  # the status a data byte in place of one repeats
    while at < end:
        events += 1
        if data[at] < 0x80:  # most delta times are one byte: no call
            tick, at = tick + data[at], at + 1
        else:
            delta, at = _number(data, at, end)
            tick += delta
        if at == end:
            raise ValueError(f"a track ends after a delta time, with no event (byte {end})")
        status = data[at]
        if status < 0x80:
            if running is None:
                raise ValueError(f"a data byte with no status before it at byte {at}")
            status, at = running, at + (running in (0xF0, 0xF7))  # mido drops it after a sysex
        else:
            at += 1
            running = running if status == 0xFF else status  # a meta event sets none
        if status == 0xFF:  # meta: its type, length and data
            length, at = _number(data, at + 1, end)
            at += length
        elif status in (0xF0, 0xF7):  # sysex: length and data
            length, at = _number(data, at, end)
            at += length
        elif status in _DATA_BYTES:
            if status & 0xF0 == 0x90 and status != _DRUM_ON and at + 1 < end and data[at + 1]:
                notes, last_onset = notes + 1, tick
            at += _DATA_BYTES[status]
        else:
            raise ValueError(f"an undefined status byte 0x{status:02X} at byte {at - 1}")
    if at != end:
        raise ValueError(f"an event runs past the end of its track (byte {end})")
    return notes, last_onset, events


def _number(data, at, end):
    """A variable-length number at data[at] (at most 4 bytes, as the standard has it), and
    where the bytes after it start."""
    value = 0
    for index in range(at, min(at + 4, end)):
        value = value << 7 | data[index] & 0x7F
        if data[index] < 0x80:
            return value, index + 1
    raise ValueError(f"a variable-length number at byte {at} longer than 4 bytes or cut off")


def _longest_held(events):
    """The longest note (its tied pieces together) or run of rests, in quarter lengths."""
    longest = run = 0
    previous = 0  # no pitch nor rest
    for pitch, quarter_length, tied in events:
        goes_on = (pitch is None and previous is None) or (pitch is not None and tied)
        run = run + quarter_length if goes_on else quarter_length
        longest, previous = max(longest, run), pitch
    return longest


def _polyphonic(notes):
    """Whether notes come from more than one track and channel, or two start together."""
    return len({voice for *_, voice in notes}) > 1 or len({n[0] for n in notes}) < len(notes)


def _notes(midi):
    """[(onset, end, pitch, (track, channel))] in ticks, [(tick, meter)] and the declared key of a
    mido.MidiFile."""
    notes, meters, declared = [], [], None
    for number, track in enumerate(midi.tracks):
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type == "time_signature":
                meters.append((tick, f"{message.numerator}/{message.denominator}"))
            elif message.type == "key_signature" and declared is None and message.key:
                declared = _key(message.key)
            elif message.type in ("note_on", "note_off") and message.channel != DRUM_CHANNEL:
                key = (message.channel, message.note)
                if key in sounding:  # a note_off, or a new note_on of a sounding key, ends it
                    notes.append((sounding.pop(key), tick, message.note, (number, message.channel)))
                if message.type == "note_on" and message.velocity > 0:
                    sounding[key] = tick
        notes.extend(
            (onset, tick, note, (number, channel)) for (channel, note), onset in sounding.items()
        )
    return notes, sorted(meters, key=lambda change: change[0]), declared


@contextlib.contextmanager
def _lenient_key_signatures():
    """mido refuses a whole file over one key signature it cannot name (9 sharps, mode byte 2):
    while it reads one here, such a signature names no key (restored after)."""
    from mido.midifiles import meta

    spec = meta.MetaSpec_key_signature
    decode = spec.decode

    def lenient(self, message, data):
        try:
            decode(self, message, data)
        except meta.KeySignatureError:
            vars(message)["key"] = None  # past the check, which allows names only

    spec.decode = lenient
    try:
        yield
    finally:
        spec.decode = decode


def _bar_steps(meter):
    """16ths in a bar of "3/4" (12), or None where that is not a whole number."""
    numerator, denominator = map(int, meter.split("/"))
    steps = numerator * 4 * STEPS_PER_QUARTER / denominator if denominator else 0
    return int(steps) if steps >= 1 and steps == int(steps) else None


def _key(name):
    """mido's key name ("Bb", "F#m") -> (music21 tonic name, mode)."""
    mode = "minor" if name.endswith("m") else "major"
    tonic = name.removesuffix("m")
    return tonic[0] + tonic[1:].replace("b", "-"), mode


def top_voice(notes, ticks_per_step, bars=()):
    """Notes (onset, end, pitch, voice) in ticks -> events of the top voice, in 16th steps (rules
    2-4). voice: (track, channel).

    bars: [(step, 16ths in a bar, or None)] from each meter change on (4/4 before the first).
    """
    quantised = []
    for onset, end, pitch, voice in notes:
        start = round(onset / ticks_per_step)
        quantised.append((start, max(round(end / ticks_per_step), start + 1), pitch, voice))
    quantised.sort()
    melody = []  # [pitch, start, stop] of each note the top voice takes
    active, held, i = [], None, 0
    for onset in sorted({note[0] for note in quantised}):
        starting = []
        while i < len(quantised) and quantised[i][0] == onset:
            starting.append(quantised[i])
            i += 1
        moved = {note[3] for note in starting}  # a voice with a new note let go of its old one
        active = [note for note in active if note[1] > onset and note[3] not in moved]
        active += starting
        # on a draw the note held goes on, else a new note wins
        top = max(active, key=lambda note: (note[2], note is held, note[0]))
        if top is not held:
            if melody:
                melody[-1][2] = min(melody[-1][2], onset)
            melody.append([top[2], onset, top[1]])
            held = top
    barlines = _barlines(bars, max((stop for _, _, stop in melody), default=0))
    first = melody[0][1] if melody else 0
    events, time = [], barlines[bisect.bisect_right(barlines, first) - 1] if barlines else 0
    for pitch, start, stop in melody:
        if start > time:
            events.extend(_written(None, time, start, barlines))
        events.extend(_written(pitch, start, stop, barlines))
        time = stop
    return events


def _barlines(bars, end):
    """The steps before `end` where a bar starts, from [(step, bar steps)] meter changes."""
    changes = [(0, 16)] + [(step, bar) for step, bar in bars if step > 0 or bar]
    changes = [
        c for i, c in enumerate(changes) if i + 1 == len(changes) or changes[i + 1][0] > c[0]
    ]
    lines = []
    for (step, bar), (until, _) in zip(changes, changes[1:] + [(end, None)]):
        lines.extend(range(step, min(until, end), bar) if bar else [step])
    return lines


_DURATIONS = sorted(round(d * STEPS_PER_QUARTER) for d in config.ACCEPTABLE_DURATIONS)[::-1]


def _written(pitch, start, stop, barlines):
    """A note or rest from step start to stop -> events: split at barlines, then into the longest
    acceptable durations that fit; a note's pieces tied."""
    events = []
    cuts = barlines[bisect.bisect_right(barlines, start) : bisect.bisect_left(barlines, stop)]
    for begin, end in zip([start] + cuts, cuts + [stop]):
        steps = end - begin
        while steps > 0:
            piece = next((d for d in _DURATIONS if d <= steps), 1)
            events.append((pitch, piece / STEPS_PER_QUARTER, bool(events) and pitch is not None))
            steps -= piece
    return events
