"""Generating melodies from a trained model: MelodyGenerator loads model.pth, samples melodies
(sampling.py) to a plan of meter, mode, length, style, final and ambitus (controls.py), and writes
them (outputs.py); Melody is what it returns; run is `python melodygenerator.py`.

    mg = MelodyGenerator()                                   # reads model.pth
    melody = mg.generate_melody("55 _ _ _ 60 _ _ _ 55 _ _ _ 55 _", 500, rng=0)
    mg.save_melody(melody)                                   # writes generated.mid
"""

import dataclasses
import random
import secrets
import sys
from pathlib import Path

import numpy as np
import torch

import config
from melody import artefacts, controls, outputs, render, sampling
from melody import form as forms
from melody import models as model
from melody.artefacts import UserError
from melody.cli import control_settings, flag_errors, sampling_settings
from melody.encoding import DELIMITER
from melody.primer import primer_opening
from melody.sampling import OPEN_END, check_count


class Melody(list):
    """A generated melody: its symbols, as the tutorial's list, and the plan it was made to
    (`plan`, a controls.Plan).

    meter ("3/4"), mode ("major"/"minor"; None for a model without controls), pickup (steps before
    the first barline), bars (its length in bars; None where open), style (the collection it
    was made like; None for a model of one collection), final (its planned last note, semitones
    above the tonic) and ambitus (its planned range, semitones; both None where not planned) read
    the plan; plan.notes is its planned number of notes. save_melody writes the score in that
    meter with that pickup.
    """

    def __init__(
        self,
        symbols=(),
        meter=config.TIME_SIGNATURE,
        mode=None,
        pickup=0,
        bars=None,
        style=None,
        final=None,
        ambitus=None,
        form=None,
        notes=None,
    ):
        super().__init__(symbols)
        self.plan = controls.Plan(meter, mode, pickup, bars, style, final, ambitus, form, notes)
        self.key = None  # the key save_melody writes it in by default (a primer's); None: C / Am
        self.opening = 0  # symbols from the seed or primer; the generated ones follow

    meter = property(lambda self: self.plan.meter)
    mode = property(lambda self: self.plan.mode)
    pickup = property(lambda self: self.plan.pickup)
    bars = property(lambda self: self.plan.bars)
    style = property(lambda self: self.plan.style)
    final = property(lambda self: self.plan.final)
    ambitus = property(lambda self: self.plan.ambitus)
    form = property(lambda self: self.plan.form)

    def __repr__(self):
        return f"Melody({list.__repr__(self)}, {self.plan})"

    def _repr_html_(self):
        """Jupyter shows a melody as its score and an audio player (C major / A minor, 16th steps,
        config.BPM); save_melody writes it in another key or tempo."""
        return render.melody_html(
            self,
            meter=outputs.score_meter(self.meter),
            pickup=self.pickup,
            key=outputs.default_key(self.mode),
            title=f"{len(self)}-step melody in {self.meter}",
            phrases=outputs.melody_phrases(self, config.TIME_STEP, self.meter, self.pickup),
        )


def default_model(model_path):
    """model_path, or the pretrained model (config.PRETRAINED_MODEL), saying so in one line, where
    model_path is the default MODEL_PATH and there is none."""
    if str(model_path) != config.MODEL_PATH or Path(model_path).is_file():
        return model_path
    if not Path(config.PRETRAINED_MODEL).is_file():
        raise UserError(
            f"{model_path} not found, nor the pretrained model {config.PRETRAINED_MODEL}: train "
            "one (python preprocess.py && python train.py), or pass --model (model_path=) a "
            "model.pth"
        )
    print(
        f"no {model_path} here: using the pretrained model {config.PRETRAINED_MODEL} "
        "(train.py makes your own)",
        file=sys.stderr,
    )
    return config.PRETRAINED_MODEL


