"""Training curves and the per-class figure (matplotlib, written atomically)."""
from ..atomic import atomic_path

NOT_CURVES = ("iter", "loss", "thresholds", "threshold", "train_seconds")  # eval record fields that are not validation scores in [0, 1] (`threshold`: runs of earlier versions)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, plt, dpi=90):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def _defined(values):
    return [v if v is not None and v == v else None for v in values]  # None/NaN -> gap


def _smoke_banner(fig, text):
    """A figure resting on too few records says so above its plots (utils/scoring/thresholds.py)."""
    if text:
        fig.suptitle(text, color="#b35c00", fontsize=11)


def plot_training_curves(history, path, select=None, n_records=None, smoke=""):
    """Loss, learning rate and every validation score against iteration; `select` (the best_model metric) bold.
    `n_records`: the validation records each evaluation rests on, named in the figure; `smoke`: the banner saying
    they were too few to choose by (thresholds.smoke_banner), shown above the plots."""
    plt = _pyplot()
    train, evals = history.get("train", []), history.get("eval", [])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if train:
        it = [r["iter"] for r in train]
        axes[0].plot(it, [r["loss"] for r in train], label="train (log interval mean)")
        axes[1].plot(it, [r["lr"] for r in train])
    if evals:
        it = [r["iter"] for r in evals]
        axes[0].plot(it, [r["loss"] for r in evals], "o-", label="validation")
        for key in [k for k in evals[0] if k not in NOT_CURVES]:
            axes[2].plot(it, _defined([r.get(key) for r in evals]), "o-", lw=2.5 if key == select else 1,
                         label=key + (" (selects best_model)" if key == select and not smoke else ""))
        axes[2].legend(fontsize=8)
    on = f" ({n_records} records)" if n_records is not None else ""
    for ax, title in zip(axes, ("loss", "learning rate", f"validation{on}")):
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[2].set_ylim(0, 1.02)
    _smoke_banner(fig, smoke)
    _save(fig, path, plt)


def plot_per_class(rows, path, title, smoke=""):
    """Bars of F1 and ROC AUC per class, with each class's support (positives) written under its name; `smoke`:
    the banner saying these figures are a smoke check (thresholds.smoke_banner), shown above them."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(13, 4.5))
    x = np.arange(len(rows))
    for offset, key, label in ((-0.2, "f1", "F1"), (0.2, "auc", "ROC AUC")):
        values = [r[key] if r[key] is not None else 0.0 for r in rows]
        ax.bar(x + offset, values, width=0.4, label=label)
    ax.set_xticks(x, [f"{r['index']} {r['name']}\n(n={r['support']})" for r in rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"per class: {title} (no bar: undefined, the class has no positive)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    _smoke_banner(fig, smoke)
    _save(fig, path, plt)


def plot_importance(df, path, title, n_records=None):
    """Bar charts of the most important measurements per class (DataFrame class, feature, importance, std). A class
    whose measurements all leave the validation score unchanged when shuffled, or a fold where no class could be
    measured at all, says so on the figure (a validation fold of a few records measures nothing) instead of
    showing empty axes. `n_records`: the validation fold's size, for that message."""
    plt = _pyplot()
    fold = f"the validation fold ({n_records} records)" if n_records is not None else "the validation fold"
    classes = list(dict.fromkeys(df["class"]))
    if not classes:
        fig, ax = plt.subplots(figsize=(8, 3))
        _say(ax, f"Nothing measured: in {fold} no class has both positives and negatives,\n"
                 f"so ROC AUC, and the drop in it when a measurement is shuffled, is undefined.\n"
                 f"Validate on more records (a larger --num-folds fold, or more data).")
        fig.suptitle(title)
        _save(fig, path, plt)
        return path
    gain = "measure" in df and (df["measure"] == "gain_share").all()
    cols = min(3, len(classes))
    rows = (len(classes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(8.0, 5.5 * cols), 3.2 * rows + (0.8 if gain else 0)), squeeze=False)
    for ax, cls in zip(axes.flat, classes):
        d = df[df["class"] == cls].iloc[::-1]
        ax.set_title(cls, fontsize=10)
        if not (d["importance"].abs() > 1e-12).any():
            _say(ax, f"No measurement changes the validation ROC AUC\nwhen shuffled: {fold} is too small\n"
                     f"to measure importance (not a sign that\nthe measurements do not matter).")
            continue
        ax.barh(d["feature"], d["importance"], xerr=None if gain else d["std"], color="tab:green" if gain else "tab:blue")
        ax.tick_params(labelsize=7)
        ax.set_xlabel("share of the trees' split gain" if gain else "drop in ROC AUC when shuffled", fontsize=8)
    for ax in list(axes.flat)[len(classes):]:
        ax.axis("off")
    fig.suptitle(f"{title}: permutation importance on {fold}" if not gain else
                 f"{title}: the trees' split gain on the training records,\nsince {fold} is too few to measure a "
                 f"drop in ROC AUC\n(gain says what the trees use, not what the score rests on)", fontsize=10)
    _save(fig, path, plt)
    return path


def _say(ax, text):
    """An axis that carries a message instead of a plot."""
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True, transform=ax.transAxes,
            bbox={"boxstyle": "round", "facecolor": "#fff4e0", "edgecolor": "#d9a441"})
