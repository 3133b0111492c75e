"""Paper-style trade-off plots: WER vs size and RTFx vs size, Pareto frontier drawn, points labelled."""

from __future__ import annotations

from pathlib import Path

MARKERS = "osD^vP*X<>"
MAX_PLOTTED_WER = 100  # %: cells above it are named on the panel instead of drawn (and off the frontier)


def pareto_front(points: list[tuple[float, float]], maximize_y: bool) -> list[tuple[float, float]]:
    """Points not dominated by a smaller-or-equal size with a better y, ordered by size."""
    front, best = [], None
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if maximize_y else p[1])):
        if best is None or (y > best if maximize_y else y < best):
            front.append((x, y))
            best = y
    return front


LABEL_POINTS = 7
# Where a label may sit around its point (offset in points, horizontal alignment), tried in order.
LABEL_SLOTS = (
    (4, 3, "left"),
    (4, -10, "left"),
    (-4, 3, "right"),
    (-4, -10, "right"),
    (0, 7, "center"),
    (0, -15, "center"),
)


def _label_box(anchor, slot, text: str) -> tuple[float, float, float, float]:
    """Approximate box (points) of `text` placed at `slot` around `anchor`: x0, y0, x1, y1."""
    dx, dy, align = slot
    width, height = 0.55 * LABEL_POINTS * len(text), LABEL_POINTS
    x0 = anchor[0] + dx - {"left": 0, "center": width / 2, "right": width}[align]
    return x0, anchor[1] + dy, x0 + width, anchor[1] + dy + height


def _overlaps(box, other) -> bool:
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


def _place_labels(axis, labels: list[tuple[float, float, str]]) -> None:
    """Label every point in the slot that stays inside the axes and overlaps the fewest labels already
    placed (cells of two backends often share a size and a WER; their labels would print on each other)."""
    points_per_pixel = 72 / axis.figure.dpi
    frame = [value * points_per_pixel for value in axis.bbox.extents]
    placed = []
    for x, y, text in labels:
        anchor = [value * points_per_pixel for value in axis.transData.transform((x, y))]
        boxes = [_label_box(anchor, slot, text) for slot in LABEL_SLOTS]

        def cost(index, boxes=boxes):
            box = boxes[index]
            outside = box[0] < frame[0] or box[2] > frame[2] or box[1] < frame[1] or box[3] > frame[3]
            return (outside, sum(_overlaps(box, other) for other in placed), index)

        choice = min(range(len(boxes)), key=cost)
        placed.append(boxes[choice])
        dx, dy, align = LABEL_SLOTS[choice]
        axis.annotate(text, (x, y), fontsize=LABEL_POINTS, xytext=(dx, dy), textcoords="offset points", ha=align)


def _panel(axis, frame, y: str, maximize_y: bool, models: list[str], backends: list[str]) -> list:
    """Draw the points and the frontier; return the labels to place once the layout is final."""
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10")
    valid = frame.dropna(subset=["size_mb", y])
    axis.set_xscale("log")
    for row in valid.itertuples(index=False):
        color = colors(models.index(row.model) % 10)
        axis.scatter(
            row.size_mb,
            getattr(row, y),
            s=42,
            zorder=3,
            # peer runtimes (what users would otherwise pick) are hollow, so our exports stand out against them
            facecolors="none" if _is_peer(row.backend) else color,
            edgecolors=color,
            marker=MARKERS[backends.index(row.backend) % len(MARKERS)],
        )
    front = pareto_front(list(zip(valid["size_mb"], valid[y], strict=False)), maximize_y)
    if front:
        xs, ys = zip(*front, strict=False)
        axis.step(xs, ys, where="post", color="0.35", linestyle="--", linewidth=1, zorder=2, label="Pareto frontier")
    axis.grid(True, which="both", alpha=0.3)
    return [(row.size_mb, getattr(row, y), _label(row)) for row in valid.itertuples()]


def _is_peer(backend: str) -> bool:
    from whisperbench.backends import registry

    return backend in registry.BACKENDS and registry.get(backend).peer


def _label(row) -> str:
    from whisperbench.backends import registry

    backend = registry.BACKENDS.get(row.backend)
    # "*": weights of this backend, numerics of another (Core ML off macOS); the legend says so
    star = "*" if isinstance(getattr(row, "numerics", None), str) else ""
    return f"{row.model} {row.precision} {(backend.label if backend else '') or row.backend}{star}"


def _legend_handles(models: list[str], backends: list[str], numerics: list[str]):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colors = plt.get_cmap("tab10")
    handles = [Line2D([], [], color=colors(i % 10), marker="o", linestyle="", label=m) for i, m in enumerate(models)]
    handles += [
        Line2D(
            [],
            [],
            color="0.3",
            marker=MARKERS[i % len(MARKERS)],
            markerfacecolor="none" if _is_peer(b) else "0.3",
            linestyle="",
            label=f"{b} (peer)" if _is_peer(b) else b,
        )
        for i, b in enumerate(backends)
    ]
    handles.append(Line2D([], [], color="0.35", linestyle="--", label="Pareto frontier"))
    handles += [Line2D([], [], linestyle="", label=f"* {text}") for text in numerics]
    return handles


def plot(frame, y: str, ylabel: str, maximize_y: bool, title: str, outputs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted(frame["dataset"].unique())
    models, backends = sorted(frame["model"].unique()), sorted(frame["backend"].unique())
    figure, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4.2), squeeze=False)
    labels = {}
    for axis, dataset in zip(axes[0], datasets, strict=False):
        cells = frame[frame["dataset"] == dataset]
        if y == "wer_pct":  # a broken cell (hallucinating, WER in the hundreds) would flatten every other point
            broken = cells[cells[y] > MAX_PLOTTED_WER]
            cells = cells[~cells.index.isin(broken.index)]
            if len(broken):
                names = ", ".join(f"{_label(row)} {getattr(row, y):.0f} %" for row in broken.itertuples())
                axis.text(
                    0.01,
                    0.98,
                    f"not shown, WER > {MAX_PLOTTED_WER} %: {names}",
                    transform=axis.transAxes,
                    fontsize=6,
                    va="top",
                    wrap=True,
                )
        labels[axis] = _panel(axis, cells, y, maximize_y, models, backends)
        axis.set_title(dataset, fontsize=10)
        axis.set_xlabel("size on disk (MB, log scale)")
        axis.set_ylabel(ylabel)
    numerics = sorted(frame["numerics"].dropna().unique()) if "numerics" in frame else []
    figure.legend(
        handles=_legend_handles(models, backends, numerics), loc="lower center", ncol=6, fontsize=8, frameon=False
    )
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    for axis, axis_labels in labels.items():
        _place_labels(axis, axis_labels)
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
