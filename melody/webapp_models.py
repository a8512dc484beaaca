"""The web app's models: the checkpoints it finds (by name, never by path), each loaded once and
kept, one that cannot be loaded listed as unusable; and the controls each one takes, as the page
draws them.
"""

import threading
from pathlib import Path

import config
from melody.encoding import DELIMITER
from melody.generation import MelodyGenerator

ROOT = Path(__file__).resolve().parent.parent  # the repository: models are found from here
# The page's key choice: a tonic; the melody's own mode makes it G major or G minor (a tonic
# past 7 sharps or flats in that mode is spelt as its enharmonic: Db minor is C# minor).
KEY_CHOICES = ["C", "G", "D", "A", "E", "B", "F#", "C#", "F", "Bb", "Eb", "Ab", "Db", "Gb", "Cb"]


class Refused(Exception):
    """A request the app refuses: an HTTP status and one sentence for the user."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def model_name(path, root):
    """A model's name: its folder's ("deutschl-lstm"), or "model" for root's own model.pth."""
    folder = path.resolve().parent
    return "model" if folder == Path(root).resolve() else folder.name


def find_models(root=ROOT, extra=None, globs=config.WEB_MODEL_GLOBS):
    """{name: path} of the model.pth files found under root, `extra` first; a name taken twice
    gets its folder's parent too ("runs/essen")."""
    paths = [Path(extra)] if extra else []
    for pattern in globs:
        paths += sorted(Path(root).glob(pattern))
    found, seen = {}, set()
    for path in paths:
        if path.is_file() and path.resolve() not in seen:
            seen.add(path.resolve())
            name = model_name(path, root)
            if name in found:
                name = f"{path.resolve().parent.parent.name}/{name}"
            found.setdefault(name, path)
    return found


class Models:
    """The checkpoints the app offers, each loaded once (again only when its file changes); one
    that cannot be loaded is kept as its one-line reason."""

    def __init__(self, root=ROOT, extra=None):
        self.root, self.extra = root, extra
        self.cache = {}  # name -> (path, mtime, generator or the reason it is unusable)
        self.lock = threading.Lock()

    def available(self):
        return find_models(self.root, self.extra)

    def load(self, name, path):
        """The generator of a found model, or the sentence saying why it cannot be used."""
        stamp = path.stat().st_mtime_ns
        with self.lock:  # one load per file, even when requests for it arrive together
            cached = self.cache.get(name)
            if cached is None or cached[:2] != (path, stamp):
                cached = (path, stamp, self._open(path))
                self.cache[name] = cached
        return cached[2]

    @staticmethod
    def _open(path):
        mapping = path.with_name(config.MAPPING_PATH)
        try:
            return MelodyGenerator(path, mapping if mapping.is_file() else None)
        except Exception as error:  # torch and pickle raise many kinds; each one means unusable
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            return f"cannot be loaded: {reason[:200]}"

    def listing(self, limits):
        """GET /api/models's list: each model's controls and symbols, or why it is unusable."""
        out = []
        for name, path in self.available().items():
            loaded = self.load(name, path)
            if isinstance(loaded, str):
                out.append({"id": name, "usable": False, "error": loaded})
                continue
            out.append(
                {
                    "id": name,
                    "usable": True,
                    "controls": control_specs(loaded, limits),
                    "vocabulary": [s for s in loaded.vocabulary if s != DELIMITER],
                }
            )
        return out

    def get(self, name=None):
        """(name, generator) of a usable model; None: the first usable one."""
        found = self.available()
        if name is None:
            usable = [n for n, p in found.items() if not isinstance(self.load(n, p), str)]
            if not usable:
                raise Refused(
                    404,
                    "no usable model found (model.pth, runs/*/model.pth, pretrained/*/model.pth): "
                    "run preprocess.py and train.py first",
                )
            name = usable[0]
        if name not in found:
            raise Refused(404, f"model {name[:80]!r} not found; available: {', '.join(found)}")
        loaded = self.load(name, found[name])
        if isinstance(loaded, str):
            raise Refused(409, f"model {name!r} {loaded}")
        return name, loaded


