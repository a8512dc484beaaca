"""The melody model: one-hot input -> LSTM layers -> dropout -> linear (softmax lives in the loss).

Training and generation give it the same context: its state starts at zero, it reads one `/`
(the song start), then the song, and at every step predicts the next symbol. The state carries
from step to step, so a generated step costs the same at step 10 and at step 1000.
"""

import torch
import torch.nn.functional as F
from torch import nn


class MelodyLSTM(nn.Module):
    def __init__(self, vocab_size, num_units=(256,), dropout=0.2):
        super().__init__()
        self.vocab_size, self.num_units, self.dropout_p = vocab_size, list(num_units), dropout
        sizes = [vocab_size] + self.num_units
        self.lstms = nn.ModuleList(nn.LSTM(i, o, batch_first=True) for i, o in zip(sizes, sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_units[-1], vocab_size)

    def forward(self, x, state=None):
        """x: [batch, time] symbol indices; state: what the last call returned, or None for zeros.

        Returns logits [batch, time, vocab] and the new state (one (h, c) pair per layer).
        """
        # One-hot input, built per batch: the LSTM's input weights pick a column per symbol.
        h = F.one_hot(x, self.vocab_size).to(self.head.weight.dtype)
        new_state = []
        for i, lstm in enumerate(self.lstms):
            h, layer_state = lstm(h, None if state is None else state[i])
            h = self.dropout(h)
            new_state.append(layer_state)
        return self.head(h), new_state

    def hyperparameters(self):
        return {"vocab_size": self.vocab_size, "num_units": self.num_units, "dropout": self.dropout_p}

    @classmethod
    def from_checkpoint(cls, checkpoint):
        model = cls(**checkpoint["hyperparameters"])
        model.load_state_dict(checkpoint["model_state"])
        return model.eval()
