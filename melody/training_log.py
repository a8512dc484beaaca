"""A run's record for people: training_log.csv, a row per epoch, and training_curve.png, the loss
curves."""

import csv
import io

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt

from melody import artefacts

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_accuracy", "seconds", "elapsed_seconds"]


def write_log(path, history):
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    artefacts.write_text(path, text.getvalue())


def write_plot(path, history, best_epoch):
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [row["train_loss"] for row in history], label="train (dropout on)")
    ax.plot(epochs, [row["val_loss"] for row in history], label="validation")
    ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL per step (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with artefacts.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
