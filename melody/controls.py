"""Meter, mode, pickup, length and style: what a song's structure is, and what the model is told
of it.

Every step the model predicts comes with its control fields, small integers any architecture
can embed beside the symbol it reads (the style only where the training songs come from two or
more collections):

    meter       the song's meter, an index into the checkpoint's list of meters ("3/4", "6/8", ...)
    mode        major or minor (songs are moved to C major or A minor)
    position    where the predicted step falls in its bar, in steps: (t + offset) % bar_steps,
                offset = bar_steps - pickup, so the first full bar starts at position 0
    bars left   ceil((length - t) / bar_steps): how many bars are still to come, 0 at the song's
                closing `/`; capped at MAX_BARS_LEFT
    style       the song's collection (song_metadata.csv `collection`: "erk", "oneills1850", ...),
                an index into the checkpoint's list of styles; only in a model of several
    final       the song's last note, in semitones above the tonic (0: it ends on the tonic,
                7: on the fifth), 12 for none (a song without notes); only in a model whose
                space lists it among its shapes
    form        the form of the bar the step is in (form.bar_roles): how closely it comes back
                (new, rhythm, moved, exact) and whether the next bar comes back; "none" where
                the plan has no form; only in a model whose space lists it among its shapes

A plan is drawn from one training song, so the model knows from the first step where the melody
is to close. The plan also carries the song's ambitus (its highest note less its lowest), which
the model is not told: generation keeps, of several candidates, the one that fits the plan best
(misfit; melodygenerator's candidates). It is no field: told it, a model memorised its training
songs more and came no closer to the ambitus asked. The song's number of notes is kept the same
way: a model writes busier melodies than the songs, and candidates chosen by ambitus alone are
busier still.

A song of an unknown or changing meter gets a "none" position and bars-left. Real songs end on a
barline of their meter with the last bar completing the pickup (nearly all single-meter songs),
so a song of `bars` bars lasts exactly bars * bar_steps steps, whatever its pickup. Generation
asks for that length and places the closing `/` there.
"""

import dataclasses
import functools
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

import config
from melody import form as forms

UNKNOWN_METER = "?"
MODES = ["major", "minor"]
TONICS = {"major": 0, "minor": 9}  # songs are moved to C major or A minor (encoding.py)
# Semitones above the tonic of each scale degree, 1-7: how a final is asked for
DEGREES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}
# The pitch classes of the key every song is moved to: C major's, which A minor shares
KEY_PITCH_CLASSES = frozenset((TONICS["major"] + d) % 12 for d in DEGREES["major"])
# The fields of a song's shape, after the style: their number of values (the next is "none")
SHAPES = {"final": 12, "form": forms.ROLE_VALUES}


