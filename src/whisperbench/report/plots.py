"""Paper-style trade-off plots: WER vs size and RTFx vs size, Pareto frontier drawn, points labelled."""

from __future__ import annotations

from pathlib import Path

MARKERS = "osD^vP*X<>"


def pareto_front(points: list[tuple[float, float]], maximize_y: bool) -> list[tuple[float, float]]:
    """Points not dominated by a smaller-or-equal size with a better y, ordered by size."""
    front, best = [], None
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if maximize_y else p[1])):
        if best is None or (y > best if maximize_y else y < best):
            front.append((x, y))
            best = y
    return front


def _panel(axis, frame, y: str, maximize_y: bool, models: list[str], backends: list[str]) -> None:
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10")
    valid = frame.dropna(subset=["size_mb", y])
    for row in valid.itertuples(index=False):
        axis.scatter(
            row.size_mb,
            getattr(row, y),
            s=42,
            zorder=3,
            color=colors(models.index(row.model) % 10),
            marker=MARKERS[backends.index(row.backend) % len(MARKERS)],
        )
        axis.annotate(
            f"{row.model} {row.precision}",
            (row.size_mb, getattr(row, y)),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    front = pareto_front(list(zip(valid["size_mb"], valid[y], strict=False)), maximize_y)
    if front:
        xs, ys = zip(*front, strict=False)
        axis.step(xs, ys, where="post", color="0.35", linestyle="--", linewidth=1, zorder=2, label="Pareto frontier")
    axis.set_xscale("log")
    axis.grid(True, which="both", alpha=0.3)


def _legend_handles(models: list[str], backends: list[str]):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colors = plt.get_cmap("tab10")
    handles = [Line2D([], [], color=colors(i % 10), marker="o", linestyle="", label=m) for i, m in enumerate(models)]
    handles += [
        Line2D([], [], color="0.3", marker=MARKERS[i % len(MARKERS)], linestyle="", label=b)
        for i, b in enumerate(backends)
    ]
    handles.append(Line2D([], [], color="0.35", linestyle="--", label="Pareto frontier"))
    return handles


def plot(frame, y: str, ylabel: str, maximize_y: bool, title: str, outputs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted(frame["dataset"].unique())
    models, backends = sorted(frame["model"].unique()), sorted(frame["backend"].unique())
    figure, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4.2), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=False):
        _panel(axis, frame[frame["dataset"] == dataset], y, maximize_y, models, backends)
        axis.set_title(dataset, fontsize=10)
        axis.set_xlabel("size on disk (MB, log scale)")
        axis.set_ylabel(ylabel)
    figure.legend(handles=_legend_handles(models, backends), loc="lower center", ncol=6, fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    for output in outputs:
        from whisperbench.io import atomic_path

        with atomic_path(output) as temp:
            figure.savefig(temp, format=Path(output).suffix.lstrip("."), dpi=160)
    plt.close(figure)


PLOTS = {
    "wer_vs_size": ("wer_pct", "WER (%)", False, "Accuracy vs size"),
    "rtfx_vs_size": ("rtfx", "RTFx (audio s / compute s)", True, "Speed vs size"),
}


def write_plots(frame, outputs: list[Path]) -> None:
    """Draw each plot named by an output's stem (wer_vs_size, rtfx_vs_size) into its files."""
    synthetic = frame["dataset"].str.contains("synthetic").any()
    suffix = " (includes synthetic speech)" if synthetic else ""
    for name, (y, label, maximize, title) in PLOTS.items():
        files = [Path(output) for output in outputs if Path(output).stem == name]
        if files:
            plot(frame, y, label, maximize, title + suffix, files)
