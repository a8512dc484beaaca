"""Sampling a batch of melodies one symbol at a time, and choosing among each melody's candidates.

Sampling gives the model the context it was trained with: one `/` (the song start), the seed, then
one sampled symbol at a time with the model's sampling state carried along (models: an LSTM's
state, a Transformer's key-value cache), so each step costs one small call however long the melody
already is.
"""

import math
import numbers

import torch

import config
from melody import controls
from melody import form as forms
from melody import models as model
from melody.encoding import DELIMITER, HOLD

OPEN_END = 2**62  # the `/` step of a melody with no planned length: never reached


def check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, not {value!r}")


def is_positive_number(value):
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and value > 0
    )


def check_sampling(temperature, top_k, top_p, pitch_temperature=1.0):
    """Refuse sampling settings that have no meaning, with a sentence saying what is allowed."""
    for name, value in (("temperature", temperature), ("pitch_temperature", pitch_temperature)):
        if not is_positive_number(value):
            raise ValueError(
                f"{name} must be a positive number (1 samples the model as trained), not {value!r}"
            )
    if top_k is not None:
        check_count("top_k", top_k, minimum=1)
    if top_p is not None and (
        isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1
    ):
        raise ValueError(f"top_p must be a number with 0 < top_p <= 1, not {top_p!r}")


def make_generator(rng):
    """None -> torch's global RNG; an int -> a fresh CPU generator seeded with it; a torch.Generator
    as is.
    """
    if rng is None or isinstance(rng, torch.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral) or rng < 0:
        raise ValueError(f"rng must be None, a whole number >= 0 or a torch.Generator, not {rng!r}")
    return torch.Generator().manual_seed(int(rng))


def sample(
    logits,
    temperature=1.0,
    top_k=None,
    top_p=None,
    generator=None,
    pitch_temperature=1.0,
    pitches=None,
):
    """One symbol index per row of logits [n, vocab]: the pitch temperature (reshape_pitches),
    then temperature, then top-k, then top-p, then a draw on the CPU.
    """
    scores = logits.float().cpu()
    if pitch_temperature != 1 and pitches is not None:
        scores = reshape_pitches(scores, pitch_temperature, pitches)
    # softmax(log p / T) == softmax(logits / T): log p is the logits shifted by a constant per row.
    scores = scores / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = scores.topk(top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_probs, order = torch.softmax(scores, dim=-1).sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the likelier symbols
        drop = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, order, before >= top_p)
        scores = scores.masked_fill(drop, float("-inf"))
    # Gumbel-max: the argmax of scores minus log(Exp(1)) noise is a draw from softmax(scores), in
    # fewer small operations per step than torch.multinomial.
    noise = torch.empty_like(scores).exponential_(generator=generator).log_()
    return (scores - noise).argmax(dim=-1)


def reshape_pitches(scores, pitch_temperature, pitches):
    """Log-probabilities [n, vocab] from scores, the distribution among the pitches (pitches: a
    [vocab] mask) raised to 1 / pitch_temperature and their total kept: how likely a note is to
    start stays the model's, which note it is becomes surer (below 1) or freer (above 1)."""
    log_probs = torch.log_softmax(scores, dim=-1)
    pitch_mass = log_probs.masked_fill(~pitches, float("-inf")).logsumexp(-1, keepdim=True)
    reshaped = log_probs / pitch_temperature
    among = reshaped.masked_fill(~pitches, float("-inf")).logsumexp(-1, keepdim=True)
    # a row whose pitches are all ruled out (-inf) keeps them so, rather than NaN
    moved = torch.where(pitch_mass > float("-inf"), reshaped - among + pitch_mass, log_probs)
    return torch.where(pitches, moved, log_probs)


def pitch_mask(index):
    """[vocab] True at the pitch symbols (MIDI numbers) of index (symbol -> index)."""
    mask = torch.zeros(len(index), dtype=torch.bool)
    mask[[i for symbol, i in index.items() if symbol.isdigit()]] = True
    return mask


def read(net, rows, delimiter, device, max_sequence_length, fields=None):
    """A fresh state from `/` + the rows' last max_sequence_length symbols (all of them for
    None), with the control fields of the steps they predict.

    Returns the logits for the next symbol [n, vocab] and the model's sampling state.
    """
    first = 0
    if max_sequence_length is not None:
        first = rows.shape[1] - min(rows.shape[1], max_sequence_length)
    rows = rows[:, first:]
    start = torch.full((rows.shape[0], 1), delimiter, dtype=torch.long)
    window = None if fields is None else fields[:, first : first + rows.shape[1] + 1]
    return net.read(torch.cat([start, rows], 1).to(device), window)


