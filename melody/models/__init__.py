"""The melody models, one module per architecture (lstm.py, transformer.py), and the contract
through which the scripts use them: the registry, build, load, and scoring songs.

Every model reads the same inputs: one symbol per step and, beside it, the control fields of the
step it predicts (controls.py: meter, mode, position in the bar, bars left, style, final); a model
whose control_sizes is empty reads symbols alone. Training, scoring and generation give it the
same context: it reads one `/` (the song start), then the song, and at every step predicts the
next symbol.

The contract. Training, generation and evaluation hold no architecture-specific code: a model is
an nn.Module class in ARCHITECTURES, and this is all they ask of it.

    For the trainer (the class, then the model):
    arch                        the name of train.py --arch, saved in the checkpoint
    SETTINGS                    its own settings: name -> (config name of the default, argparse
                                keywords of the flag)
    TRAINS_ON                   "windows": settings["seq_len"] steps cut from the songs laid end
                                to end, each read from a fresh state; "songs": each song whole
    LEARNING_RATES              the config names of its default --lr and --min-lr
    SETTING_NAMES               (optional) {hyperparameter: setting} where the two names differ
    from_settings(vocab_size, control_sizes, settings)   a fresh model (a classmethod)
    problems(settings)          [(setting, whether its value is bad, what it must be)]
    model.optimizer(lr, settings)
    model(x, controls)          logits [batch, time, vocab] of x [batch, time] read from the song
                                start, with controls [batch, time, fields] (None without fields)
    model.hyperparameters()     the keywords of its __init__, saved so that load() rebuilds it

    For the sampler and scoring:
    model.vocab_size, model.control_sizes    the sizes of its inputs
    model.read(x, controls)     (the next step's logits [batch, vocab], state) after reading x
    model.step(symbols, controls, state)     (logits, state) after one more symbol per melody
                                [batch], with that step's controls [batch, fields]

The state is the model's own business (an LSTM's (h, c) per layer; a Transformer's key-value
cache). load() takes a checkpoint in its current form: artefacts.load_torch passes every file
through checkpoints.upgrade.
"""

import contextlib
import threading

import torch

import config
from melody.models.lstm import MelodyLSTM
from melody.models.transformer import MelodyTransformer

ARCHITECTURES = {model.arch: model for model in (MelodyLSTM, MelodyTransformer)}


def build(arch, vocab_size, control_sizes, settings):
    """A fresh model of `arch` ("lstm" or "transformer") from train.py's settings."""
    return ARCHITECTURES[arch].from_settings(vocab_size, control_sizes, settings)


def default_settings(arch):
    """An architecture's settings from config (read when called, so a notebook may change it)."""
    return {name: getattr(config, key) for name, (key, _) in ARCHITECTURES[arch].SETTINGS.items()}


def load(checkpoint):
    """The model a checkpoint (in its current form: checkpoints.upgrade) holds, in eval mode."""
    arch = checkpoint["arch"]
    if arch not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"unknown architecture {arch!r}: this code knows {known}")
    model = ARCHITECTURES[arch](**checkpoint["hyperparameters"])
    model.load_state_dict(checkpoint["model_state"])
    return model.eval()


def warm_start(model, checkpoint):
    """A fresh model started from a checkpoint's weights (train.py --init-from): of the same
    architecture and sizes, but its control fields may be more (a field added, as the form was),
    and those tensors larger. Each takes the checkpoint's values where the two overlap, so that
    the old fields read as before; what is new keeps its fresh initialisation. A ValueError where
    a tensor is missing or smaller."""
    state = model.state_dict()
    for name, saved in checkpoint["model_state"].items():
        fresh = state.get(name)
        smaller = fresh is None or fresh.dim() != saved.dim()
        if smaller or any(map(int.__lt__, fresh.shape, saved.shape)):
            raise ValueError(f"{name}: the checkpoint's {tuple(saved.shape)} does not fit")
        fresh[tuple(slice(0, n) for n in saved.shape)] = saved
    model.load_state_dict(state)
    return model


_threads_lock, _threads_users, _threads_before = threading.Lock(), 0, None


@contextlib.contextmanager
def sampling_threads(batch, device):
    """One torch thread while sampling a small batch on the CPU, then the setting as it was.

    A step of a small batch is a few tiny matrix products: splitting them over threads costs more
    in synchronisation than it saves. Batches above config.SMALL_BATCH keep torch's threads.
    Callers in several threads (the web app) share it: the first sets, the last restores.
    """
    global _threads_users, _threads_before
    if torch.device(device).type != "cpu" or batch > config.SMALL_BATCH:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


@torch.no_grad()
def song_log_probs(model, songs, delimiter_index, batch_size=64, device="cpu", controls=None):
    """Log-probabilities the model gives every target step of every song, with the generation
    context.

    For each song (a list of symbol indices, no delimiters) the input is [/] + song from the song
    start (an LSTM's zero state; a Transformer's window of `context` steps, as in generation) and
    the targets are song + [/]; controls, for a model that reads them, holds each song's
    [len(song) + 1, fields] control rows (controls.ControlSpace.fields). Returns a list of
    [len(song) + 1, vocab] float32 CPU tensors.
    """
    model.eval()
    out = [None] * len(songs)
    # Similar lengths together: little padding.
    order = sorted(range(len(songs)), key=lambda i: len(songs[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = len(songs[batch[-1]]) + 1
        x = torch.full((len(batch), width), delimiter_index, dtype=torch.long)
        c = torch.zeros((len(batch), width, len(model.control_sizes)), dtype=torch.long)
        for row, i in enumerate(batch):
            x[row, 1 : len(songs[i]) + 1] = torch.tensor(songs[i], dtype=torch.long)
            if model.control_sizes:
                c[row, : len(songs[i]) + 1] = torch.as_tensor(controls[i], dtype=torch.long)
        logits = model(x.to(device), controls=c.to(device))
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for row, i in enumerate(batch):  # padding comes after: it cannot affect these steps
            out[i] = log_probs[row, : len(songs[i]) + 1]
    return out


def score(log_probs, songs, delimiter_index, hold_index=None):
    """NLL (nats per step) and accuracy over the targets song + [/] of every song.

    With hold_index, also the NLL of hold steps (`_`) and of onset steps (everything else) apart.
    """
    nll, correct, hold_nll, hold_steps = 0.0, 0, 0.0, 0
    steps = 0
    for lp, song in zip(log_probs, songs):
        targets = torch.tensor(list(song) + [delimiter_index], dtype=torch.long)
        step_nll = -lp.gather(1, targets[:, None]).squeeze(1).double()
        nll += step_nll.sum().item()
        correct += (lp.argmax(1) == targets).sum().item()
        steps += len(targets)
        if hold_index is not None:
            is_hold = targets == hold_index
            hold_nll += step_nll[is_hold].sum().item()
            hold_steps += int(is_hold.sum())
    result = {"nll": nll / steps, "accuracy": correct / steps, "steps": steps}
    if hold_index is not None:
        result["hold_nll"] = hold_nll / max(hold_steps, 1)
        result["onset_nll"] = (nll - hold_nll) / max(steps - hold_steps, 1)
        result["hold_share"] = hold_steps / steps
    return result
