"""Editing a melody: chosen bars sampled again while every other bar stays (regenerate), or new
pitches over the same rhythm (keep="rhythm"); and `python melodygenerator.py --edit FILE`.

A left-to-right model sees only what comes before a gap, so the bars after it are taken into
account by weighing: each gap is sampled `candidates` times as one batch after the melody before
it, each candidate then reads the kept bars after the gap (up to the next gap, or to the end and
its closing `/`), and one candidate is drawn in proportion to how likely the model finds them
after it (sampling-importance-resampling: as the candidates grow many, a draw from the model's own
distribution of the gap given both sides). With keep="rhythm" each step of a gap is held to the
kind of the original's: a pitch at an onset, `_` at a hold, `r` at a rest; the weight then also
counts how likely the model finds that rhythm under the new pitches.

Bars are numbered as the score numbers them: the pickup is bar 0, the first full bar is bar 1.

    regenerate(generator, melody, bars=[3, 4], keep=None, rng=0)  -> a new Melody
    read_melody("tune.abc")  -> the file as a Melody (C major / A minor), its key kept
"""

import dataclasses
import re
import secrets
import sys
from pathlib import Path

import torch

import config
from melody import controls, outputs, sampling
from melody import models as model
from melody.cli import flag_errors
from melody.encoding import DELIMITER, HOLD, REST
from melody.generation import Melody, MelodyGenerator, describe_plan
from melody.primer import read_primer

KEEPS = (None, "rhythm")


def bar_spans(length, bar, pickup):
    """{bar number: (first step, step after it)} of a melody of `length` steps: bar 0 the pickup
    (where there is one), the last bar as long as the melody goes."""
    spans = {0: (0, min(pickup, length))} if pickup else {}
    start, number = pickup, 1
    while start < length:
        spans[number] = (start, min(start + bar, length))
        start, number = start + bar, number + 1
    return spans


def check_bars(bars, spans):
    """The bar numbers asked, sorted, each one a bar of the melody; else a ValueError in one
    line."""
    if isinstance(bars, int) and not isinstance(bars, bool):
        bars = [bars]
    try:
        numbers = sorted(set(bars))
    except TypeError:
        numbers = None
    if not numbers or any(not isinstance(n, int) or isinstance(n, bool) for n in numbers):
        raise ValueError(f"bars must be a list of bar numbers such as [3, 4], not {bars!r}")
    outside = [n for n in numbers if n not in spans]
    if outside:
        first, last = min(spans, default=1), max(spans, default=0)
        pickup = " (bar 0 is its pickup)" if 0 in spans else ""
        raise ValueError(
            f"bar {outside[0]} is not in this melody: it has bars {first}-{last}{pickup}"
        )
    return numbers


def gaps(numbers, spans):
    """Bar numbers -> the step ranges [(start, stop)] of the runs of neighbouring bars."""
    out = []
    for n in numbers:
        start, stop = spans[n]
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], stop)
        else:
            out.append((start, stop))
    return out


def parse_bars(text):
    """ "3-4", "5", "1-2,7" -> [3, 4], [5], [1, 2, 7]; anything else is a ValueError."""
    numbers = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match[2] and int(match[2]) < int(match[1])):
            raise ValueError(f"bars {text!r} are not bar numbers like 3-4, 5 or 1-2,7")
        numbers += range(int(match[1]), int(match[2] or match[1]) + 1)
    return numbers


def allowed_symbols(generator, original, t, keep):
    """The symbols step t of a gap may take [vocab] (bool): any but `/` (nor `_` at the song
    start); with keep="rhythm", a pitch where the original has an onset, else its `_` or `r`."""
    vocabulary, index = generator.vocabulary, generator.index
    if keep == "rhythm":
        if original[t] in (HOLD, REST):
            mask = torch.zeros(len(vocabulary), dtype=torch.bool)
            mask[index[original[t]]] = True
            return mask
        return torch.tensor([s.isdigit() for s in vocabulary])
    mask = torch.tensor([s != DELIMITER for s in vocabulary])
    if t == 0 and HOLD in index:  # nothing to hold yet: a song starts with an onset
        mask[index[HOLD]] = False
    return mask


