"""The LSTM architecture (models/__init__.py: the contract it keeps)."""

import torch
import torch.nn.functional as F
from torch import nn


class MelodyLSTM(nn.Module):
    """One-hot input (symbol and control fields) -> LSTM layers -> dropout -> linear.

    Its state carries from step to step, so a generated step costs the same at step 10 and at step
    1000, and the context is the whole melody.
    """

    arch = "lstm"
    SETTINGS = {
        "units": ("NUM_UNITS", {"type": int, "nargs": "+", "help": "one LSTM layer per number"}),
        "dropout": ("DROPOUT", {"type": float, "help": "dropout rate"}),
        "seq_len": ("TRAINING_WINDOW", {"type": int, "help": "steps per training window"}),
    }
    # train.py cuts the songs, laid end to end, into windows of seq_len steps, each read from a
    # zero state: the state forgets a run of `/` as it forgets anything
    TRAINS_ON = "windows"
    SETTING_NAMES = {"num_units": "units"}  # the setting of each hyperparameter named otherwise
    LEARNING_RATES = ("LEARNING_RATE", "MIN_LEARNING_RATE")  # config's defaults of --lr, --min-lr

    def __init__(self, vocab_size, num_units=(256,), dropout=0.2, control_sizes=()):
        super().__init__()
        self.vocab_size, self.num_units, self.dropout_p = vocab_size, list(num_units), dropout
        self.control_sizes = list(control_sizes)
        sizes = [vocab_size + sum(self.control_sizes)] + self.num_units
        self.lstms = nn.ModuleList(
            nn.LSTM(i, o, batch_first=True) for i, o in zip(sizes, sizes[1:])
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_units[-1], vocab_size)

    @classmethod
    def from_settings(cls, vocab_size, control_sizes, settings):
        return cls(vocab_size, settings["units"], settings["dropout"], control_sizes)

    @staticmethod
    def problems(settings):
        """(setting, whether its value is bad, what it must be) for train.py's checks."""
        units, dropout = settings["units"], settings["dropout"]
        return [
            ("units", not units or min(units) < 1, "one or more positive layer sizes"),
            ("dropout", not 0 <= dropout < 1, "at least 0 and below 1"),
            ("seq_len", settings["seq_len"] < 1, "1 or more"),
        ]

    def optimizer(self, lr, settings):
        return torch.optim.Adam(self.parameters(), lr=lr)

    def forward(self, x, controls=None):
        """x: [batch, time] symbol indices from the song start; controls: [batch, time, fields]
        control indices of the steps predicted (None: no fields). Returns logits [batch, time,
        vocab].
        """
        return self._run(x, controls)[0]

    def _run(self, x, controls=None, state=None):
        """forward() from a given state (None: zeros); also returns the new state, one (h, c) pair
        per layer, each [1, batch, units]."""
        # One-hot input, built per batch: the LSTM's input weights pick a column per symbol.
        one_hots = [F.one_hot(x, self.vocab_size)]
        if self.control_sizes:
            one_hots += [
                F.one_hot(controls[..., k], size) for k, size in enumerate(self.control_sizes)
            ]
        h = torch.cat(one_hots, -1).to(self.head.weight.dtype)
        new_state = []
        for i, lstm in enumerate(self.lstms):
            h, layer_state = lstm(h, None if state is None else state[i])
            h = self.dropout(h)
            new_state.append(layer_state)
        return self.head(h), new_state

    def read(self, x, controls=None):
        """Read x [batch, time] from a zero state: the next step's logits [batch, vocab] and the
        sampling state (the one-step function and, per layer, (h, c) without the layer axis)."""
        logits, state = self._run(x, controls)
        return logits[:, -1], (self.stepper(), [(h[0], c[0]) for h, c in state])

    def step(self, symbols, controls, state):
        """One more symbol per melody [batch] with its step's controls [batch, fields] (or None)."""
        advance, layers = state
        logits, layers = advance(symbols, layers, controls)
        return logits, (advance, layers)

    def stepper(self):
        """A function (symbols [n], state, controls [n, fields] or None) -> (logits [n, vocab],
        state) that advances the model one step.

        Its state is forward()'s without the leading layer axis: per layer (h, c), each [n, units].

        The same computation as forward() on one step, with the weights arranged once so that a step
        is a handful of small matrix products: nn.LSTM's per-call overhead is most of the cost of a
        one-step call on a CPU. The one-hot input becomes a row lookup; dropout is off (eval mode).
        """
        layers = []
        for i, lstm in enumerate(self.lstms):
            bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
            w_in, w_hh = lstm.weight_ih_l0.detach().t(), lstm.weight_hh_l0.detach().t().contiguous()
            # Layer 0's input is one-hot: a row of (input weights + biases) replaces a product.
            layers.append((w_in + bias if i == 0 else w_in.contiguous(), bias, w_hh))
        if self.control_sizes:  # the control rows come after the symbols' and carry no bias
            w_in, bias, w_hh = layers[0]
            layers[0] = (
                torch.cat([w_in[: self.vocab_size], w_in[self.vocab_size :] - bias]),
                bias,
                w_hh,
            )
        offsets = torch.tensor(self.control_sizes[:-1], dtype=torch.long).cumsum(0)
        offsets = self.vocab_size + torch.cat([torch.zeros(1, dtype=torch.long), offsets])
        offsets = offsets.to(self.head.weight.device)
        head_weight, head_bias = self.head.weight.detach().t().contiguous(), self.head.bias.detach()

        def step(symbols, state, controls=None):
            new_state, x = [], None  # x: the layer's dense input; layer 0 has none
            for (w_in, bias, w_hh), (h, c) in zip(layers, state):
                if x is None:
                    if self.control_sizes:  # the symbol's row plus one row per control field
                        rows = F.embedding_bag(
                            torch.cat([symbols[:, None], controls + offsets], 1), w_in, mode="sum"
                        )
                    else:
                        rows = w_in[symbols]
                    gates = torch.addmm(rows, h, w_hh)
                else:
                    gates = torch.addmm(bias, x, w_in).addmm_(h, w_hh)
                # nn.LSTM's gate order is i, f, g, o; one sigmoid over all four is cheaper than
                # three calls.
                in_gate, forget_gate, _, out_gate = gates.sigmoid().chunk(4, 1)
                cell = gates[:, 2 * h.shape[1] : 3 * h.shape[1]].tanh()
                c = torch.addcmul(forget_gate * c, in_gate, cell)
                x = out_gate * c.tanh()
                new_state.append((x, c))
            return torch.addmm(head_bias, x, head_weight), new_state

        return step

    def hyperparameters(self):
        return {
            "vocab_size": self.vocab_size,
            "num_units": self.num_units,
            "dropout": self.dropout_p,
            "control_sizes": self.control_sizes,
        }

    @classmethod
    def from_checkpoint(cls, checkpoint):
        """models.load(checkpoint): the model a checkpoint holds, whatever its architecture."""
        from melody.models import load  # here: the registry imports this module

        return load(checkpoint)
