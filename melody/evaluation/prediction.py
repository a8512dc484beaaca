"""Section 1 of the report, held-out prediction: each model's NLL per step (nats), perplexity and
accuracy on the held-out songs, each song read from its start as in generation and scored by
model.score; beside it, interpolated Witten-Bell n-grams of orders 1..--max-order trained on the
other songs."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import config
from melody import artefacts, controls
from melody.artefacts import UserError
from melody.evaluation.common import TONIC_PITCH_CLASSES, Section, markdown, save_figure, three
from melody.models import load, score, song_log_probs


def section(run):
    """Score each model and the n-grams on the held-out songs; plot NLL by n-gram order."""
    print(f"scoring {len(run.test_songs)} held-out songs ...")
    metrics = {}
    for path, checkpoint in zip(run.paths, run.checkpoints):
        metrics[path], tonic_share = score_model(run, checkpoint)  # the songs' share: any model's
    ngrams = ngram_baselines(
        run.train_songs,
        run.test_songs,
        len(run.vocabulary),
        run.delimiter,
        run.hold,
        run.args.max_order,
        run.args.seed,
    )
    best = ngrams["orders"][ngrams["chosen"]]
    plot_orders(run.out / "ngram_orders.png", ngrams, metrics)
    tables = {"prediction": prediction_frame(metrics, ngrams), "ngram_orders": orders_frame(ngrams)}
    return Section(
        tables,
        report_lines(tables, ngrams, tonic_share),
        headline={
            path: f"NLL {m['nll']:.3f}, with its plan {m['nll_with_plan']:.3f} "
            f"({m['nll_with_plan'] / best['nll'] - 1:+.1%} vs n-gram), accuracy "
            f"{m['accuracy']:.1%}"
            for path, m in metrics.items()
        },
        summary=[
            f"held-out NLL (nats/step) on {len(run.test_songs)} songs: n-gram order "
            f"{ngrams['chosen']} {best['nll']:.3f}, unigram {ngrams['orders'][1]['nll']:.3f}"
        ],
    )


def score_model(run, checkpoint):
    """(A model's metrics on the held-out songs, the share of those songs whose last note is a
    tonic)."""
    model = load(checkpoint).to(run.args.device)
    fields = controls.checkpoint_fields(checkpoint, run.test_plans, run.test_songs)
    log_probs = song_log_probs(
        model, run.test_songs, run.delimiter, device=run.args.device, controls=fields
    )
    metrics = prediction_metrics(log_probs, run.test_songs, run.delimiter, run.hold)
    metrics["last_note_tonic"], tonic_share = last_note_tonic(
        log_probs, run.test_songs, run.vocabulary
    )
    told = fields is not None  # the model read each song's plan: it owes the plan's nats
    told_final = told and "final" in checkpoint["controls"].get("shapes", ())
    metrics["nll_with_plan"] = metrics["nll"] + (
        plan_nats(run.train_plans, run.test_plans, told_final) / metrics["steps"] if told else 0.0
    )
    return metrics, tonic_share


# The factors of plan_nats: (context, outcome) of each categorical, P(outcome | context).
PLAN_FACTORS = [
    (lambda p: (), lambda p: (p.meter, p.mode, p.pickup)),
    (lambda p: p.meter, lambda p: p.bars),
    (lambda p: p.mode, lambda p: p.final),
]


def plan_nats(train_plans, test_plans, told_final=True):
    """The nats a simple prior, fitted on the training songs' plans, spends on the held-out songs'
    plans: what a model told each song's plan owes, on top of its NLL, to compare with a model that
    is told nothing (the n-grams).

    The plan is factorised as P(meter, mode, pickup) P(bars | meter) P(final | mode), each the
    training counts with add-one smoothing and one outcome more for all that training never
    showed; a context training never showed uses the counts of all contexts. A model not told the
    final (told_final False: saved before finals existed) owes nothing for it."""
    nats = 0.0
    for context, outcome in PLAN_FACTORS if told_final else PLAN_FACTORS[:-1]:
        counts, everywhere = {}, {}
        for plan in train_plans:
            for table in (counts.setdefault(context(plan), {}), everywhere):
                table[outcome(plan)] = table.get(outcome(plan), 0) + 1
        for plan in test_plans:
            table = counts.get(context(plan), everywhere)
            seen = table.get(outcome(plan), 0)
            nats -= math.log((seen + 1) / (sum(table.values()) + len(table) + 1))
    return nats


def prediction_metrics(log_probs, songs, delimiter_index, hold_index):
    """model.score (the one scoring shared with training) plus perplexity."""
    result = score(log_probs, songs, delimiter_index, hold_index)
    result["perplexity"] = math.exp(result["nll"])
    return result


def last_note_tonic(log_probs, songs, vocabulary):
    """(The mean probability a model gives a tonic, C or A, at each song's last note onset, as a
    share of what it gives any note there; the share of the songs whose last note is one): how
    surely it closes on the tonic where the songs close, read from the songs themselves."""
    notes = np.array([symbol.isdigit() for symbol in vocabulary])
    tonic = np.array([s.isdigit() and int(s) % 12 in TONIC_PITCH_CLASSES for s in vocabulary])
    given, actual = [], []
    for lp, song in zip(log_probs, songs):
        onsets = [k for k, symbol in enumerate(song) if notes[symbol]]
        if onsets:
            p = lp[onsets[-1]].exp().numpy()
            given.append(p[tonic].sum() / p[notes].sum())
            actual.append(bool(tonic[song[onsets[-1]]]))
    return float(np.mean(given)), float(np.mean(actual))


def witten_bell_log_probs(train_songs, eval_songs, vocab_size, delimiter_index, max_order):
    """Interpolated Witten-Bell n-grams of every order 1..max_order, trained on train_songs.

    Yields (order, log_probs) with log_probs a list of [len(song) + 1, vocab] tensors for
    eval_songs, in the layout of model.song_log_probs: targets song + [/], the song start padded
    with `/`, an order-n model conditioning on the n - 1 symbols before. Witten-Bell, from the
    uniform up:
        p_n(w | h) = (c(h, w) + t(h) p_{n-1}(w | h')) / (c(h) + t(h)),   p_0(w) = 1 / vocab,
    with c the training counts, t(h) the number of distinct symbols seen after h, h' = h without its
    first symbol; a context never seen in training (c(h) = 0) keeps p_{n-1}.
    """
    train = target_windows(train_songs, delimiter_index, max_order)
    test = target_windows(eval_songs, delimiter_index, max_order)
    both = np.concatenate([train, test])
    train_targets = train[:, -1]
    probs = np.full((len(test), vocab_size), 1.0 / vocab_size)
    # an id per distinct context; order 1 has the empty one
    context = np.zeros(len(both), dtype=np.int64)
    for order in range(1, max_order + 1):
        if order > 1:  # reach one symbol further back: the id of (that symbol, the shorter context)
            _, context = np.unique(
                context * vocab_size + both[:, max_order - order], return_inverse=True
            )
        # counts[i, w] = c(h, w) for the context h of evaluation step i, via the contexts evaluation
        # meets
        eval_contexts, eval_rows = np.unique(context[len(train) :], return_inverse=True)
        pairs, pair_counts = np.unique(
            context[: len(train)] * vocab_size + train_targets, return_counts=True
        )
        pair_context, pair_symbol = np.divmod(pairs, vocab_size)
        row = np.minimum(np.searchsorted(eval_contexts, pair_context), len(eval_contexts) - 1)
        met = eval_contexts[row] == pair_context
        table = np.zeros((len(eval_contexts), vocab_size))
        table[row[met], pair_symbol[met]] = pair_counts[met]
        counts = table[eval_rows]
        total, types = counts.sum(1, keepdims=True), (counts > 0).sum(1, keepdims=True)
        probs = np.where(total > 0, (counts + types * probs) / np.maximum(total + types, 1), probs)
        yield order, list(torch.from_numpy(np.log(probs)).split([len(s) + 1 for s in eval_songs]))


def target_windows(songs, delimiter_index, max_order):
    """[steps, max_order]: each target of the songs (song + [/]) with the max_order - 1 symbols
    before it, the song start padded with `/`."""
    pad = [delimiter_index] * (max_order - 1)
    return np.concatenate(
        [
            np.lib.stride_tricks.sliding_window_view(
                np.array(pad + s + [delimiter_index]), max_order
            )
            for s in songs
        ]
    ).astype(np.int64)


def ngram_baselines(
    train_songs, test_songs, vocab_size, delimiter_index, hold_index, max_order, seed
):
    """Witten-Bell n-grams scored on the test songs; the order chosen on a subset of the training
    songs.

    Returns {"orders": {order: {"validation_nll", **test metrics}}, "chosen": order,
    "subset": (fit, val) counts}.
    """
    fit, val = artefacts.split_songs(len(train_songs), config.VALIDATION_SPLIT, seed)
    if not val:
        raise UserError(
            "the dataset has a single training song: the n-gram order cannot be chosen; use more "
            "songs"
        )
    fit_songs, val_songs = [train_songs[i] for i in fit], [train_songs[i] for i in val]
    orders = {
        order: {"validation_nll": score(lp, val_songs, delimiter_index)["nll"]}
        for order, lp in witten_bell_log_probs(
            fit_songs, val_songs, vocab_size, delimiter_index, max_order
        )
    }
    for order, lp in witten_bell_log_probs(
        train_songs, test_songs, vocab_size, delimiter_index, max_order
    ):
        orders[order].update(prediction_metrics(lp, test_songs, delimiter_index, hold_index))
    chosen = min(orders, key=lambda o: orders[o]["validation_nll"])
    return {"orders": orders, "chosen": chosen, "subset": (len(fit), len(val))}


def plot_orders(path, ngrams, model_metrics):
    """NLL by n-gram order, on the held-out songs and on the validation subset, with each model's
    held-out NLL as a line across."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    orders = sorted(ngrams["orders"])
    ax.plot(
        orders, [ngrams["orders"][o]["nll"] for o in orders], "o-", label="n-gram, held-out songs"
    )
    ax.plot(
        orders,
        [ngrams["orders"][o]["validation_nll"] for o in orders],
        "o--",
        label="n-gram, validation subset (chooses the order)",
    )
    for (name, metrics), colour in zip(
        model_metrics.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"][2:]
    ):
        ax.axhline(metrics["nll"], color=colour, label=f"{name}, held-out songs")
    ax.set_xlabel("n-gram order")
    ax.set_ylabel("NLL (nats per step)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def prediction_frame(metrics, ngrams):
    """The table `prediction`: each model, the chosen n-gram and the unigram."""
    best = ngrams["orders"][ngrams["chosen"]]
    return pd.DataFrame(
        [
            {
                "model": name,
                "NLL (nats/step)": m["nll"],
                "NLL with its plan": m.get("nll_with_plan", m["nll"]),
                "vs best n-gram": m.get("nll_with_plan", m["nll"]) / best["nll"] - 1,
                "perplexity": m["perplexity"],
                "accuracy": m["accuracy"],
                "onset NLL": m["onset_nll"],
                "hold NLL": m["hold_nll"],
                "P(tonic) at the last note": m.get("last_note_tonic"),
            }
            for name, m in list(metrics.items())
            + [
                (f"n-gram, order {ngrams['chosen']} (chosen)", best),
                ("unigram", ngrams["orders"][1]),
            ]
        ]
    )


def orders_frame(ngrams):
    """The table `ngram_orders`: each n-gram order's NLL on the validation subset and held out."""
    return pd.DataFrame(
        [
            {
                "order": o,
                "validation subset NLL": m["validation_nll"],
                "held-out NLL": m["nll"],
                "held-out accuracy": m["accuracy"],
            }
            for o, m in sorted(ngrams["orders"].items())
        ]
    )


def report_lines(tables, ngrams, tonic_share):
    """The tables `prediction` and `ngram_orders`, with how they were measured."""
    best = ngrams["orders"][ngrams["chosen"]]
    lines = [
        "",
        "## 1. Held-out prediction",
        "",
        "Each held-out song read from its start as in generation; targets are the song and its "
        f"closing `/` ({best['steps']} steps, {best['hold_share']:.0%} of them holds `_`). Onset "
        "steps are pitches, rests and `/`. n-grams: interpolated Witten-Bell down to the uniform, "
        "trained on the training songs; the order is the one with the lowest NLL on a validation "
        f"subset of the training songs ({ngrams['subset'][1]} songs, the model fitted on the other "
        f"{ngrams['subset'][0]}); order 1 is the unigram. A model that reads control fields is "
        "told each song's plan (meter, mode, pickup, bars): its NLL is given the "
        "plan. 'NLL with its plan' adds, per step, the nats a simple prior fitted on the training "
        "songs' plans spends on the held-out songs' plans (evaluate.plan_nats), so that it "
        "compares with the n-grams, which are told nothing; 'vs best n-gram' compares that figure.",
        "'P(tonic) at the last note' is the mean probability the model gives the tonic (C or A), "
        "of all it gives notes, at each held-out song's last note onset, where "
        f"{tonic_share:.0%} of the songs have it: how surely it closes on the tonic.",
        "",
        "`prediction`:",
        "",
    ]
    lines += markdown(
        tables["prediction"],
        {
            "NLL (nats/step)": three,
            "NLL with its plan": three,
            "vs best n-gram": "{:+.1%}",
            "perplexity": three,
            "accuracy": "{:.1%}",
            "onset NLL": three,
            "hold NLL": three,
            "P(tonic) at the last note": three,
        },
    )
    lines += ["", "n-grams by order (NLL in nats/step), `ngram_orders`:", ""]
    lines += markdown(
        tables["ngram_orders"],
        {
            "order": lambda o: f"**{o}**" if o == ngrams["chosen"] else str(o),
            "validation subset NLL": three,
            "held-out NLL": three,
            "held-out accuracy": "{:.1%}",
        },
    )
    return lines + ["", "![NLL by n-gram order](ngram_orders.png)"]
