"""Figures of the analysis (matplotlib, Agg), saved as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nmcfem.atomic import atomic_write

MICRO = 1e6


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        target = path.with_suffix(f".{ext}")
        atomic_write(target, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight"))
        out.append(str(target))
    _plt().close(fig)
    return out


def _scale_bar(ax, pixel_size: float | None, shape) -> None:
    if not pixel_size:
        return
    width_um = shape[1] * pixel_size * MICRO
    bar = 10 ** np.floor(np.log10(max(width_um / 4, 1e-3)))
    px = bar / (pixel_size * MICRO)
    y, x0 = shape[0] * 0.93, shape[1] * 0.05
    ax.plot([x0, x0 + px], [y, y], color="white", lw=3)
    ax.text(x0 + px / 2, y - shape[0] * 0.03, f"{bar:g} µm", color="white", ha="center",
            fontsize=8)


def maps_side_by_side(maps: dict[str, np.ndarray], pixel_size: float | None, path: Path,
                      label: str = "Ni valence", shared: bool = True, cmap: str = "viridis"
                      ) -> list[str]:
    """Maps in a row with one shared colour scale and a scale bar."""
    plt = _plt()
    vals = np.concatenate([m[np.isfinite(m)] for m in maps.values()]) if maps else np.zeros(1)
    vmin, vmax = (np.percentile(vals, [1, 99]) if vals.size else (0, 1)) if shared else (None, None)
    fig, axs = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4), squeeze=False)
    im = None
    for ax, (title, m) in zip(axs[0], maps.items()):
        im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper")
        ax.set_title(title)
        ax.set_axis_off()
        _scale_bar(ax, pixel_size, m.shape)
    fig.colorbar(im, ax=axs[0].tolist(), label=label, shrink=0.8)
    return _save(fig, path)


def difference_map(a: np.ndarray, b: np.ndarray, pixel_size: float | None, path: Path,
                   label: str) -> list[str]:
    """Map of a - b with a symmetric diverging colour scale."""
    plt = _plt()
    d = a - b
    lim = np.nanpercentile(np.abs(d), 99) if np.isfinite(d).any() else 1.0
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(d, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_axis_off()
    _scale_bar(ax, pixel_size, d.shape)
    fig.colorbar(im, ax=ax, label=label)
    return _save(fig, path)


def cone_correlation_plot(results: dict[str, dict], path: Path, ylabel: str) -> list[str]:
    """Correlation coefficient against cone opening angle (Supplementary Fig. 4 style)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for name, res in results.items():
        angles = sorted(res)
        ax.plot(angles, [res[a]["pearson"] for a in angles], "o-", label=f"{name} (Pearson)")
        ax.plot(angles, [res[a]["spearman"] for a in angles], "s--", label=f"{name} (Spearman)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("cone half-angle θ (degrees)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _save(fig, path)


def profiles_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, xlabel: str,
                  ylabel: str) -> list[str]:
    """Line plots of profiles (e.g. valence against normalised radius or depth)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for name, (x, y) in curves.items():
        ax.plot(x, y, "o-", ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _save(fig, path)


def histogram_plot(samples: dict[str, np.ndarray], path: Path, xlabel: str) -> list[str]:
    """Overlaid normalised histograms."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for name, v in samples.items():
        v = v[np.isfinite(v)]
        ax.hist(v, bins=50, density=True, histtype="step", lw=1.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    return _save(fig, path)
