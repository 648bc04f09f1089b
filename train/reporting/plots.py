"""Paper-style PNG figures (matplotlib, headless Agg backend) for Real vs Ideal World results.

A figure is described as plain data (`Line`s inside `Panel`s) so the reports (`*_report.py` beside this
file) decide what to show and this module only draws: one row of panels per PNG, log-x SGD-step axes, T(n) as a dotted
vertical line, y = x for scatter panels. matplotlib is imported on first use, so `import train`
stays fast.

    from train.reporting.plots import Line, Panel, save_panels
    save_panels("fig.png", [Panel(lines=(Line(x, y, "Real"),), ylabel="test soft-error")])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DPI = 200
PANEL_SIZE_IN = (4.8, 3.6)
REAL_COLOR = "tab:blue"
IDEAL_COLOR = "tab:orange"
EXTRA_COLORS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class Line:
    """A curve (or, with linestyle "none" and a marker, a set of points); `yerr` draws error bars, `band`
    a shaded +- band (e.g. the sd over seeds) around the curve."""

    x: np.ndarray
    y: np.ndarray
    label: str
    color: str | None = None
    linestyle: str = "-"
    marker: str | None = None
    yerr: np.ndarray | None = None
    band: np.ndarray | None = None


@dataclass(frozen=True)
class Panel:
    lines: tuple
    ylabel: str
    xlabel: str = "SGD step"
    title: str = ""
    logx: bool = True
    vline: float | None = None  # T(n)
    vline_label: str = ""
    zero_line: bool = False  # for gaps: where Real == Ideal
    diagonal: bool = False  # for scatters: the y = x line
    xticks: tuple | None = None  # label exactly these x values (e.g. the swept n)
    shade: tuple | None = None  # (x0, x1): a shaded x range (the window [n / batch, T(n)] of a gap)
    shade_label: str = ""


def _pyplot():
    import matplotlib  # deferred: heavy (~0.5 s); reports import this module, only drawing needs it

    matplotlib.use("Agg")  # no display on servers, CI or the GPU machine
    import matplotlib.pyplot as plt

    return plt


def save_panels(path: str | Path, panels: list[Panel], title: str = "") -> Path:
    """Draw `panels` side by side into one PNG at `path` and return the path."""
    plt = _pyplot()
    width, height = PANEL_SIZE_IN
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _draw_panel(ax, panel)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _draw_panel(ax, panel: Panel) -> None:
    for line in panel.lines:
        x, y = np.asarray(line.x, dtype=float), np.asarray(line.y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        if panel.logx:
            keep &= x > 0  # a log axis cannot show step 0 (the evaluation before training)
        style = dict(
            label=line.label,
            color=line.color,
            linestyle=line.linestyle,
            marker=line.marker,
            markersize=4 if line.linestyle != "none" else 6,
            linewidth=1.5,
        )
        if line.yerr is not None:
            yerr = np.nan_to_num(np.asarray(line.yerr, dtype=float)[keep])
            ax.errorbar(x[keep], y[keep], yerr=yerr, capsize=3, **style)
        else:
            ax.plot(x[keep], y[keep], **style)
        if line.band is not None:
            band = np.nan_to_num(np.asarray(line.band, dtype=float)[keep])
            ax.fill_between(x[keep], y[keep] - band, y[keep] + band, color=line.color, alpha=0.2, linewidth=0)
    if panel.diagonal:
        _draw_diagonal(ax)
    if panel.vline is not None:
        ax.axvline(panel.vline, color="0.25", linestyle=":", linewidth=1.2, label=panel.vline_label)
    if panel.shade is not None:
        ax.axvspan(*panel.shade, color="0.85", alpha=0.5, linewidth=0, label=panel.shade_label)
    if panel.zero_line:
        ax.axhline(0.0, color="0.5", linewidth=0.8)
    if panel.logx:
        _log_x_axis(ax, panel.xticks)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    if panel.title:
        ax.set_title(panel.title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if any(line.label for line in panel.lines) or panel.vline_label:
        ax.legend(fontsize=7, frameon=False)


def _log_x_axis(ax, ticks: tuple | None = None) -> None:
    """Log x with plain numbers (1,000 rather than 10^3); on short ranges label 2x and 5x ticks too."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # deferred: see _pyplot

    plain = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plain)
    low, high = ax.get_xlim()
    if ticks:
        ax.xaxis.set_major_locator(FixedLocator(list(ticks)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    elif low > 0 and high / low < 100:  # under two decades a log axis would show one or two labels
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(plain)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())


def _draw_diagonal(ax) -> None:
    """y = x across the data's range, with equal scales so distance from it reads the same way."""
    low = min(ax.get_xlim()[0], ax.get_ylim()[0])
    high = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([low, high], [low, high], color="0.4", linestyle="--", linewidth=1, label="y = x")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal", adjustable="box")