def sample_symbols(
    net,
    seed_rows,
    num_steps,
    fields,
    end,
    *,
    index,
    device,
    max_sequence_length,
    temperature,
    top_k,
    top_p,
    generator,
    pitch_temperature=1.0,
    copying=None,
):
    """Up to num_steps symbol indices sampled after each of seed_rows [rows, seed], as
    [rows, steps taken]; a row's tail after its `/` is to be ignored.

    fields: the control fields of each row's steps, end: the step of each row's `/` (both None for
    a model without controls); index: symbol -> index; max_sequence_length, temperature, top_k,
    top_p, pitch_temperature: as MelodyGenerator.generate_melody takes them; copying: a Copying for
    a form, or None.
    """
    delimiter = index[DELIMITER]
    pitches = pitch_mask(index)
    rows, seed_length = seed_rows.shape
    if end is not None:  # a melody of unknown meter has no planned end: it ends at its `/`
        planned = end < OPEN_END
        all_planned = bool(planned.all())
        planned = planned.to(device)
    tokens = torch.empty(rows, num_steps, dtype=torch.long)
    finished = torch.zeros(rows, dtype=torch.bool)
    # a small batch on a CPU samples fastest on one thread (models.sampling_threads)
    with model.sampling_threads(rows, device):
        logits, state = read(net, seed_rows, delimiter, device, max_sequence_length, fields)
        since_rebuild = 0
        for step in range(num_steps):
            t = seed_length + step  # the step being sampled, counted from the song start
            if end is not None:  # `/` falls at a planned last barline, and only there
                # logits are fresh each step: safe to edit in place
                logits[planned if not all_planned else slice(None), delimiter] = float("-inf")
            if t == 0 and HOLD in index:  # nothing to hold yet: a song starts with an onset
                logits[:, index[HOLD]] = float("-inf")
            if copying is not None:
                copying.restrict(logits, t)
            next_symbols = sample(
                logits, temperature, top_k, top_p, generator, pitch_temperature, pitches
            )
            if copying is not None:
                next_symbols = copying.keep(next_symbols, t)
            if end is not None:
                next_symbols = torch.where(end == t, delimiter, next_symbols)
            tokens[:, step] = next_symbols
            finished |= next_symbols == delimiter
            if finished.all() or step == num_steps - 1:
                num_steps = step + 1
                break
            since_rebuild += 1
            if (
                max_sequence_length
                and since_rebuild >= max_sequence_length
                and seed_length + step + 1 > max_sequence_length
            ):
                rows_so_far = torch.cat([seed_rows, tokens[:, : step + 1]], 1)
                logits, state = read(
                    net, rows_so_far, delimiter, device, max_sequence_length, fields
                )
                since_rebuild = 0
            else:
                step_fields = None if fields is None else fields[:, t + 1]
                logits, state = net.step(next_symbols.to(device), step_fields, state)
    return tokens[:, :num_steps]


