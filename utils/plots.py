"""Training curves (matplotlib, written atomically)."""
import math

from .atomic import atomic_path


def plot_training_curves(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = history.get("train", []), history.get("eval", [])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if train:
        it = [r["iter"] for r in train]
        axes[0].plot(it, [r["loss"] for r in train], label="train (log interval mean)")
    if evals:
        axes[0].plot([r["iter"] for r in evals], [r["loss"] for r in evals], "o-", label="validation")
        axes[2].plot([r["iter"] for r in evals], [r["f1"] for r in evals], "o-", label="F1 (tuned threshold)")
        axes[2].plot([r["iter"] for r in evals], [r["f1_at_0.5"] for r in evals], "s--", label="F1 (threshold 0.5)")
        axes[2].plot([r["iter"] for r in evals], [r["auc"] if r["auc"] is not None and not math.isnan(r["auc"]) else None for r in evals], "^-", label="ROC AUC")
    if train:
        axes[1].plot(it, [r["lr"] for r in train])
    for ax, title in zip(axes, ("loss", "learning rate", "validation (abnormal = positive)")):
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[2].legend()
    axes[2].set_ylim(0, 1.02)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