class MelodyGenerator:
    def __init__(self, model_path=config.MODEL_PATH, mapping_path="auto", device="cpu"):
        """Load model.pth (vocabulary included); the mapping it was trained with, where it exists,
        must agree with it.

        model_path: the default (model.pth) falls back to the pretrained model where it is missing.
        mapping_path: "auto" is the mapping the checkpoint names, and none for the pretrained
            model fallen back to; None checks none.
        device: "cpu" is fastest for a few melodies; a GPU pays off for large batches.
        """
        resolved = default_model(model_path)
        pretrained, model_path = resolved != model_path, resolved
        checkpoint = artefacts.load_torch(model_path)
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError):  # unknown name, or a GPU this PyTorch cannot use
            raise UserError(f"device {device!r} is not available here: use cpu") from None
        try:
            self.model = model.load(checkpoint).to(self.device)
            self.vocabulary = list(checkpoint["vocabulary"])
            self.time_step = float(checkpoint["time_step"])
            # None: a model that reads symbols alone; it writes 4/4 and takes no controls
            self.controls = controls.checkpoint_space(checkpoint)
        except (KeyError, TypeError, RuntimeError, ValueError) as error:
            raise UserError(
                f"{model_path} does not hold a complete model ({type(error).__name__}): "
                "re-run train.py"
            ) from None
        if DELIMITER not in self.vocabulary or len(self.vocabulary) != self.model.vocab_size:
            raise UserError(f"{model_path} has an inconsistent vocabulary: re-run train.py")
        self.index = {symbol: i for i, symbol in enumerate(self.vocabulary)}
        if mapping_path == "auto":
            mapping_path = None if pretrained else checkpoint["mapping"]
        if mapping_path is not None and Path(mapping_path).is_file():
            self._check_mapping(Path(model_path), Path(mapping_path))

    def _check_mapping(self, model_path, mapping_path):
        mapping = artefacts.load_mapping(mapping_path)
        if sorted(mapping, key=mapping.get) == self.vocabulary:
            return
        if mapping_path.stat().st_mtime > model_path.stat().st_mtime:
            raise UserError(
                f"{mapping_path} does not match {model_path}: the model is stale (trained before "
                f"preprocess.py last ran); re-run train.py, or pass the mapping it was trained with"
            )
        raise UserError(
            f"{mapping_path} does not match {model_path}: the mapping is stale (older than the "
            "model); re-run preprocess.py and train.py, or pass the mapping the model was trained "
            "with"
        )

    def generate_melody(
        self,
        seed,
        num_steps,
        max_sequence_length=None,
        temperature=1.0,
        top_k=None,
        top_p=None,
        rng=None,
        meter=None,
        mode=None,
        bars=None,
        pickup=None,
        style=None,
        primer=None,
        primer_bars=config.PRIMER_BARS,
        final=None,
        ambitus=None,
        candidates=None,
        form=None,
        pitch_temperature=None,
    ):
        """Sample one melody: the seed's symbols, then up to num_steps generated ones (the final `/`
        left out), as a Melody (a list of symbols that knows its meter, mode, pickup and bars).

        seed: a space-separated string of symbols ("55 _ _ _ 60 _") or a list of them; "" or []
            starts the song from nothing.
        max_sequence_length: None (recommended): the model sees the whole melody through its
            carried state, as trained. An int N bounds the context like the tutorial's window: the
            state is rebuilt from `/` + the last N symbols each time N more are generated (the
            model conditions on N to 2N recent symbols, at about one extra step of work per step).
        temperature: sample from softmax(log p / temperature); below 1 is safer, above 1 wilder.
        pitch_temperature: the same among the pitches alone, how likely a note is to start kept
            (None: config.PITCH_TEMPERATURE; 1: the model's own distribution).
        top_k: sample only among the k likeliest symbols (1 = always the likeliest: greedy).
        top_p: sample only among the likeliest symbols up to that probability mass (nucleus).
        rng: an int or a torch.Generator; the same rng gives the same melody (None: torch's).
        meter ("3/4"), mode ("major" or "minor"), bars (the length in bars: the melody ends at the
            end of bar `bars`, its pickup counted as real songs count it, so it lasts
            bars * bar-length steps) and pickup (steps before the first barline): each one left
            as None is drawn, with the others, from a training song that agrees with those given.
            The melody then ends on the barline of its last bar (unless num_steps cuts it first).
        style: the collection the melody is to be like ("erk"), for a model trained on several
            (MelodyGenerator.styles lists them); None draws it with the rest of the plan.
        final: the scale degree the melody is to close on, 1 (the tonic) to 7; None draws it with
            the rest of the plan, as often as the training songs close there.
        ambitus: the semitones from the melody's lowest note to its highest (12: an octave), as
            near as its candidates come; None draws it with the rest of the plan.
        candidates: melodies sampled, as one batch, for each one returned (None:
            config.END_CANDIDATES): the one that fits the plan best is returned, closing on its
            final (which the model is told, but a sample may stray from) with the ambitus nearest
            the plan's (which the model is not told). 1: the melody as sampled.
        form: phrases that come back, "AABB" (melody/form.py); None: a training song's; "-": none.
        primer: a song file (MIDI, MusicXML, kern or ABC) whose first primer_bars bars the melody
            continues, instead of a seed (pass seed ""): they are moved to C major / A minor and
            fix the meter, mode and pickup; the Melody's `key` is the primer's, which save_melody
            writes it in.
        """
        return self.generate_melodies(
            seed,
            1,
            num_steps,
            max_sequence_length,
            temperature,
            top_k,
            top_p,
            rng,
            meter=meter,
            mode=mode,
            bars=bars,
            pickup=pickup,
            style=style,
            primer=primer,
            primer_bars=primer_bars,
            final=final,
            ambitus=ambitus,
            candidates=candidates,
            form=form,
            pitch_temperature=pitch_temperature,
        )[0]

    @torch.inference_mode()
    def generate_melodies(
        self,
        seed,
        n,
        num_steps,
        max_sequence_length=None,
        temperature=1.0,
        top_k=None,
        top_p=None,
        rng=None,
        meter=None,
        mode=None,
        bars=None,
        pickup=None,
        style=None,
        primer=None,
        primer_bars=config.PRIMER_BARS,
        final=None,
        ambitus=None,
        candidates=None,
        form=None,
        pitch_temperature=None,
    ):
        """Sample n melodies from the same seed (or primer) as one batch; a list of n Melody (see
        generate_melody). Each melody draws its own unset controls.
        """
        opening = None
        if primer is not None:
            asked = {"meter": meter, "mode": mode, "pickup": pickup}
            opening = primer_opening(primer, primer_bars, self.time_step, seed, asked)
            seed, meter, mode, pickup = opening.symbols, opening.meter, opening.mode, opening.pickup
        try:
            seed_indices = self._seed_indices(seed)
        except ValueError as error:
            raise ValueError(f"primer {primer}: {error}" if opening else str(error)) from None
        check_count("n", n, minimum=1)
        check_count("num_steps", num_steps, minimum=0)
        if max_sequence_length is not None:
            check_count("max_sequence_length", max_sequence_length, minimum=1)
        if pitch_temperature is None:
            pitch_temperature = config.PITCH_TEMPERATURE
        sampling.check_sampling(temperature, top_k, top_p, pitch_temperature)
        generator = sampling.make_generator(rng)
        given = {"meter": meter, "mode": mode, "bars": bars, "pickup": pickup, "style": style}
        plans = self._plans(n, len(seed_indices), generator, **given, final=final, ambitus=ambitus)
        plans = self._fit_form(form, plans, bars, len(seed_indices))
        stop = len(seed_indices) + num_steps
        fields, end = self._controls(plans, stop)
        k, chosen = sampling.candidates_to_sample(candidates, plans, end, stop)
        if k > 1:  # each melody's candidates are neighbouring rows, sampled as one batch
            plans = [plan for plan in plans for _ in range(k)]
            fields, end = fields.repeat_interleave(k, 0), end.repeat_interleave(k, 0)
        seed_rows = torch.tensor(seed_indices, dtype=torch.long).repeat(n * k, 1)  # [rows, seed]
        tokens = sampling.sample_symbols(
            self.model,
            seed_rows,
            num_steps,
            fields,
            end,
            index=self.index,
            device=self.device,
            max_sequence_length=max_sequence_length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            pitch_temperature=pitch_temperature,
            copying=self._copying(plans, seed_rows, num_steps),
        )
        melodies = self._melodies(seed_indices, tokens, plans, opening)
        return sampling.choose(melodies, k, chosen, self.time_step)

    @property
    def styles(self):
        """The styles (collections) this model can be asked for; [] for a model of one."""
        return self.controls.trained_styles() if self.controls else []

    def _plans(self, n, seed_length, generator, **given):
        """Each melody's controls.Plan: the controls given, the others drawn per melody."""
        bars = given["bars"]
        if self.controls is None:
            if any(v is not None for v in given.values()):
                raise ValueError(
                    "this model was trained before meter, mode, bars, pickup, final and "
                    "ambitus existed: re-run preprocess.py and train.py to use them"
                )
            return [controls.Plan(config.TIME_SIGNATURE, None)] * n
        self.controls.check(**given)
        # The draws follow the sampling RNG, so the same rng gives the same plans.
        draw = random.Random(int(torch.randint(2**62, (1,), generator=generator)))
        plans = []
        for _ in range(n):
            plan = self.controls.choose(draw, **given)
            bar = self.controls.bar_steps(plan.meter)
            if bar and plan.bars is not None and plan.bars * bar <= seed_length:
                if bars is not None:
                    raise ValueError(
                        f"the seed ({seed_length} steps) fills {bars} bars of "
                        f"{plan.meter} already: ask for more bars"
                    )
                plan = dataclasses.replace(plan, bars=seed_length // bar + 1, form=None)
            plans.append(plan)
        return plans

    def _fit_form(self, form, plans, bars, seed_length):
        """Each plan with the form asked and the bars it needs (form: form.py's notation; None:
        the forms drawn with the plans; "-": none); a form that does not fit the bars asked, or
        the seed, is a ValueError."""
        if form is None or form == forms.NO_FORM:
            return plans if form is None else [dataclasses.replace(p, form=None) for p in plans]
        form = forms.parse_form(form)
        if self.controls is None:
            raise ValueError(
                f"form {form.text!r} needs bars, and this model was trained before bars existed: "
                "re-run preprocess.py and train.py to use it"
            )
        fitted = []
        for plan in plans:
            bar = self.controls.bar_steps(plan.meter)
            plan = dataclasses.replace(plan, bars=form.fit(bars, bar)[0], form=form.text)
            if plan.bars * bar <= seed_length:
                raise ValueError(
                    f"form {form.text!r}: the seed ({seed_length} steps) fills its {plan.bars} "
                    f"bars of {plan.meter} already: ask for more bars"
                )
            fitted.append(plan)
        return fitted

    def _copying(self, plans, seed_rows, num_steps):
        """The sampling.Copying that makes each row follow its plan's form; None where no plan
        has one."""
        if not any(p.form for p in plans):
            return None
        copies = [
            forms.parse_form(p.form).copies(p.bars, self.controls.bar_steps(p.meter), p.pickup)
            if p.form
            else []
            for p in plans
        ]
        return sampling.Copying(copies, seed_rows, num_steps, self.index)

    def _controls(self, plans, steps):
        """The control fields of steps 0..steps [n, steps + 1, fields], and the step at which each
        melody's `/` falls [n] (a huge number where the length is open); (None, None) for a model
        without controls."""
        if self.controls is None:
            return None, None
        fields = torch.from_numpy(np.stack([self.controls.fields(p, 0, steps + 1) for p in plans]))
        ends = [
            p.bars * self.controls.bar_steps(p.meter)
            if p.bars and self.controls.bar_steps(p.meter)
            else OPEN_END
            for p in plans
        ]
        return fields.to(self.device), torch.tensor(
            ends
        )  # ends meet the sampled symbols on the CPU

    def _seed_indices(self, seed):
        symbols = seed.split() if isinstance(seed, str) else [str(s) for s in seed]
        unknown = sorted(
            {s for s in symbols if s not in self.index or s == DELIMITER}, key=symbols.index
        )
        if unknown:
            valid = " ".join(s for s in self.vocabulary if s != DELIMITER)
            raise ValueError(
                f"seed symbols not in the model's vocabulary: {' '.join(unknown)} "
                f"(`/` marks the song start, which generation adds itself); valid symbols: {valid}"
            )
        return [self.index[s] for s in symbols]

    def _melodies(self, seed_indices, tokens, plans, opening):
        """A Melody per row of sampled tokens: the seed's symbols, then the row's up to its `/`."""
        delimiter = self.index[DELIMITER]
        seed_symbols = [self.vocabulary[i] for i in seed_indices]
        melodies = []
        for row, plan in zip(tokens.tolist(), plans):
            stop = row.index(delimiter) if delimiter in row else len(row)
            melody = Melody(seed_symbols + [self.vocabulary[i] for i in row[:stop]], **vars(plan))
            melody.opening = len(seed_symbols)
            melody.key = opening.key if opening else None
            melodies.append(melody)
        return melodies

    def save_melody(
        self,
        melody,
        step_duration=None,
        format="midi",
        file_name=config.OUTPUT_PATH,
        bpm=config.BPM,
        key=None,
        time_signature=None,
        pickup=None,
    ):
        """Write a melody (symbols, or a space-separated string); returns the path written.

        The suffix of file_name decides what: .mid/.midi MIDI, .musicxml/.xml/.mxl (compressed)
        MusicXML, .svg and .png the score drawn (verovio; resvg for PNG), .wav the melody played
        (render.wav_bytes). Any other suffix takes `format`.
        step_duration: quarter lengths per symbol; None = the model's time step (0.25, a 16th note).
        format: "midi" or "musicxml"; format="musicxml" with a .mid name writes <name>.musicxml.
        key: e.g. "G", "e" (lower case: minor), "F# minor", "Bb major". The model writes in C
            major / A minor; the melody is moved by exactly the inverse of preprocess.py's shift
            into C/Am, so "G" moves it up 7 semitones, "F" up 5, "e" down 5, "d" down 7 (tonic in
            octave 4, as in encoding.transposition_semitones), and spelt in that key. None takes
            the Melody's own `key` (a primer's), else leaves it in C major / A minor (by its mode).
        bpm: quarter notes per minute (MIDI, MusicXML and WAV).
        time_signature, pickup: the bars of the score; None takes the Melody's own (a plain list:
            4/4, no pickup).
        """
        step_duration = self.time_step if step_duration is None else step_duration
        return outputs.write_melody(
            melody, step_duration, format, file_name, bpm, key, time_signature, pickup
        )

    def regenerate(
        self,
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
        """A new Melody with the bars asked sampled again, every other bar kept exactly, and the
        melody's meter, mode, pickup, length, style and key (melody/editing.py says how).

        bars: bar numbers as the score numbers them (the pickup is bar 0, the first full bar bar
            1), e.g. [3, 4]; None: all of them. A bar outside the melody is a ValueError.
        keep: None, or "rhythm": new pitches over the same onsets, holds and rests.
        candidates: samples of each run of bars, weighed by how likely the model finds the kept
            bars after them (None: config.EDIT_CANDIDATES); rng, temperature, top_k, top_p,
            pitch_temperature: as generate_melody takes them.
        """
        from melody import editing  # editing builds on this module

        return editing.regenerate(
            self, melody, bars, keep, rng, candidates, temperature, top_k, top_p, pitch_temperature
        )


def run(args):
    """`python melodygenerator.py`: sample args.num_melodies melodies and write each to every
    --output file, saying what each is; a bad flag value is a UserError."""
    random_seed = args.random_seed if args.random_seed is not None else secrets.randbelow(2**31)
    if args.seed is None:
        args.seed = "" if args.primer else config.SEED_MELODY
    generator = MelodyGenerator(args.model, args.mapping, device=args.device)
    files = [Path(name) for name in args.output]
    with flag_errors():
        if args.key is not None:  # settings for the files are checked before the work of sampling
            outputs.parse_key(args.key)
        outputs.check_score_settings(generator.time_step, args.bpm, None)
        melodies = generator.generate_melodies(
            args.seed,
            args.num_melodies,
            rng=random_seed,
            primer=args.primer,
            primer_bars=args.primer_bars,
            **sampling_settings(args),
            **control_settings(args),
        )
        for i, melody in enumerate(melodies, start=1):
            new, plan = len(melody) - melody.opening, describe_plan(melody, generator.time_step)
            print(
                f"melody {i} ({plan}; {new} symbols after the "
                f"{'primer (in ' + melody.key + ')' if args.primer else 'seed'}"
                f"{', then /' if new < args.steps else ''}): {' '.join(melody)}"
            )
            for output in files:
                name = (
                    output
                    if len(melodies) == 1
                    else output.with_name(f"{output.stem}_{i}{output.suffix}")
                )
                path = generator.save_melody(
                    melody, format=args.format, file_name=name, bpm=args.bpm, key=args.key
                )
                print(f"wrote {path}")
    print(f"random seed {random_seed} (pass --random-seed {random_seed} to repeat this run)")


def describe_plan(melody, time_step):
    """The plan a melody was made to, in a few words, and the phrases it has: "2/4, major, pickup
    2, 8 bars, final 1, form AABB, phrases AABB"."""
    bar = controls.bar_steps(melody.meter, time_step)
    # A form drawn with the plan is a training song's, bar by bar ("ABA~C.../1"): long to read,
    # so only a form asked is said; the phrases, read back, say what came back.
    asked = melody.form and not melody.form.endswith("/1") and bar and melody.bars
    length = forms.parse_form(melody.form).fit(melody.bars, bar)[1] if asked else None
    phrases = forms.phrase_form(melody, bar, length, melody.pickup) if bar else []
    return (
        f"{melody.meter}, {melody.mode or 'no mode'}, pickup {melody.pickup}"
        + (f", {melody.bars} bars" if melody.bars else "")
        + (f", style {melody.style}" if melody.style else "")
        + (
            f", final {controls.degree(melody.mode, melody.final)}"
            if melody.final is not None
            else ""
        )
        + (f", ambitus {melody.ambitus}" if melody.ambitus is not None else "")
        + (f", form {melody.form}" if asked else "")
        + (f", phrases {''.join(phrases)}" if phrases else "")
    )
