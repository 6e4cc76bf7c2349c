"""A PNG per fitted distribution: the data against the fit (the eye is the best goodness-of-fit test).

Left, the data's histogram (on a log axis where the values span decades) with each family's
density; right, the empirical CDF with each fitted CDF. The written distribution is drawn thick.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.fit.families import Choice


def write_plot(path: str | Path, title: str, choice: Choice, values: np.ndarray | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    positive = values[values > 0] if values is not None else np.array([])
    spread = len(positive) > 1 and positive.max() / positive.min() > 100
    if values is not None and len(values):
        high = float(np.quantile(values, 0.999))
        grid = np.geomspace(max(positive.min(), high * 1e-4), high, 400) if spread else np.linspace(0, high, 400)
        bins = np.geomspace(grid[0], grid[-1], 60) if spread else np.linspace(0, high, 60)
        left.hist(values, bins=bins, density=True, color="0.8", label=f"data (n={len(values):,})")
        xs = np.sort(values)
        right.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", color="0.3", label="data")
    else:
        grid = np.linspace(0, 1, 2)
    for fit in choice.fits:
        width = 2.5 if fit is choice.chosen else 1.0
        if fit.pdf is not None:
            left.plot(grid, fit.pdf(grid), lw=width, label=fit.family)
        right.plot(grid, fit.cdf(grid), lw=width, label=f"{fit.family}{' (written)' if fit is choice.chosen else ''}")
    for axis in (left, right):
        if spread:
            axis.set_xscale("log")
        axis.legend(fontsize=8)
    left.set_title("density")
    right.set_title("CDF")
    fig.suptitle(f"{title}: {choice.chosen.text}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_binned_plot(path: str | Path, title: str, choice: Choice, upper: np.ndarray, cumulative: np.ndarray) -> None:
    """Buckets: the observed cumulative share at each finite edge against each fitted CDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.2))
    finite = np.isfinite(upper)
    share = cumulative / cumulative[-1]
    axis.plot(upper[finite], share[finite], "o", color="0.2", label=f"buckets (n={cumulative[-1]:,.0f})")
    grid = np.geomspace(upper[finite].min() / 2, upper[finite].max() * 2, 400)
    for fit in choice.fits:
        axis.plot(grid, fit.cdf(grid), lw=2.5 if fit is choice.chosen else 1.0, label=fit.family)
    axis.set_xscale("log")
    axis.legend(fontsize=8)
    axis.set_title(f"{title}: {choice.chosen.text}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
