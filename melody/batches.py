"""Training data as batches: Windows (the LSTM's) or Songs (the Transformer's), as the
architecture's TRAINS_ON says.

Both offer batches(epoch), lists of items in an order drawn from (seed, epoch) alone, so that a
resumed run sees exactly the batches an uninterrupted run would have seen; tensors(items), a
batch's (inputs, targets, controls), targets PADDING where a step carries no loss; and
steps(items), its number of targets.

For the LSTM, the training songs are laid end to end (each after a run of `/`, as in file_dataset)
and cut into seq_len-step windows; batches of shuffled windows are read from a zero state with the
loss on every position (not one target per window, as the tutorial did). So an epoch predicts every
step of every training song once, and no one-hot copy of the dataset is ever made (the model
one-hot encodes a batch at a time). A window that meets a song start sees it after `/` symbols from
a zero state, which is how generation starts a song.
"""

import random

import numpy as np
import torch

from melody import models

PADDING = -100  # target of padded steps: cross_entropy's ignore_index, so they carry no loss


def training_data(settings, songs, song_controls, train_songs, delimiter_index):
    """Windows or Songs of the training songs, as the architecture in settings trains."""
    if models.ARCHITECTURES[settings["arch"]].TRAINS_ON == "windows":
        stream = training_stream(
            songs, train_songs, delimiter_index, settings["seq_len"], song_controls
        )
        return Windows(stream, settings["seq_len"], settings["batch_size"], settings["seed"])
    return Songs(
        songs,
        song_controls,
        train_songs,
        delimiter_index,
        settings["batch_size"],
        settings["seed"],
    )


def training_stream(songs, indices, delimiter_index, seq_len, song_controls):
    """The training songs end to end, each after a run of seq_len // 4 `/` (at most 16):
    (inputs, targets, controls), controls [steps, fields] (fields may be 0).

    A song start in a window then looks like generation's: `/` symbols, then a song. Targets
    inside a run are PADDING: predicting `/` after `/` teaches nothing. The run is shorter than
    file_dataset's (seq_len) because its steps cost compute. A step's controls are those of the
    step it predicts, so a window that starts inside a song still knows the meter, the position in
    the bar and the bars left, though its state starts from zero.
    """
    run = max(1, min(seq_len // 4, 16))
    inputs, targets, controls = [], [], []
    for i in indices:
        inputs += [delimiter_index] * run + songs[i]
        targets += [PADDING] * (run - 1) + songs[i] + [delimiter_index]
        controls += [song_controls[i][:1]] * (run - 1) + [song_controls[i]]
    fields = song_controls[indices[0]].shape[1]
    # Pad both ends by one window so that windows at any offset stay inside the tensors.
    pad = torch.full((seq_len,), delimiter_index)
    no_target = torch.full((seq_len,), PADDING)
    no_controls = torch.zeros((seq_len, fields), dtype=torch.long)
    return (
        torch.cat([pad, torch.tensor(inputs), pad]),
        torch.cat([no_target, torch.tensor(targets), no_target]),
        torch.cat([no_controls, torch.from_numpy(np.concatenate(controls)), no_controls]),
    )


def epoch_windows(stream_length, seq_len, batch_size, seed, epoch):
    """Batches of window starts: the stream cut into seq_len windows at an offset, in a shuffled
    order.

    Every step falls in exactly one window, so an epoch predicts each step once; the offset and the
    order come from (seed, epoch) alone. Shuffled windows make each batch a sample of the whole
    dataset.
    """
    rng = random.Random(f"{seed}/{epoch}")
    offset = rng.randrange(seq_len)
    real_end = stream_length - seq_len  # the last padding window holds no targets
    starts = [s for s in range(offset, real_end, seq_len) if s + seq_len > seq_len]
    rng.shuffle(starts)
    return [starts[i : i + batch_size] for i in range(0, len(starts), batch_size)]


class Windows:
    """Training data as TRAINING_WINDOW-step windows of the songs laid end to end (the LSTM's):
    items are window starts in training_stream's tensors."""

    def __init__(self, stream, seq_len, batch_size, seed):
        self.stream, self.seq_len, self.batch_size, self.seed = stream, seq_len, batch_size, seed

    def batches(self, epoch):
        return epoch_windows(len(self.stream[0]), self.seq_len, self.batch_size, self.seed, epoch)

    def tensors(self, starts):
        window = torch.tensor(starts)[:, None] + torch.arange(self.seq_len)
        return tuple(t[window] for t in self.stream)

    def steps(self, starts):
        return int((self.tensors(starts)[1] != PADDING).sum())


class Songs:
    """Training data as whole songs, each read from one `/` as generation and validation read it
    (the Transformer's: a window across a song start would show it context that generation never
    gives). Items are song indices; a batch is padded to its longest song, the padding without
    loss."""

    def __init__(self, songs, song_controls, song_indices, delimiter_index, batch_size, seed):
        self.songs, self.controls, self.indices = songs, song_controls, song_indices
        self.delimiter, self.batch_size, self.seed = delimiter_index, batch_size, seed

    def batches(self, epoch):
        """Shuffled by (seed, epoch) alone; songs of similar length share a batch (sorted within
        pools of 16 batches), so that little of it is padding."""
        rng = random.Random(f"{self.seed}/{epoch}")
        order = list(self.indices)
        rng.shuffle(order)
        pool, size = 16 * self.batch_size, self.batch_size
        batches = []
        for start in range(0, len(order), pool):
            ranked = sorted(order[start : start + pool], key=lambda i: len(self.songs[i]))
            batches += [ranked[i : i + size] for i in range(0, len(ranked), size)]
        rng.shuffle(batches)
        return batches

    def tensors(self, items):
        width = max(len(self.songs[i]) for i in items) + 1
        fields = self.controls[items[0]].shape[1]
        x = torch.full((len(items), width), self.delimiter)
        y = torch.full((len(items), width), PADDING)
        c = torch.zeros((len(items), width, fields), dtype=torch.long)
        for row, i in enumerate(items):
            n = len(self.songs[i])
            x[row, 1 : n + 1] = torch.tensor(self.songs[i])
            y[row, : n + 1] = torch.tensor(self.songs[i] + [self.delimiter])
            c[row, : n + 1] = torch.from_numpy(self.controls[i])
        return x, y, c

    def steps(self, items):
        return sum(len(self.songs[i]) + 1 for i in items)
