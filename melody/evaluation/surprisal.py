"""Information content per note, and the report's surprisal section: a few held-out songs drawn as
scores with each note's bits as a line under them.

A model predicts one 16th step at a time; a note is the step where a pitch symbol starts. Per note:
  pitch bits   -log2 of the probability of its pitch among the pitches alone, renormalised at its
               onset (the onset given, as IDyOM predicts pitch: Pearce 2005);
  all bits     the nats of every step of the song (onsets, holds, rests, the closing `/`) over its
               notes, in bits: what predicting the whole song costs per note;
  step bits    -log2 of the probability of its symbol at its onset step, when it starts and
               which pitch together (the web app shows them beside the pitch bits).
"""

import io
import math

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import config
from melody import controls, render
from melody.encoding import DELIMITER
from melody.evaluation.common import Section, markdown, save_figure, three
from melody.models import load, song_log_probs


def pitch_indices(vocabulary):
    """The indices of the pitch symbols (MIDI numbers) of a vocabulary."""
    return torch.tensor([i for i, symbol in enumerate(vocabulary) if symbol.isdigit()])


def onset_pitch_log_probs(log_probs, song, pitches, delimiter_index):
    """(At each note's onset, the log-probabilities over the pitches alone, renormalised, as a
    [notes, len(pitches)] double tensor; each note's pitch as a column of it) from the song's
    [len(song) + 1, vocab] log-probabilities (models.song_log_probs)."""
    targets = torch.tensor(list(song) + [delimiter_index], dtype=torch.long)
    lp = log_probs.double()
    onsets = torch.isin(targets, pitches).nonzero().squeeze(1)
    among = lp[onsets][:, pitches]
    column = {int(p): k for k, p in enumerate(pitches)}
    notes = torch.tensor([column[int(t)] for t in targets[onsets]], dtype=torch.long)
    return among - among.logsumexp(1, keepdim=True), notes


def song_bits(log_probs, song, pitches, delimiter_index):
    """(Each note's pitch bits as an array, the song's nats over all its steps and its closing
    `/`) from its [len(song) + 1, vocab] log-probabilities (models.song_log_probs)."""
    targets = torch.tensor(list(song) + [delimiter_index], dtype=torch.long)
    step_nats = -log_probs.double().gather(1, targets[:, None]).sum().item()
    among, notes = onset_pitch_log_probs(log_probs, song, pitches, delimiter_index)
    pitch_nats = -among.gather(1, notes[:, None]).squeeze(1)
    return (pitch_nats / math.log(2)).numpy(), step_nats


def songs_bits(log_probs, songs, vocabulary, delimiter_index):
    """Per song {"pitch_bits": array per note, "step_nats", "steps", "notes"}."""
    pitches = pitch_indices(vocabulary)
    result = []
    for lp, song in zip(log_probs, songs):
        bits, nats = song_bits(lp, song, pitches, delimiter_index)
        result.append({"pitch_bits": bits, "step_nats": nats, "steps": len(song) + 1})
        result[-1]["notes"] = len(bits)
    return result


def onset_step_bits(log_probs, song, pitches, delimiter_index):
    """Each note's whole step in bits: -log2 of the probability of its symbol at its onset step,
    when it starts and which pitch together (song_bits's pitch bits take the onset as given)."""
    targets = torch.tensor(list(song) + [delimiter_index], dtype=torch.long)
    onsets = torch.isin(targets, pitches).nonzero().squeeze(1)
    nats = -log_probs.double()[onsets, targets[onsets]]
    return (nats / math.log(2)).numpy()


