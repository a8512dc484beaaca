"""IDyOM's short-term model beside a neural long-term model (Pearce 2005; Pearce, Conklin &
Wiggins 2004), for bench/idyom.py's `ltm+stm` figures.

The short-term model (STM) learns from the song so far and nothing else: PPM* models (IDyOM's
ppm-star.lisp) with IDyOM's STM defaults (mvs/params.lisp) but for the escape: unbounded order,
the shortest deterministic context selected (else the longest one that occurred before),
interpolated (`mixtures`), update exclusion, and exclusion of the symbols a longer context
predicted from the next shorter context's token count. What varies is an `STM`: the escape
method (IDyOM's A, B, C, D or X), the viewpoints, as IDyOM's cpitch and cpint (one model of the
pitches, over the pitch symbols the neural model predicts among; one of the intervals between
successive notes, each pitch given the probability of its interval from the note before,
renormalised over the pitches), how they are combined and the two biases; the defaults are
config's IDYOM_STM_* constants, config.IDYOM_STM_VARIANTS names others.

The long-term model (LTM) is the neural model's distribution over those pitches at the note's
onset, renormalised (melody.evaluation.surprisal.onset_pitch_log_probs). Distributions are
combined by IDyOM's weighted geometric mean: each distribution's weight is its relative entropy
(its entropy over log2 of the alphabet's size) to the power -bias, the log-probabilities
averaged with the normalised weights, then renormalised. As IDyOM does (`viewpoints-first`),
the STM's viewpoints are combined first (viewpoint bias), then LTM and STM (ltm-stm bias);
`at-once` combines the LTM and every STM viewpoint in one mean (ltm-stm bias). The biases are
IDyOM's defaults, not fitted to the songs.
"""

import dataclasses

import numpy as np

import config

# IDyOM's (k, d) per escape method: k added to each seen symbol's count, d dividing the types
ESCAPES = {"a": (0, 1), "b": (-1, 1), "c": (0, 1), "d": (-0.5, 2), "x": (0, 1)}
COMBINATIONS = ["viewpoints-first", "at-once"]


@dataclasses.dataclass(frozen=True)
class STM:
    """A short-term model's settings (defaults: config's IDYOM_STM_* and *_BIAS constants)."""

    escape: str = config.IDYOM_STM_ESCAPE
    viewpoints: tuple = tuple(config.IDYOM_STM_VIEWPOINTS)
    combine: str = config.IDYOM_STM_COMBINE
    viewpoint_bias: float = config.IDYOM_VIEWPOINT_BIAS
    ltm_stm_bias: float = config.IDYOM_LTM_STM_BIAS

    @classmethod
    def named(cls, name):
        """The variant config.IDYOM_STM_VARIANTS calls name: its changes to the defaults."""
        changes = dict(config.IDYOM_STM_VARIANTS[name])
        return cls(**changes | {"viewpoints": tuple(changes.get("viewpoints", cls.viewpoints))})

    def settings(self):
        """The settings as JSON has them."""
        biases = {"viewpoint_bias": float(self.viewpoint_bias)}
        biases["ltm_stm_bias"] = float(self.ltm_stm_bias)
        return dataclasses.asdict(self) | {"viewpoints": list(self.viewpoints)} | biases


