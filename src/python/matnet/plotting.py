"""Learning-curve plots (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

import os
from typing import Dict, List, Optional

__all__ = ["plot_history"]


def plot_history(history: Dict[str, List[float]], path: "os.PathLike[str] | str",
                 title: Optional[str] = None) -> str:
    """Write a PNG with one panel per quantity (loss, accuracy, ...), train vs validation.

    Args:
        history: per-epoch lists as in ``History.history`` (``val_x`` pairs with ``x``).
        path: where to write the PNG.
        title: optional figure title.

    Returns:
        ``path`` as a string.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "History.plot needs matplotlib: pip install matplotlib (or matnet[demo])"
        ) from exc

    names = [k for k in history if not k.startswith("val_") and k != "lr"]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in names]
    if not names:
        raise ValueError("plot_history: the history is empty (train for at least one epoch)")

    # A Figure with an explicit Agg canvas leaves pyplot and the user's backend alone.
    fig = Figure(figsize=(5.0 * len(names), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for key, label, style in ((name, "train", "-o"), ("val_" + name, "validation", "-s")):
            values = history.get(key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=label, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    path = os.fspath(path)
    fig.savefig(path, dpi=110, format="png")
    return path