def planned_songs_bits(model, space, vocabulary, songs, plans, device="cpu"):
    """songs_bits of songs given as symbols ("60", "_", ...), each told its plan (a
    controls.Plan) as the report's section tells a held-out song its own (space.song_fields; space
    None: a model that reads symbols alone), with each note's onset_step_bits as "step_bits".
    One song at a time: a Transformer's attention over a song past its context grows with the
    square of its length, so a batch of long songs would hold many such maps at once."""
    index = {symbol: i for i, symbol in enumerate(vocabulary)}
    delimiter = index[DELIMITER]
    pitches = pitch_indices(vocabulary)
    result = []
    for symbols, plan in zip(songs, plans):
        song = [index[s] for s in symbols]
        fields = None if space is None else [space.song_fields(plan, len(song))]
        log_probs = song_log_probs(model, [song], delimiter, device=device, controls=fields)
        result += songs_bits(log_probs, [song], vocabulary, delimiter)
        result[-1]["step_bits"] = onset_step_bits(log_probs[0], song, pitches, delimiter)
    return result


def plot_song(path, symbols, bits, plan, title):
    """The song's score above a line of its notes' pitch bits."""
    meter = plan.meter if controls.bar_steps(plan.meter) else None
    score = render.melody_score(symbols, meter=meter, pickup=plan.pickup if meter else 0)
    picture = matplotlib.image.imread(io.BytesIO(render.png(render.svg(score), zoom=1)))
    height = picture.shape[0] / picture.shape[1] * 10
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, height + 2.5), gridspec_kw={"height_ratios": [height, 2.5]}
    )
    top.imshow(picture)
    top.set_axis_off()
    top.set_title(title)
    bottom.plot(np.arange(1, len(bits) + 1), bits, "o-", markersize=3)
    bottom.set_xlim(0.5, len(bits) + 0.5)
    bottom.set_xlabel("note")
    bottom.set_ylabel("pitch bits")
    fig.tight_layout()
    save_figure(fig, path)


def section(run):
    """The first model's pitch bits per note under the scores of the first SURPRISAL_SONGS
    held-out songs, and its bits per note over all held-out songs."""
    checkpoint = run.checkpoints[0]
    model = load(checkpoint).to(run.args.device)
    fields = controls.checkpoint_fields(checkpoint, run.test_plans, run.test_songs)
    log_probs = song_log_probs(
        model, run.test_songs, run.delimiter, device=run.args.device, controls=fields
    )
    per_song = songs_bits(log_probs, run.test_songs, run.vocabulary, run.delimiter)
    notes = sum(s["notes"] for s in per_song)
    pitch = sum(s["pitch_bits"].sum() for s in per_song) / max(notes, 1)
    every = sum(s["step_nats"] for s in per_song) / max(notes, 1) / math.log(2)
    rows, lines = [], []
    for k in range(min(config.SURPRISAL_SONGS, len(per_song))):
        song = per_song[k]
        name = f"surprisal_{k + 1}.png"
        title = f"held-out song {run.held_out[k]}: {song['pitch_bits'].mean():.2f} pitch bits/note"
        plot_song(run.out / name, run.real_symbols[k], song["pitch_bits"], run.test_plans[k], title)
        rows.append(
            {
                "song": run.held_out[k],
                "notes": song["notes"],
                "pitch bits/note": float(song["pitch_bits"].mean()),
                "all bits/note": song["step_nats"] / max(song["notes"], 1) / math.log(2),
            }
        )
        lines.append(f"![surprisal of held-out song {run.held_out[k]}]({name})")
    table = pd.DataFrame(rows)
    head = [
        "",
        "## Surprisal: information content per note",
        "",
        f"{run.paths[0]}, told each song's plan, on the {len(per_song)} held-out songs: "
        f"{pitch:.3f} pitch bits per note (each note's pitch among the pitches, its onset given), "
        f"{every:.3f} bits per note for the whole step sequence ({notes} notes). Under each score "
        "below, every note's pitch bits: peaks are the notes the model did not expect.",
        "",
        "`surprisal`:",
        "",
    ]
    formats = {"pitch bits/note": three, "all bits/note": three}
    return Section(
        {"surprisal": table},
        head + markdown(table, formats) + [""] + lines,
        headline={run.paths[0]: f"{pitch:.3f} pitch bits/note"},
    )
