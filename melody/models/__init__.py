"""The melody models, one class per architecture, and the registry that builds and loads them.

Every model reads the same inputs: one symbol per step and, beside it, the control fields of the
step it predicts (controls.py: meter, mode, position in the bar, bars left, style). A model saved
before controls existed has none and reads symbols alone. Training and generation give it the same
context: it reads one `/` (the song start), then the song, and at every step predicts the next
symbol.

The contract the scripts use (they hold no architecture-specific code):

    logits = model(x, controls)                 # [batch, time, vocab]: training and scoring
    logits, state = model.read(x, controls)     # read [batch, time] from the song start: the
                                                # logits of the next step [batch, vocab]
    logits, state = model.step(symbols, controls, state)   # one more symbol per melody
    model.hyperparameters()                     # what load() needs to rebuild it

The state is the model's own business (an LSTM's (h, c) per layer; a Transformer's key-value
cache). `ARCHITECTURES` maps `train.py --arch` to the class; each class lists its train.py
settings in SETTINGS (flag name -> (config name, argparse keywords)); load(checkpoint) rebuilds
any of them (a checkpoint without "arch" is an LSTM: every model.pth saved before the registry).
"""

import contextlib
import math
import threading

import torch
import torch.nn.functional as F
from torch import nn

import config


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
        return load(checkpoint)


