"""The Transformer architecture (models/__init__.py: the contract it keeps)."""

import math

import torch
import torch.nn.functional as F
from torch import nn


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
        kv_heads = heads if kv_heads is None else kv_heads  # None: multi-head attention
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
            # and the softmax its scores, contiguously.
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
        inner = F.gelu(self.up(self.norm2(h)), approximate="tanh")  # GPT-2's; cheaper than erf
        return h + F.dropout(self.down(inner), dropout, training)


def rotate(x, rotation):
    """Rotary position embedding of x [..., head] by rotation [..., head / 2] (complex): each pair
    of neighbouring features turns as one complex number (RoPE, as in LLaMA)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)
