"""The melody model: one-hot input -> LSTM layers -> dropout -> linear (softmax lives in the loss).

Training and generation give it the same context: its state starts at zero, it reads one `/`
(the song start), then the song, and at every step predicts the next symbol. The state carries
from step to step, so a generated step costs the same at step 10 and at step 1000.

Beside each symbol it reads the control fields of the step it predicts (controls.py: meter, mode,
position in the bar, bars left), each one-hot, so it knows the meter and where it is in it.
A model saved before controls existed has none and reads symbols alone.
"""

import torch
import torch.nn.functional as F
from torch import nn


class MelodyLSTM(nn.Module):
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

    def forward(self, x, state=None, controls=None):
        """x: [batch, time] symbol indices; state: what the last call returned, or None for zeros;
        controls: [batch, time, fields] control indices of the steps predicted (None: no fields).

        Returns logits [batch, time, vocab] and the new state (one (h, c) pair per layer).
        """
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
        model = cls(**checkpoint["hyperparameters"])
        model.load_state_dict(checkpoint["model_state"])
        return model.eval()


@torch.no_grad()
def song_log_probs(model, songs, delimiter_index, batch_size=64, device="cpu", controls=None):
    """Log-probabilities the model gives every target step of every song, with the generation
    context.

    For each song (a list of symbol indices, no delimiters) the input is [/] + song from a zero
    state and the targets are song + [/]; controls, for a model that reads them, holds each song's
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
        logits, _ = model(x.to(device), controls=c.to(device))
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