def form_column(plan, t, bar, length):
    """The form field of steps t (form.bar_roles of the bar each falls in; the pickup's steps are
    a new bar's, the closing `/` the last bar's), or "none" where the plan has no form that fits."""
    bars = None if bar is None or length is None else -(-length // bar)
    roles = forms.bar_roles(plan.form, bars, bar)
    if roles is None:
        return np.full(len(t), SHAPES["form"])
    index = np.clip((t - plan.pickup) // bar, -1, len(roles) - 1)
    return np.where(index < 0, 0, np.asarray(roles)[np.maximum(index, 0)])


def final_of(symbols, mode):
    """A song's final: its last note in semitones above the tonic of `mode` (the song moved to C
    major or A minor), None for a song without notes."""
    notes = [int(s) for s in symbols if s.isdigit()]
    return (notes[-1] - TONICS[mode]) % 12 if notes else None


def ambitus_of(symbols):
    """A song's ambitus: its highest note less its lowest, in semitones; None without notes."""
    notes = [int(s) for s in symbols if s.isdigit()]
    return max(notes) - min(notes) if notes else None


def notes_of(symbols):
    """A melody's number of notes (rests and holds are none)."""
    return sum(s.isdigit() for s in symbols)


def misfit(plan, symbols):
    """How far a melody is from the shape of its plan, to be minimised: (1 if it does not close on
    the plan's final else 0, semitones between its ambitus and the plan's); (0, 0) fits, as does
    what the plan leaves open."""
    ambitus = ambitus_of(symbols) or 0  # no notes: no span
    return (
        int(plan.final is not None and final_of(symbols, plan.mode) != plan.final),
        0 if plan.ambitus is None else abs(ambitus - plan.ambitus),
    )


def degree(mode, semitones):
    """A final as people name it: its scale degree ("5"), or its semitones above the tonic where
    it is off the scale ("6 semitones")."""
    scale = DEGREES[mode]
    return str(scale.index(semitones) + 1) if semitones in scale else f"{semitones} semitones"


def parse_meter(text):
    """ "3/4" -> (3, 4); anything else is a ValueError that says what a meter looks like."""
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*", str(text))
    if not match or int(match[1]) < 1 or int(match[2]) not in (1, 2, 4, 8, 16, 32):
        raise ValueError(
            f"meter {text!r} is not a meter like '3/4' or '6/8' (a whole number of "
            "beats over 1, 2, 4, 8, 16 or 32)"
        )
    return int(match[1]), int(match[2])


@functools.lru_cache(maxsize=256)  # called for every training song's plan when one is drawn
def bar_steps(meter, time_step=config.TIME_STEP):
    """Steps in one bar of `meter` ("3/4" -> 12 sixteenths), or None for an unknown meter."""
    if meter == UNKNOWN_METER:
        return None
    numerator, denominator = parse_meter(meter)
    steps = Fraction(4 * numerator, denominator) / Fraction(time_step).limit_denominator(1024)
    return int(steps) if steps.denominator == 1 else None


@dataclass(frozen=True)
class Plan:
    """One melody's structure: meter, mode, pickup (steps), length in bars (None: open), style
    (the collection it is like; None for a model of one collection), final (its last note in
    semitones above the tonic), ambitus (its range in semitones), form (the bars that come
    back, in form.py's notation: a training song's own, form.song_form) and notes (how many
    notes it has: a song's own, for its length in bars); None: not planned."""

    meter: str
    mode: str | None
    pickup: int = 0
    bars: int | None = None
    style: str | None = None
    final: int | None = None
    ambitus: int | None = None
    form: str | None = None
    notes: int | None = None

    @classmethod
    def from_row(cls, row):
        """The plan of a real song, from its row of song_metadata.csv (artefacts.load_metadata)."""
        return cls(
            row["meter"],
            row["mode"],
            row["pickup"],
            row["bars"],
            row["collection"] or None,
            row.get("final"),
            row.get("ambitus"),
        )


PLAN_FIELDS = [f.name for f in dataclasses.fields(Plan)]
# The controls a drawn song must share with those asked, from the strictest level down; an asked
# style is kept first, and the last levels, without it, can only be reached by a pickup asked for
# that no song of the style has room for.
_LEVELS = (("meter", "mode", "pickup", "bars"), ("meter", "mode"), ("mode",), ("meter",), ())
LEVELS = tuple(("style", *keys) for keys in _LEVELS) + _LEVELS


class ControlSpace:
    """The control vocabulary of one model: which meters it knows, and the size of each field.

    Saved in the checkpoint (as_dict) with the training songs' plans, which generation samples
    from where the user leaves a control unset.
    """

    def __init__(
        self,
        meters,
        max_bar_steps,
        max_bars_left=config.MAX_BARS_LEFT,
        time_step=config.TIME_STEP,
        plans=(),
        styles=(),
        shapes=(),
    ):
        self.meters, self.styles, self.shapes = list(meters), list(styles), list(shapes)
        self.max_bar_steps, self.max_bars_left, self.time_step = (
            max_bar_steps,
            max_bars_left,
            time_step,
        )
        self.plans = [Plan(*p) for p in plans]

    @classmethod
    def from_songs(
        cls,
        plans,
        meters=(),
        time_step=config.TIME_STEP,
        max_bars_left=config.MAX_BARS_LEFT,
        styles=(),
    ):
        """The space of training songs' plans; meters, styles: more to know (the held-out songs').

        The plans' styles become a control field only where there are two or more of them; with
        one, the plans keep no style. The final is a field where the plans have one (a song table
        written before it existed has none).
        """
        meters = sorted({p.meter for p in plans} | set(meters) | {UNKNOWN_METER})
        styles = sorted({p.style for p in plans if p.style} | set(styles))
        if len(styles) < 2:
            styles, plans = [], [dataclasses.replace(p, style=None) for p in plans]
        steps = [bar_steps(m, time_step) for m in meters]
        return cls(
            meters,
            max([s for s in steps if s] or [1]),
            max_bars_left,
            time_step,
            [tuple(vars(p).values()) for p in plans],
            styles,
            [name for name in SHAPES if any(getattr(p, name) is not None for p in plans)],
        )

    @classmethod
    def from_dict(cls, d):
        """A saved space (as_dict), as a checkpoint holds it (checkpoints.upgrade)."""
        return cls(
            d["meters"],
            d["max_bar_steps"],
            d["max_bars_left"],
            d["time_step"],
            d["plans"],
            d["styles"],
            d["shapes"],
        )

    def as_dict(self):
        return {
            "meters": self.meters,
            "max_bar_steps": self.max_bar_steps,
            "max_bars_left": self.max_bars_left,
            "time_step": self.time_step,
            "plans": [list(vars(p).values()) for p in self.plans],
            "styles": self.styles,
            "shapes": self.shapes,
        }

    def sizes(self):
        """Index ranges of the fields (four, then style and final where the model has them); the
        last index of position, bars-left and final is "none"."""
        sizes = [len(self.meters), len(MODES), self.max_bar_steps + 1, self.max_bars_left + 2]
        shapes = [SHAPES[name] + 1 for name in self.shapes]
        return sizes + [len(self.styles)] * bool(self.styles) + shapes

    def bar_steps(self, meter):
        steps = bar_steps(meter, self.time_step)
        return steps if steps and steps <= self.max_bar_steps else None

    def fields(self, plan, start, stop, length=None):
        """[[meter, mode, position, bars left(, style)(, final)]] for the predicted steps
        t = start .. stop - 1, as an int64 array [stop - start, fields].

        length: the song's steps (a real song's own); None = plan.bars bars, or open.
        """
        meter = self.meters.index(plan.meter if plan.meter in self.meters else UNKNOWN_METER)
        bar = self.bar_steps(plan.meter)
        if length is None and plan.bars is not None and bar is not None:
            length = plan.bars * bar
        t = np.arange(start, stop)
        rows = np.empty((len(t), len(self.sizes())), dtype=np.int64)
        rows[:, 0], rows[:, 1] = meter, MODES.index(plan.mode)
        rows[:, 2] = self.max_bar_steps if bar is None else (t + bar - plan.pickup) % bar
        if bar is None or length is None:
            rows[:, 3] = self.max_bars_left + 1
        else:  # ceil((length - t) / bar) in integers
            rows[:, 3] = np.clip(-((t - length) // bar), 0, self.max_bars_left)
        if self.styles:
            rows[:, 4] = self.styles.index(plan.style)
        for column, name in enumerate(self.shapes, len(rows[0]) - len(self.shapes)):
            if name == "form":
                rows[:, column] = form_column(plan, t, bar, length)
            else:
                value = getattr(plan, name)
                rows[:, column] = SHAPES[name] if value is None else value
        return rows

    def song_fields(self, plan, length):
        """The control rows of a whole song of `length` steps: its steps, then its closing `/`."""
        return self.fields(plan, 0, length + 1, length=length)

    def trained_meters(self):
        """The meters of the training songs, the ones a melody can be asked for (held-out songs may
        bring more, which the model knows only by name)."""
        return sorted({p.meter for p in self.plans if self.bar_steps(p.meter)})

    def trained_styles(self):
        """The collections of the training songs, the styles a melody can be asked for."""
        return sorted({p.style for p in self.plans if p.style})

    def check(
        self, meter=None, mode=None, pickup=None, bars=None, style=None, final=None, ambitus=None
    ):
        """Refuse controls this model cannot honour, each with one sentence saying what can be.

        final is asked as a scale degree, 1 (the tonic) to 7; ambitus in semitones."""
        if final is not None and (
            not isinstance(final, int) or isinstance(final, bool) or not 1 <= final <= 7
        ):
            raise ValueError(f"final must be a scale degree from 1 (the tonic) to 7, not {final!r}")
        if final is not None and "final" not in self.shapes:
            raise ValueError(
                "final: this model was trained before it existed; re-run preprocess.py and "
                "train.py to use it"
            )
        if ambitus is not None and (
            not isinstance(ambitus, int) or isinstance(ambitus, bool) or ambitus < 0
        ):
            raise ValueError(f"ambitus must be a whole number of semitones >= 0, not {ambitus!r}")
        if style is not None:
            known = self.trained_styles()
            if not known:
                raise ValueError(
                    f"style {style!r}: this model was trained on one collection and takes no "
                    "style; train one on songs of several collections to use it"
                )
            if style not in known:
                raise ValueError(f"style {style!r}: this model knows {', '.join(known)}")
        if meter is not None:
            parse_meter(meter)
            known = self.trained_meters()
            if meter not in known:
                raise ValueError(
                    f"meter {meter!r}: this model never saw it; it knows "
                    f"{', '.join(known) or 'no meter'}"
                )
        if mode is not None and mode not in {p.mode for p in self.plans}:
            seen = sorted({p.mode for p in self.plans})
            raise ValueError(f"mode {mode!r}: this model knows {' and '.join(seen)}")
        if bars is not None and (not isinstance(bars, int) or isinstance(bars, bool) or bars < 1):
            raise ValueError(f"bars must be a whole number >= 1, not {bars!r}")
        if pickup is not None:
            if not isinstance(pickup, int) or isinstance(pickup, bool) or pickup < 0:
                raise ValueError(f"pickup must be a whole number of steps >= 0, not {pickup!r}")
            if meter is not None and self.bar_steps(meter) and pickup >= self.bar_steps(meter):
                raise ValueError(
                    f"pickup {pickup} steps is a bar or more of {meter} "
                    f"({self.bar_steps(meter)} steps): it must be shorter than a bar"
                )

    def choose(
        self,
        rng,
        meter=None,
        mode=None,
        pickup=None,
        bars=None,
        style=None,
        final=None,
        ambitus=None,
    ):
        """A Plan with the given controls, the unset ones drawn from a training song that agrees;
        its form comes with it where the melody keeps the song's bars (forms: form.song_form).

        The draw is from the training songs with a known meter that match every control given,
        else those that match the meter and mode, the mode, the meter, or else all of them, each
        first among the songs of the style asked: the model picks as it learned. A final or an
        ambitus asked then prefers, among those, the songs that close on that degree or span
        that range.
        """
        self.check(meter, mode, pickup, bars, style, final, ambitus)
        pool = [p for p in self.plans if self.bar_steps(p.meter)] or self.plans
        if pickup is not None:  # a pickup asked for needs a meter whose bar is longer
            pool = [p for p in pool if (self.bar_steps(p.meter) or 0) > pickup]
            if not pool:
                raise ValueError(
                    f"pickup {pickup} steps is a bar or more of every meter this "
                    f"model knows ({', '.join(self.trained_meters())})"
                )
        asked = {"meter": meter, "mode": mode, "pickup": pickup, "bars": bars, "style": style}
        for keys in LEVELS:
            wanted = {k: asked[k] for k in keys}
            matches = [
                p for p in pool if all(v is None or getattr(p, k) == v for k, v in wanted.items())
            ]
            if matches:
                break
        if final is not None:  # songs that close on the degree asked, in their own mode
            matches = [p for p in matches if p.final == DEGREES[p.mode][final - 1]] or matches
        if ambitus is not None:
            matches = [p for p in matches if p.ambitus == ambitus] or matches
        drawn = rng.choice(matches) if matches else Plan(UNKNOWN_METER, MODES[0])
        plan = dataclasses.replace(
            drawn,
            meter=meter or drawn.meter,
            mode=mode or drawn.mode,
            pickup=drawn.pickup if pickup is None else pickup,
            bars=drawn.bars if bars is None else bars,
            style=style or drawn.style,
            form=drawn.form if bars in (None, drawn.bars) else None,
            notes=drawn.notes if bars in (None, drawn.bars) else None,
        )
        bar = self.bar_steps(plan.meter)
        if bar is not None and plan.pickup >= bar:  # a pickup drawn for another meter
            plan = dataclasses.replace(plan, pickup=plan.pickup % bar)
        if final is not None:
            plan = dataclasses.replace(plan, final=self.final_semitones(plan.mode, final))
        return plan if ambitus is None else dataclasses.replace(plan, ambitus=ambitus)

    def final_semitones(self, mode, degree):
        """The final field of scale degree `degree` in `mode`: refused where no training song of
        the mode ends there (the model would not know it)."""
        semitones = DEGREES[mode][degree - 1]
        seen = {p.final for p in self.plans if p.mode == mode and p.final is not None}
        if semitones not in seen:
            known = [str(d + 1) for d, s in enumerate(DEGREES[mode]) if s in seen]
            raise ValueError(
                f"final {degree}: no {mode} training song ends on that degree; this model "
                f"knows {', '.join(known)}"
            )
        return semitones


def song_plan(plan, symbols):
    """A training song's plan completed from its symbols, for generation to draw: its number of
    notes, and its form (form.song_form, for the model to be told too) where that covers its
    bars."""
    plan = dataclasses.replace(plan, notes=notes_of(symbols))
    text = forms.song_form(symbols, bar_steps(plan.meter), plan.pickup)
    if text is None or len(forms.parse_form(text).letters) != plan.bars:
        return plan
    return dataclasses.replace(plan, form=text)


def told_plans(plans, val_songs, untold_share, seed):
    """The plans as the model is told them: a share of the songs (drawn with the seed) without
    their form, so that the model also writes without one; and the validation songs without, as
    evaluate.py scores held-out songs (a song's form says which of its bars repeat: no plan field
    should give that away for free)."""
    untold = np.random.default_rng(seed).random(len(plans)) < untold_share
    untold[list(val_songs)] = True
    return [dataclasses.replace(p, form=None) if u else p for p, u in zip(plans, untold)]


def checkpoint_space(checkpoint):
    """The ControlSpace of a checkpoint's model; None for a model that reads symbols alone (its
    checkpoint holds none)."""
    return ControlSpace.from_dict(checkpoint["controls"]) if "controls" in checkpoint else None


def checkpoint_fields(checkpoint, plans, songs):
    """The control rows that a checkpoint's model reads for whole songs of these plans, as
    model.song_log_probs takes them; None for a model that reads symbols alone."""
    space = checkpoint_space(checkpoint)
    if space is None:
        return None
    return [space.song_fields(plan, len(song)) for plan, song in zip(plans, songs)]