class Copying:
    """Constrained decoding to a form (form.py): each step of a phrase that comes back takes the
    symbol of the earlier step it copies. Where it copies the rhythm only, a hold or a rest is
    taken as it is and an onset is sampled among the pitches. Where it copies the notes moved, the
    first onset is sampled among the pitches that move every note of the earlier phrase within the
    key (controls.KEY_PITCH_CLASSES) and the later onsets follow it; where no move fits, the
    phrase copies the rhythm only."""

    def __init__(self, copies, seed_rows, num_steps, index):
        """copies: per row, [(step, earlier step, mark)] counted from the song start
        (form.Form.copies); a step of the seed stays the seed's."""
        rows, seed_length = seed_rows.shape
        total = seed_length + num_steps
        self.source = torch.full((rows, total), -1, dtype=torch.long)
        self.rhythm_only = torch.zeros((rows, total), dtype=torch.bool)
        self.phrase_start = torch.full((rows, total), -1, dtype=torch.long)  # of a moved phrase
        self.moved_from = {}  # (row, its first step) -> the earlier steps a moved phrase moves
        for row, row_copies in enumerate(copies):
            previous = None
            for step, earlier, mark in row_copies:
                if mark == forms.MOVED:
                    if previous != (step - 1, earlier - 1, mark):  # a moved phrase begins
                        first = step
                    self.moved_from.setdefault((row, first), []).append(earlier)
                previous = (step, earlier, mark)
                if seed_length <= step < total:
                    self.source[row, step] = earlier
                    self.rhythm_only[row, step] = mark == forms.RHYTHM
                    self.phrase_start[row, step] = first if mark == forms.MOVED else -1
        self.history = torch.cat([seed_rows, torch.zeros(rows, num_steps, dtype=torch.long)], 1)
        self.vocabulary = sorted(index, key=index.get)
        self.index = index
        self.pitches = pitch_mask(index)
        self.shifts = {}  # (row, moved phrase's first step) -> semitones, None: no move fits
        self.forced = self.earlier = None
        self.choosing = {}  # row -> (moved phrase, its first onset's earlier pitch) at this step

    def restrict(self, logits, t):
        """Before step t is sampled: note what it copies, and leave an onset that is sampled (of a
        rhythm copied, or the first of a moved phrase) the pitches alone to choose from, the moves
        that fit alone in a moved phrase (logits edited in place)."""
        source = self.source[:, t]
        self.earlier = self.history[torch.arange(len(source)), source.clamp(min=0)]
        onset = (source >= 0) & self.pitches[self.earlier]
        free = onset & self.rhythm_only[:, t]
        self.choosing = {}
        for row in (onset & (self.phrase_start[:, t] >= 0)).nonzero().flatten().tolist():
            phrase, pitch = (row, int(self.phrase_start[row, t])), self._pitch(self.earlier[row])
            if phrase not in self.shifts:
                allowed = self._moves(phrase, pitch)
                if allowed is not None:
                    logits[row].masked_fill_(~allowed.to(logits.device), float("-inf"))
                    self.choosing[row] = (phrase, pitch)
                self.shifts[phrase] = None  # set by keep where a move is chosen
            shift = self.shifts[phrase]
            moved = None if shift is None else self.index.get(str(pitch + shift))
            if moved is None:
                free[row] = True
            else:
                self.earlier[row] = moved
        self.forced = (source >= 0) & ~free
        mask = free[:, None] & ~self.pitches[None, :]
        logits.masked_fill_(mask.to(logits.device), float("-inf"))

    def keep(self, next_symbols, t):
        """The symbols of step t, copies where forced, remembered for the steps that copy them;
        the first onset of a moved phrase sets the move of the others."""
        next_symbols = torch.where(self.forced, self.earlier, next_symbols)
        for row, (phrase, pitch) in self.choosing.items():
            self.shifts[phrase] = self._pitch(next_symbols[row]) - pitch
        self.history[:, t] = next_symbols
        return next_symbols

    def _pitch(self, symbol_index):
        return int(self.vocabulary[int(symbol_index)])

    def _moves(self, phrase, pitch):
        """The pitches [vocab] a moved phrase's first onset (moving `pitch`) may take: those that
        move every note of the earlier phrase onto the key and the vocabulary; None if none does."""
        notes = {self.vocabulary[int(self.history[phrase[0], e])] for e in self.moved_from[phrase]}
        notes = [int(n) for n in notes if n.isdigit()]
        allowed = torch.zeros(len(self.vocabulary), dtype=torch.bool)
        for shift in range(-11, 12):  # less than an octave: a sequence, not the tune again
            if shift and all(
                (n + shift) % 12 in controls.KEY_PITCH_CLASSES and str(n + shift) in self.index
                for n in notes
            ):
                allowed[self.index[str(pitch + shift)]] = True
        return allowed if allowed.any() else None


def candidates_to_sample(candidates, plans, end, stop):
    """How many candidates to sample per melody (candidates; None: config.END_CANDIDATES), and
    which melodies choose among theirs: those with a planned final, ambitus or form whose planned
    end (end) falls before stop, the step where sampling is cut off."""
    k = config.END_CANDIDATES if candidates is None else candidates
    check_count("candidates", k, minimum=1)
    # A melody is chosen by how it ends, so only one that reaches its planned end is: a melody
    # cut short by num_steps, or planned by a model saved before plans had shapes, is sampled
    # once.
    reached = [] if end is None else (end < stop).tolist()
    shaped = [any(x is not None for x in (p.final, p.ambitus, p.form, p.notes)) for p in plans]
    chosen = [r and s for r, s in zip(reached, shaped)] or [False] * len(plans)
    return (k if any(chosen) else 1), chosen


def best_candidate(candidates, time_step):
    """The candidate that fits its plan best: it closes on the final if any does (controls.misfit),
    and of those the one whose ambitus is nearest the plan's, each bar that comes back where the
    plan's form does not ask for it (unplanned_repeats) counting as a semitone more, and each
    config.NOTES_PER_SEMITONE notes more or fewer than the plan's as one; the first of equals. A
    model repeats bars on its own too: without the count, those repeats come on top of the
    form's, and melodies repeat more than songs. And a model writes more notes than the songs:
    without the notes, the candidate nearest the ambitus is the busiest more often than not."""

    def misfit(melody):
        final, ambitus = controls.misfit(melody.plan, melody)
        notes = melody.plan.notes
        busier = 0 if notes is None else abs(controls.notes_of(melody) - notes)
        busier /= config.NOTES_PER_SEMITONE
        return final, ambitus + unplanned_repeats(melody, time_step) + busier

    return min(candidates, key=misfit)


def unplanned_repeats(melody, time_step):
    """form.unplanned_repeats of a melody with its plan's form (0 where it has none)."""
    plan = melody.plan
    bar = controls.bar_steps(plan.meter, time_step)
    if not plan.form or not bar or not plan.bars:
        return 0
    return forms.unplanned_repeats(melody, forms.parse_form(plan.form), plan.bars, bar, plan.pickup)


def choose(melodies, k, chosen, time_step):
    """One melody per group of k neighbouring candidates: the best fit where chosen, else the
    first."""
    groups = [melodies[g * k : (g + 1) * k] for g in range(len(chosen))]
    return [best_candidate(group, time_step) if c else group[0] for group, c in zip(groups, chosen)]