class PPM:
    """A PPM* model of symbols 0..size-1 that learns from one sequence as it goes: `predict`
    the next symbol's distribution, then `learn` the symbol that came."""

    def __init__(self, size, escape=config.IDYOM_STM_ESCAPE, update_exclusion=True):
        self.size = size
        self.escape = escape
        self.update_exclusion = update_exclusion
        self.history = []
        self.full = {}  # context (tuple of symbols) -> counts of what followed it
        self.excluded = {}  # the same, update-excluded: where each symbol was new or found

    def chain(self):
        """The suffixes of the history that have been followed by a symbol before, longest
        first (a suffix that never occurred has no longer one that did)."""
        found = []
        for k in range(len(self.history) + 1):
            context = tuple(self.history[len(self.history) - k :])
            if context not in self.full:
                break
            found.append(context)
        return found[::-1]

    def select(self, chain):
        """PPM*'s state: the shortest deterministic context (one symbol ever followed it) on
        the run of deterministic ones from the longest, else the longest; and whether a shorter
        one than the longest was selected."""
        k = 0
        if np.count_nonzero(self.full[chain[0]]) == 1:
            while k + 1 < len(chain) and np.count_nonzero(self.full[chain[k + 1]]) == 1:
                k += 1
        return k, k > 0

    def predict(self):
        """The distribution of the next symbol: each context's estimate from the selected one
        down to the empty one, blended by its weight; what escapes goes to a uniform order -1."""
        chain = self.chain()
        if not chain:
            return np.full(self.size, 1.0 / self.size)
        start, selected = self.select(chain)
        probs, escape, before = np.zeros(self.size), 1.0, None
        k, d = ESCAPES[self.escape]
        for i, context in enumerate(chain[start:]):
            # IDyOM: full counts at a selected (shorter, deterministic) state, else excluded
            whole = (i == 0 and selected) or not self.update_exclusion
            seen = (self.full if whole else self.excluded)[context]
            if self.escape == "x":  # the symbols seen once, and one
                types = 1 + np.count_nonzero(seen == 1)
            else:
                types = np.count_nonzero(seen)
            counts = np.where(seen > 0, seen + k, 0.0)
            tokens = counts.sum() if before is None else counts[~before].sum()
            denominator = tokens + (1 if self.escape == "a" else types / d)
            weight = tokens / denominator if denominator > 0 else 0.0
            if tokens > 0:
                probs += escape * weight * counts / tokens
            escape *= 1.0 - weight
            before = seen > 0
        known = np.count_nonzero(self.full[()])
        probs += escape / (self.size + 1 - known)
        return probs / probs.sum()

    def learn(self, symbol):
        """Count symbol after every suffix of the history; update-excluded, only in the contexts
        where it was new and in the longest one where it had been seen."""
        n = len(self.history)
        contexts = [tuple(self.history[n - k :]) for k in range(n + 1)]
        found = -1
        for k, context in enumerate(contexts):
            if context not in self.full:
                break
            if self.full[context][symbol] > 0:
                found = k
        for k, context in enumerate(contexts):
            self.full.setdefault(context, np.zeros(self.size))[symbol] += 1
            excluded = self.excluded.setdefault(context, np.zeros(self.size))
            if k >= found or not self.update_exclusion:
                excluded[symbol] += 1
        self.history.append(symbol)


def stm_probs(notes, size, escape=config.IDYOM_STM_ESCAPE):
    """The pitch STM's [len(notes), size] distributions: each note's, from those before it
    (notes: each note's pitch as a column)."""
    model = PPM(size, escape=escape)
    rows = []
    for note in notes:
        rows.append(model.predict())
        model.learn(int(note))
    return np.array(rows).reshape(len(rows), size)


def interval_stm_probs(notes, midi, escape=config.IDYOM_STM_ESCAPE):
    """The interval STM's [len(notes), pitches] distributions (midi: each column's MIDI number):
    a PPM* model of the intervals between the song's earlier notes, each pitch given the
    probability of its interval from the note before; flat at the first note."""
    midi = np.asarray(midi)
    span = int(midi.max() - midi.min())
    model = PPM(2 * span + 1, escape=escape)  # every interval between two of the pitches
    rows = [np.full(len(midi), 1.0 / len(midi))]
    for before, note in zip(notes, notes[1:]):
        probs = model.predict()[midi - midi[before] + span]
        rows.append(probs / probs.sum())
        model.learn(int(midi[note] - midi[before] + span))
    return np.array(rows[: len(notes)]).reshape(len(notes), len(midi))


def entropy_weights(probs, bias):
    """IDyOM's weight of each distribution (the last axis): relative entropy ** -bias."""
    p = np.clip(probs, 1e-300, 1.0)
    entropy = -(probs * np.log2(p)).sum(-1)
    relative = entropy / np.log2(probs.shape[-1])
    return np.maximum(relative, 1e-12) ** -bias


def combine(probs, bias):
    """IDyOM's geometric combination of the models' distributions (probs: [models, ..., size]):
    the log-probabilities averaged with the normalised entropy weights, renormalised."""
    weights = entropy_weights(probs, bias)
    weights = weights / weights.sum(0)
    log = (weights[..., None] * np.log(np.clip(probs, 1e-300, 1.0))).sum(0)
    log -= log.max(-1, keepdims=True)
    combined = np.exp(log)
    return combined / combined.sum(-1, keepdims=True)


def ltm_stm_bits(ltm_log_probs, notes, midi, stm=STM()):
    """Each note's bits under the long-term model's distributions (a [notes, pitches] array of
    log-probabilities at the onsets; midi: each column's MIDI number) combined with the STM
    learnt from the song's earlier notes (notes: each note's pitch as a column)."""
    ltm = np.exp(np.asarray(ltm_log_probs, dtype=float))
    notes = np.asarray(notes, dtype=int)
    viewpoints = {
        "pitch": lambda: stm_probs(notes, ltm.shape[1], stm.escape),
        "interval": lambda: interval_stm_probs(notes, midi, stm.escape),
    }
    stms = np.stack([viewpoints[name]() for name in stm.viewpoints])
    if stm.combine == "at-once":
        models = np.concatenate([ltm[None], stms])
    else:
        short = stms[0] if len(stms) == 1 else combine(stms, stm.viewpoint_bias)
        models = np.stack([ltm, short])
    combined = combine(models, stm.ltm_stm_bias)
    return -np.log2(combined[np.arange(len(notes)), notes])
