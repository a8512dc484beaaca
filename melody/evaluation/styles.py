"""Section 6 of the report, styles (a model trained on several collections): melodies asked for
each style against the real songs of each collection, as the mean feature overlap of section 2."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

from melody.evaluation.common import Section, markdown, save_figure
from melody.evaluation.features import compare_features, feature_histograms

# A collection with fewer held-out songs is compared, in the style matrix, through all its songs:
# a feature histogram of a handful of songs is mostly noise
MIN_STYLE_SONGS = 20


def section(run):
    """The style matrix of each model that knows styles; nothing where none does."""
    references = style_references(
        [[run.vocabulary[i] for i in s] for s in run.songs], run.plans, run.held_out
    )
    matrices = []
    for path in run.paths:
        generator = run.generator(path)
        if generator.styles:
            matrices.append(style_matrix(run, path, generator, references))
    if not matrices:
        return Section()
    tables = {
        "styles": pd.concat(matrices, ignore_index=True),
        "style_references": pd.DataFrame(
            [{"collection": c, "real songs": which} for c, (_, which) in references.items()]
        ),
    }
    plot_style_matrix(run.out / "styles.png", tables["styles"], list(references))
    return Section(
        tables,
        report_lines(run.args, tables, list(references)),
        summary=[
            f"{row['model']}, style {row['style asked']}: closest to {row['closest']} "
            f"({', '.join(f'{c} {row[c]:.3f}' for c in references)})"
            for row in tables["styles"].to_dict("records")
        ],
    )


def style_references(symbols, plans, held_out):
    """{collection: (the real songs a style is compared with, which ones)}: its held-out songs, or
    all of its songs where fewer than MIN_STYLE_SONGS are held out."""
    held, references = set(held_out), {}
    for collection in sorted({p.style for p in plans if p.style}):
        songs = [i for i, p in enumerate(plans) if p.style == collection]
        chosen, which = [i for i in songs if i in held], "held-out"
        if len(chosen) < MIN_STYLE_SONGS:
            chosen, which = songs, "all"
        references[collection] = ([symbols[i] for i in chosen], f"{which} ({len(chosen)})")
    return references


def style_matrix(run, path, generator, references):
    """One row per style the model knows: the mean feature overlap (section 2's features) of
    --num-melodies melodies asked for it with the real songs of each collection, and the closest
    collection."""
    real = {c: feature_histograms(songs, run.bar_steps) for c, (songs, _) in references.items()}
    rows = []
    for style in tqdm(generator.styles, desc=f"styles, {path}", leave=False):
        melodies = run.sample(generator, run.args.num_melodies, style=style)
        generated = feature_histograms(melodies, run.bar_steps)
        row = {"model": path, "style asked": style}
        row |= {c: np.nanmean(list(compare_features(real[c], generated).values())) for c in real}
        row["closest"] = max(real, key=row.get)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_style_matrix(path, matrix, collections):
    """A heat map per model: rows the style asked, columns the collection, cells the overlap."""
    models = list(dict.fromkeys(matrix["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(1 + 1.2 * len(collections) * len(models), 4))
    for ax, model in zip(np.atleast_1d(axes), models):
        rows = matrix[matrix["model"] == model]
        values = rows[collections].to_numpy(dtype=float)
        ax.imshow(values, cmap="viridis", vmin=np.nanmin(values), vmax=np.nanmax(values))
        for (r, c), value in np.ndenumerate(values):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(collections)), collections, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows["style asked"])
        ax.set_xlabel("real songs of")
        ax.set_ylabel("style asked")
        ax.set_title(model, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def report_lines(args, tables, collections):
    """The tables `style_references` and `styles`."""
    lines = [
        "",
        "## 6. Styles",
        "",
        f"{args.num_melodies} melodies per model asked for each style it knows (the other "
        "controls drawn from the training songs of that style), against the real songs of "
        "each collection: the mean feature overlap of section 2 (1 = the same). A style's "
        "melodies should be closest to their own collection: the diagonal highest in its row. "
        f"Real songs: each collection's held-out songs, or all of them where fewer than "
        f"{MIN_STYLE_SONGS} are held out, `style_references`:",
        "",
    ]
    lines += markdown(tables["style_references"])
    lines += ["", "`styles`:", ""]
    lines += markdown(tables["styles"], {c: "{:.3f}" for c in collections})
    return lines + ["", "![style matrix](styles.png)"]