def edit_fields(generator, melody, rows, draw):
    """The control fields of every step of the melody and its `/` [rows, steps + 1, fields], for
    the plan it was made to (None for a model without controls). A melody that lacks what the
    model is told (a file's: no style, no final) gets its own final and a drawn style."""
    space = generator.controls
    if space is None:
        return None
    plan, mode = melody.plan, melody.mode or controls.MODES[0]
    style = plan.style
    if space.styles and style not in space.styles:
        style = space.styles[int(torch.randint(len(space.styles), (1,), generator=draw))]
    final = plan.final
    if "final" in space.shapes and final is None:
        final = controls.final_of(list(melody), mode)
    plan = dataclasses.replace(plan, mode=mode, style=style, final=final)
    fields = space.fields(plan, 0, len(melody) + 1, length=len(melody))
    return torch.from_numpy(fields).repeat(rows, 1, 1).to(generator.device)


def fill_gap(generator, symbols, gap, until, keep, fields, settings):
    """New symbols for steps gap = (start, stop) of symbols: `candidates` sampled after the steps
    before it, one drawn by its weight (the log-likelihood of the kept steps stop..until after it,
    and of the `/` where until is the end; and of the rhythm kept, with keep="rhythm")."""
    start, stop = gap
    k, draw, index = settings["candidates"], settings["generator"], generator.index
    net, device = generator.model, generator.device
    rows = torch.tensor([index[s] for s in symbols[:start]], dtype=torch.long).repeat(k, 1)
    masks = [allowed_symbols(generator, symbols, t, keep) for t in range(start, stop)]
    forced = [index[s] for s in symbols[stop:until]] + [index[DELIMITER]] * (until == len(symbols))
    weights, tokens = torch.zeros(k, dtype=torch.float64), torch.empty(k, stop - start).long()
    with model.sampling_threads(k, device):
        logits, state = sampling.read(net, rows, index[DELIMITER], device, None, fields)
        for t in range(start, stop + len(forced)):
            log_probs = torch.log_softmax(logits.float().cpu(), dim=-1)
            if t < stop:
                mask = masks[t - start]
                weights += log_probs.masked_fill(~mask, float("-inf")).logsumexp(-1).double()
                masked = logits.masked_fill(~mask.to(logits.device), float("-inf"))
                choice = sampling.sample(masked, *settings["sampling"], draw, *settings["pitches"])
                tokens[:, t - start] = choice
            else:
                choice = torch.full((k,), forced[t - stop], dtype=torch.long)
                weights += log_probs[:, forced[t - stop]].double()
            if t + 1 < stop + len(forced):
                step_fields = None if fields is None else fields[:, t + 1]
                logits, state = net.step(choice.to(device), step_fields, state)
    chosen = torch.multinomial(torch.softmax(weights, 0).float(), 1, generator=draw).item()
    return [generator.vocabulary[i] for i in tokens[chosen].tolist()]