class MelodyTransformer(nn.Module):
    """A decoder-only, causal Transformer: symbol embedding + one embedding per control field ->
    pre-norm blocks (rotary self-attention, GELU MLP) -> norm -> linear (tied to the embedding).

    Positions are rotary (RoPE): attention sees only how far back a step is, so nothing ties the
    model to the lengths it trained on. Each step attends to the last `context` steps
    (itself included), in training, scoring and generation alike: past `context` steps the
    attention window slides, and generation's key-value cache is a ring of `context` slots whose
    oldest entry the next step overwrites. So a generated step costs O(context), the same at step
    1000 as at step 300, and forward() on a long song (scoring, validation) masks attention to the
    same band, giving exactly the logits that generation gives.

    The `heads` query heads share `kv_heads` key-value heads (grouped-query attention; one is
    multi-query attention): the cache, which each sampled step reads whole, is heads / kv_heads
    times smaller than with a key-value head per query head.
    """

    arch = "transformer"
    SETTINGS = {
        "layers": ("TRANSFORMER_LAYERS", {"type": int, "help": "Transformer blocks"}),
        "heads": ("TRANSFORMER_HEADS", {"type": int, "help": "query heads per block"}),
        "kv_heads": (
            "TRANSFORMER_KV_HEADS",
            {
                "type": int,
                "help": "key-value heads per block, each shared by --heads / --kv-heads query "
                "heads: a divisor of --heads (1: multi-query, = --heads: multi-head attention); "
                "fewer, a smaller sampling cache",
            },
        ),
        "width": ("TRANSFORMER_WIDTH", {"type": int, "help": "model width (embedding size)"}),
        "context": (
            "TRANSFORMER_CONTEXT",
            {"type": int, "help": "steps each step attends to (the window slides past it)"},
        ),
        "dropout": ("TRANSFORMER_DROPOUT", {"type": float, "help": "dropout rate"}),
        "weight_decay": ("WEIGHT_DECAY", {"type": float, "help": "AdamW's, on weight matrices"}),
        "warmup": ("WARMUP_STEPS", {"type": int, "help": "batches of linear lr warm-up"}),
    }
    # train.py reads whole songs, each from one `/`: exactly the context that generation and
    # scoring give (a window across a song start would attend to the song before it)
    TRAINS_ON = "songs"
    LEARNING_RATES = ("TRANSFORMER_LEARNING_RATE", "TRANSFORMER_MIN_LEARNING_RATE")

    def __init__(
        self,
        vocab_size,
        layers=2,
        heads=4,
        width=128,
        context=256,
        dropout=0.1,
        control_sizes=(),
        kv_heads=None,
    ):
        super().__init__()
        if width % heads or (width // heads) % 2:
            raise ValueError(f"width {width} must split into {heads} heads of an even size")
        kv_heads = heads if kv_heads is None else kv_heads  # checkpoints from before kv_heads
        if kv_heads < 1 or heads % kv_heads:
            raise ValueError(f"kv_heads {kv_heads} must be a divisor of heads ({heads})")
        self.vocab_size, self.layers, self.heads, self.width = vocab_size, layers, heads, width
        self.kv_heads = kv_heads
        self.context, self.dropout_p, self.control_sizes = context, dropout, list(control_sizes)
        self.embed = nn.Embedding(vocab_size, width)
        # One table for all control fields: field k's rows start at offsets[k].
        self.control_embed = nn.Embedding(max(sum(self.control_sizes), 1), width)
        offsets = torch.tensor([0] + self.control_sizes[:-1], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, kv_heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        self.head.weight = self.embed.weight  # tied: the same row reads and writes a symbol
        half = width // heads // 2
        inv_freq = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        for name, p in self.named_parameters():  # GPT-2's initialisation
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif name.endswith(("proj.weight", "down.weight")):  # scaled: they add to the stream
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    @classmethod
    def from_settings(cls, vocab_size, control_sizes, s):
        keys = ("layers", "heads", "kv_heads", "width", "context", "dropout")
        return cls(vocab_size, **{k: s[k] for k in keys}, control_sizes=control_sizes)

    @staticmethod
    def problems(s):
        return [
            ("layers", s["layers"] < 1, "1 or more"),
            ("heads", s["heads"] < 1, "1 or more"),
            (
                "kv_heads",
                s["heads"] >= 1 and (s["kv_heads"] < 1 or s["heads"] % s["kv_heads"]),
                f"a divisor of --heads ({s['heads']})",
            ),
            (
                "width",
                s["heads"] >= 1
                and (s["width"] < 2 or s["width"] % s["heads"] or s["width"] // s["heads"] % 2),
                f"a multiple of 2 x --heads ({s['heads']})",
            ),
            ("context", s["context"] < 1, "1 or more"),
            ("dropout", not 0 <= s["dropout"] < 1, "at least 0 and below 1"),
            ("weight_decay", s["weight_decay"] < 0, "0 or more"),
            ("warmup", s["warmup"] < 0, "0 (none) or more"),
        ]

    def optimizer(self, lr, settings):
        """AdamW, with weight decay on the weight matrices only (not on norms and biases)."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            groups, lr=lr, betas=(0.9, 0.95), weight_decay=settings["weight_decay"]
        )

    def hyperparameters(self):
        return {
            "vocab_size": self.vocab_size,
            "layers": self.layers,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "width": self.width,
            "context": self.context,
            "dropout": self.dropout_p,
            "control_sizes": self.control_sizes,
        }

    def _input(self, x, controls):
        h = self.embed(x)
        if self.control_sizes:
            h = h + self.control_embed(controls + self.offsets).sum(-2)
        return h

    def _rotation(self, positions):
        """The rotation of each position [time, head / 2], as complex numbers of modulus 1."""
        angles = positions.to(self.inv_freq.dtype)[:, None] * self.inv_freq
        return torch.polar(torch.ones_like(angles), angles)

    def forward(self, x, controls=None):
        """x: [batch, time] from the song start; controls: [batch, time, fields] of the steps
        predicted (None: no fields). Returns logits [batch, time, vocab]."""
        return self._run(x, controls)[0]

    def _run(self, x, controls):
        """forward(), also returning each block's keys and values [batch, kv_heads, time, head]."""
        t = x.shape[1]
        rotation = self._rotation(torch.arange(t, device=x.device))
        mask = None  # plain causal within the context; a sliding band past it
        if t > self.context:
            distance = torch.arange(t, device=x.device)[:, None] - torch.arange(t, device=x.device)
            mask = (distance >= 0) & (distance < self.context)
        h = F.dropout(self._input(x, controls), self.dropout_p, self.training)
        group = self.heads // self.kv_heads
        cache = []
        for block in self.blocks:
            q, k, v = block.qkv_heads(h, rotation)
            # each key-value head repeated for its group of query heads: every SDPA kernel (and
            # torch before 2.5, which has no enable_gqa) takes that
            a = F.scaled_dot_product_attention(
                q,
                k.repeat_interleave(group, 1) if group > 1 else k,
                v.repeat_interleave(group, 1) if group > 1 else v,
                attn_mask=mask,
                is_causal=mask is None,
                dropout_p=self.dropout_p if self.training else 0.0,
            )
            h = block.finish(h, a, self.dropout_p, self.training)
            cache.append((k, v))
        return self.head(self.norm(h)), cache

    def read(self, x, controls=None):
        """Read x [batch, time] from the song start: the next step's logits [batch, vocab] and the
        sampling state: the key-value cache, a ring of `context` slots per block (step p in slot
        p % context), and the weights arranged for step()."""
        logits, kv = self._run(x, controls)
        (n, kv_heads, t, size), keep = kv[0][0].shape, min(x.shape[1], self.context)
        slots = torch.arange(t - keep, t, device=x.device) % self.context
        rings = []
        for k, v in kv:
            # Keys transposed, [batch, kv_heads, head, slot]: the scores' product then reads them,
            # and the softmax its scores, contiguously (64 melodies: half the time of slot-major).
            keys = k.new_zeros(n, kv_heads, size, self.context)
            values = v.new_zeros(n, kv_heads, self.context, size)
            keys[..., slots], values[:, :, slots] = k[:, :, -keep:].transpose(2, 3), v[:, :, -keep:]
            # and as the batched products read them, one matrix per melody and key-value head
            rows = n * kv_heads
            batched = keys.view(rows, size, self.context), values.view(rows, self.context, size)
            rings.append((keys, values, *batched))
        return logits[:, -1], {"position": t, "rings": rings, "weights": self._step_weights()}

    def _step_weights(self):
        """The weights as step() multiplies them: transposed once for torch.addmm, each norm's
        scale and shift folded into the product after it, the query rows scaled by 1/sqrt(head
        size), and one table of symbol and control-field rows (a step's input is one lookup). At
        one symbol per step, a step is a chain of small products whose fixed costs (nn.Linear's
        transposes, SDPA's set-up) would be most of its time: each call saved counts."""
        w = self.width
        scale = torch.ones(self.blocks[0].qkv.out_features, device=self.embed.weight.device)
        scale[:w] = (w // self.heads) ** -0.5

        def after_norm(norm, linear, scale=None):
            """(bias, weight) of linear(norm(x)) from x's norm without its scale and shift."""
            weight, bias = linear.weight * norm.weight, linear.bias + linear.weight @ norm.bias
            if scale is not None:
                weight, bias = weight * scale[:, None], bias * scale
            return bias, weight.t().contiguous()

        blocks = [
            (
                after_norm(b.norm1, b.qkv, scale),
                (b.proj.bias, b.proj.weight.t().contiguous()),
                after_norm(b.norm2, b.up),
                (b.down.bias, b.down.weight.t().contiguous()),
            )
            for b in self.blocks
        ]
        table = torch.cat([self.embed.weight, self.control_embed.weight])
        head = after_norm(self.norm, self.head)
        return {
            "blocks": blocks,
            "table": table,
            "head": head,
            "rotations": self._rotation(self.inv_freq.new_zeros(0)),
            "rotations_from": 0,
            "offsets": self.offsets + self.vocab_size,
        }

    def step(self, symbols, controls, state):
        """One more symbol per melody [batch]: it attends, through the cache, to the last `context`
        steps; the cache is updated in place. The same computation as forward() at that step."""
        weights, position = state["weights"], state["position"]
        n, w, heads, kv_heads = symbols.shape[0], self.width, self.heads, self.kv_heads
        size = w // heads
        rotated = w + kv_heads * size  # the queries and keys
        # The rotations of the next `context` positions, made once every `context` steps.
        first = weights["rotations_from"]
        if not first <= position < first + len(weights["rotations"]):
            weights["rotations_from"] = first = position
            ahead = torch.arange(position, position + self.context, device=self.inv_freq.device)
            weights["rotations"] = self._rotation(ahead)
        rotation = weights["rotations"][position - first]
        rows = symbols[:, None]
        if self.control_sizes:
            rows = torch.cat([rows, controls + weights["offsets"]], 1)
        # [n, width]: a lookup and a sum, cheaper for one melody than embedding_bag's set-up
        h = F.embedding(rows, weights["table"]).sum(1)
        slot, filled = position % self.context, position + 1
        for (qkv, proj, up, down), (keys, values, batch_keys, batch_values) in zip(
            weights["blocks"], state["rings"]
        ):
            a = torch.addmm(*qkv[:1], F.layer_norm(h, (w,)), qkv[1])  # [n, qkv]
            qk = torch.view_as_complex(a[:, :rotated].view(n, heads + kv_heads, size // 2, 2))
            qk = torch.view_as_real(qk * rotation).view(n, heads + kv_heads, size)  # rotate()'s
            keys[..., slot] = qk[:, heads:]
            values[:, :, slot] = a[:, rotated:].view(n, kv_heads, size)
            # The queries of a melody's key-value head together: two batched products (scores,
            # mix) of the filled slots, cheaper at this size than SDPA's kernel set-up.
            if filled < self.context:
                batch_keys, batch_values = batch_keys[..., :filled], batch_values[:, :filled]
            queries = qk[:, :heads].reshape(n * kv_heads, heads // kv_heads, size)
            scores = torch.bmm(queries, batch_keys)
            mixed = torch.bmm(scores.softmax(-1), batch_values)  # [n kv_heads, group, size]
            h = h + torch.addmm(proj[0], mixed.view(n, w), proj[1])
            inner = F.gelu(torch.addmm(up[0], F.layer_norm(h, (w,)), up[1]), approximate="tanh")
            h = h + torch.addmm(down[0], inner, down[1])
        state["position"] = position + 1
        h = F.layer_norm(h, (w,))
        return torch.addmm(weights["head"][0], h, weights["head"][1]), state


class TransformerBlock(nn.Module):
    def __init__(self, width, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads = heads, kv_heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        # queries, then keys and values of kv_heads heads each (query head i reads key-value head
        # i // (heads / kv_heads))
        self.qkv = nn.Linear(width, width + 2 * kv_heads * (width // heads))
        self.proj = nn.Linear(width, width)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def qkv_heads(self, h, rotation):
        """Queries [batch, heads, time, head], keys and values [batch, kv_heads, time, head],
        queries and keys rotated."""
        b, t, _ = h.shape
        parts = self.qkv(self.norm1(h)).view(b, t, self.heads + 2 * self.kv_heads, -1)
        q, k, v = parts.transpose(1, 2).split([self.heads, self.kv_heads, self.kv_heads], 1)
        return rotate(q, rotation), rotate(k, rotation), v

    def finish(self, h, attended, dropout, training):
        """The residual stream after attention's output [batch, heads, time, head] and the MLP."""
        b, _, t, _ = attended.shape
        h = h + F.dropout(self.proj(attended.transpose(1, 2).reshape(b, t, -1)), dropout, training)
        inner = F.gelu(self.up(self.norm2(h)), approximate="tanh")  # GPT-2's; 3x faster per step
        return h + F.dropout(self.down(inner), dropout, training)


def rotate(x, rotation):
    """Rotary position embedding of x [..., head] by rotation [..., head / 2] (complex): each pair
    of neighbouring features turns as one complex number (RoPE, as in LLaMA)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


ARCHITECTURES = {model.arch: model for model in (MelodyLSTM, MelodyTransformer)}


def build(arch, vocab_size, control_sizes, settings):
    """A fresh model of `arch` ("lstm" or "transformer") from train.py's settings."""
    return ARCHITECTURES[arch].from_settings(vocab_size, control_sizes, settings)


def default_settings(arch):
    """An architecture's settings from config (read when called, so a notebook may change it)."""
    return {name: getattr(config, key) for name, (key, _) in ARCHITECTURES[arch].SETTINGS.items()}


def load(checkpoint):
    """The model a checkpoint holds, in eval mode; any architecture (none named: an LSTM)."""
    arch = checkpoint.get("arch", "lstm")
    if arch not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"unknown architecture {arch!r}: this code knows {known}")
    model = ARCHITECTURES[arch](**checkpoint["hyperparameters"])
    model.load_state_dict(checkpoint["model_state"])
    return model.eval()


_threads_lock, _threads_users, _threads_before = threading.Lock(), 0, None


@contextlib.contextmanager
def sampling_threads(batch, device):
    """One torch thread while sampling a small batch on the CPU, then the setting as it was.

    A step of a small batch is a few tiny matrix products: splitting them over threads costs more
    in synchronisation than it saves (on a 16-core machine, 1,117 steps/s against 5,696 on 2
    cores; see README, Transformer). Batches above config.SMALL_BATCH keep torch's threads.
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