def control_specs(generator, limits):
    """The generation controls this model takes, as the page draws them (in this order), each with
    a line of help.

    A control a checkpoint adds (a style, say) is one more entry here and one more field of
    GenerateRequest passed on to generate_melodies.
    """
    specs = [
        {"name": "steps", "label": "length (most steps)", "kind": "int", "min": 1,
         "max": limits["steps"], "default": config.WEB_STEPS,
         "help": "the most 16th-note steps generated after the seed; a melody asked for in bars "
                 "gets the steps its bars need"},
        {"name": "num_melodies", "label": "melodies", "kind": "int", "min": 1,
         "max": limits["melodies"], "default": 1, "help": "how many melodies to make at once"},
        {"name": "temperature", "label": "temperature", "kind": "number", "min": 0.05,
         "max": config.WEB_MAX_TEMPERATURE, "step": 0.05, "default": config.TEMPERATURE,
         "help": "1 follows the model; lower is safer and plainer, higher is wilder"},
        {"name": "pitch_temperature", "label": "pitch temperature", "kind": "number",
         "min": 0.05, "max": config.WEB_MAX_TEMPERATURE, "step": 0.05,
         "default": config.PITCH_TEMPERATURE,
         "help": "the same for which note comes, not when: 1 follows the model; lower stays "
                 "nearer the likeliest notes"},
        {"name": "top_p", "label": "top-p", "kind": "number", "min": 0.05, "max": 1,
         "step": 0.05, "default": config.TOP_P or 1,
         "help": "draw only from the likeliest symbols that make up this share; 1: all"},
        {"name": "key", "label": "key (tonic)", "kind": "select", "options": KEY_CHOICES,
         "default": None, "none": "C / A (as made)",
         "help": "the key the melody is written and played in; its mode makes it major or minor"},
        {"name": "bpm", "label": "tempo (bpm)", "kind": "number", "min": config.WEB_MIN_BPM,
         "max": config.WEB_MAX_BPM, "step": 1, "default": config.BPM,
         "help": "quarter notes per minute, for the sound and the MIDI file"},
    ]  # fmt: skip
    if generator.controls is not None:
        specs += plan_specs(generator.controls)
    specs.append(
        {"name": "random_seed", "label": "random seed", "kind": "int", "min": 0,
         "max": 2**63 - 1, "default": None, "none": "fresh",
         "help": "the same seed and settings make the same melody; empty: a new one"}
    )  # fmt: skip
    specs.append(
        {"name": "surprisal", "label": "surprisal", "kind": "bool", "default": False,
         "help": "draw under each score how surprising the model finds each note: the bits of "
                 "its pitch, its onset given (high: unexpected)"}
    )  # fmt: skip
    return specs


def plan_specs(space):
    """The controls of a model trained with them: the melody's plan, each left to the model."""
    specs = [
        {"name": "meter", "label": "meter", "kind": "select", "options": space.trained_meters(),
         "default": None, "none": "drawn", "help": "the time signature"},
        {"name": "mode", "label": "mode", "kind": "select",
         "options": sorted({p.mode for p in space.plans}), "default": None, "none": "drawn",
         "help": "major or minor"},
        {"name": "bars", "label": "bars", "kind": "int", "min": 1, "max": config.WEB_MAX_BARS,
         "default": None, "none": "drawn", "help": "the melody's length in bars"},
        {"name": "pickup", "label": "pickup (16ths)", "kind": "int", "min": 0,
         "max": space.max_bar_steps - 1, "default": None, "none": "drawn",
         "help": "16th notes before the first barline (an upbeat); 0: none"},
    ]  # fmt: skip
    if space.styles:
        specs.append(
            {"name": "style", "label": "style", "kind": "select",
             "options": space.trained_styles(), "default": None, "none": "drawn",
             "help": "the collection the melody should sound like"}
        )  # fmt: skip
    if "final" in space.shapes:
        specs.append(
            {"name": "final", "label": "final (scale degree)", "kind": "int", "min": 1,
             "max": 7, "default": None, "none": "drawn",
             "help": "the scale degree of the last note; 1: the tonic"}
        )  # fmt: skip
    specs.append(
        {"name": "ambitus", "label": "ambitus (semitones)", "kind": "int", "min": 0,
         "max": config.WEB_MAX_AMBITUS, "default": None, "none": "drawn",
         "help": "the span from the lowest note to the highest; 12: an octave"}
    )  # fmt: skip
    specs.append(
        {"name": "form", "label": "form", "kind": "text", "default": None, "none": "drawn",
         "help": "the phrases' pattern, such as AABB, ABA'C or AA^B; empty: a real song's; -: none"}
    )  # fmt: skip
    return specs