@torch.inference_mode()
def regenerate(
    generator,
    melody,
    bars=None,
    keep=None,
    rng=None,
    candidates=None,
    temperature=1.0,
    top_k=None,
    top_p=None,
    pitch_temperature=None,
):
    """A new Melody: the bars asked (score numbers: pickup 0, first full bar 1; None: all) sampled
    again and every other bar kept exactly, with the melody's plan (meter, mode, pickup, length,
    style) and key. MelodyGenerator.regenerate documents the arguments."""
    if keep not in KEEPS:
        raise ValueError(f"keep must be None or 'rhythm', not {keep!r}")
    if not isinstance(melody, Melody):
        melody = Melody(melody.split() if isinstance(melody, str) else melody)
    symbols = list(melody)
    unknown = sorted({s for s in symbols if s not in generator.index or s == DELIMITER})
    if unknown:
        raise ValueError(
            f"the melody has symbols this model does not know: {' '.join(unknown)} (notes "
            "outside the range it was trained on): give another melody or model"
        )
    if pitch_temperature is None:
        pitch_temperature = config.PITCH_TEMPERATURE
    sampling.check_sampling(temperature, top_k, top_p, pitch_temperature)
    k = config.EDIT_CANDIDATES if candidates is None else candidates
    sampling.check_count("candidates", k, minimum=1)
    bar = controls.bar_steps(outputs.score_meter(melody.meter), generator.time_step)
    spans = bar_spans(len(symbols), bar, melody.pickup)
    numbers = sorted(spans) if bars is None else check_bars(bars, spans)
    draw = sampling.make_generator(rng)
    if draw is None:  # torch's global RNG: a fresh generator seeded from it
        draw = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
    fields = edit_fields(generator, melody, k, draw)
    settings = {"candidates": k, "generator": draw, "sampling": (temperature, top_k, top_p)}
    settings["pitches"] = (pitch_temperature, sampling.pitch_mask(generator.index))
    runs = gaps(numbers, spans)
    for i, gap in enumerate(runs):
        until = runs[i + 1][0] if i + 1 < len(runs) else len(symbols)
        symbols[gap[0] : gap[1]] = fill_gap(generator, symbols, gap, until, keep, fields, settings)
    edited = Melody(symbols, **vars(melody.plan))
    edited.key = melody.key
    return edited


def read_melody(path, time_step=config.TIME_STEP):
    """A song file (any the readers read; an ABC file's first tune) as a Melody in C major / A
    minor, with its meter, pickup and mode, and its key to write it back in."""
    try:
        song = read_primer(path, sys.maxsize, time_step)  # all of its bars
    except ValueError as error:
        raise ValueError(str(error).removeprefix("primer ")) from None
    bar = controls.bar_steps(song.meter or config.TIME_SIGNATURE, time_step)
    meter = song.meter or controls.UNKNOWN_METER
    bars = max(1, round(len(song.symbols) / bar))  # the pickup counted as songs count it
    melody = Melody(song.symbols, meter, song.mode, song.pickup, bars)
    melody.key = song.key
    return melody


def run(args):
    """`python melodygenerator.py --edit FILE`: regenerate the bars of --regenerate (or all,
    with --keep-rhythm alone) and write the edited melody to every --output file; a bad flag
    value or file is one line (UserError)."""
    random_seed = args.random_seed if args.random_seed is not None else secrets.randbelow(2**31)
    with flag_errors():
        if args.regenerate is None and not args.keep_rhythm:
            raise ValueError("--edit needs --regenerate BARS (e.g. 3-4), --keep-rhythm, or both")
        bars = None if args.regenerate is None else parse_bars(args.regenerate)
        if args.key is not None:  # checked before the work of sampling
            outputs.parse_key(args.key)
        generator = MelodyGenerator(args.model, args.mapping, device=args.device)
        melody = read_melody(args.edit, generator.time_step)
        keep = "rhythm" if args.keep_rhythm else None
        edited = generator.regenerate(
            melody,
            bars,
            keep,
            rng=random_seed,
            candidates=args.edit_candidates,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            pitch_temperature=args.pitch_temperature,
        )
        asked = "all bars" if bars is None else f"bars {args.regenerate}"
        how = ", new pitches over the same rhythm" if keep else ""
        plan = describe_plan(melody, generator.time_step)
        print(f"{Path(args.edit).name} ({plan}, in {melody.key}): {asked}{how}")
        print(" ".join(edited))
        for output in args.output:
            path = generator.save_melody(
                edited, format=args.format, file_name=output, bpm=args.bpm, key=args.key
            )
            print(f"wrote {path}")
    print(f"random seed {random_seed} (pass --random-seed {random_seed} to repeat this edit)")
