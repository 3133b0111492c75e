"""Paper-style figures, one panel per dataset, the same colours (model) and markers (backend) everywhere.

* `wer_vs_size`: WER (95 % bootstrap interval as error bars) against size on disk;
* `rtfx_vs_size`: RTFx against size;
* `wer_vs_rtfx`: the speed–accuracy frontier (WER against RTFx);
* `wer_vs_bits`: the quantization frontier, WER against the bits each weight costs as stored (uniform and
  mixed-precision recipes on one axis);
* `memory_vs_size`: peak memory while transcribing against size;
* `latency_breakdown`: per cell, stacked bars of features, encoder, first decoder step and the remaining decode.

Trade-off panels draw the Pareto frontier (the cells no other cell beats on both axes), hollow markers for
peer runtimes, log axes with plain numbers, and labels moved apart by adjustText.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from whisperbench.report import axes

MARKERS = "osD^vP*X<>"
MAX_PLOTTED_WER = 100  # %: cells above it are named on the panel instead of drawn (and off the frontier)
STAGES = (("features_ms", "features"), ("encoder_ms", "encoder"), ("first_step_ms", "first decoder step"))
STAGES += (("decode_ms", "remaining decode"),)
CUT_POINT_CAPTION = (
    "encoder: the encoder and every decoder layer's cross-attention K/V projections; "
    "†: the runtime computes the K/V inside generation, so they are in its first decoder step"
)


@dataclass(frozen=True)
class TradeOff:
    """One trade-off figure: y against x, which direction is better on each, what the axes say."""

    x: str
    y: str
    xlabel: str
    ylabel: str
    title: str
    maximize_x: bool = False
    maximize_y: bool = False
    log_y: bool = False


TRADE_OFFS = {
    "wer_vs_size": TradeOff("size_mb", "wer_pct", "size on disk (MB, log scale)", "WER (%)", "Accuracy vs size"),
    "rtfx_vs_size": TradeOff(
        "size_mb", "rtfx", "size on disk (MB, log scale)", "RTFx (audio s / compute s)", "Speed vs size", False, True
    ),
    "wer_vs_rtfx": TradeOff(
        "rtfx", "wer_pct", "RTFx (audio s / compute s, log scale)", "WER (%)", "Accuracy vs speed", True, False
    ),
    "wer_vs_bits": TradeOff(
        "bits_per_weight",
        "wer_pct",
        "bits per weight as stored (weight bytes x 8 / parameters, scales included; log scale)",
        "WER (%)",
        "Accuracy vs bits per weight (uniform and mixed recipes)",
    ),
    "memory_vs_size": TradeOff(
        "size_mb",
        "peak_rss_mb",
        "size on disk (MB, log scale)",
        "peak memory transcribing (MB, log scale)",
        "Memory vs size",
        log_y=True,
    ),
}
FIGURES = (*TRADE_OFFS, "latency_breakdown")


def pareto_front(points: list[tuple[float, float]], maximize_y: bool, maximize_x: bool = False) -> list:
    """Points no other point beats on both axes, ordered from the best x."""
    sign_x = -1 if maximize_x else 1
    front, best = [], None
    for x, y in sorted(points, key=lambda p: (sign_x * p[0], -p[1] if maximize_y else p[1])):
        if best is None or (y > best if maximize_y else y < best):
            front.append((x, y))
            best = y
    return front


def _is_peer(backend: str) -> bool:
    from whisperbench.backends import registry

    return backend in registry.BACKENDS and registry.get(backend).peer


def _label(row) -> str:
    from whisperbench.backends import registry

    backend = registry.BACKENDS.get(row.backend)
    # "*": weights of this backend, numerics of another (Core ML off macOS); the legend says so
    star = "*" if isinstance(getattr(row, "numerics", None), str) else ""
    return f"{row.model} {row.precision} {(backend.label if backend else '') or row.backend}{star}"


def _stage_label(row) -> str:
    """A cell's label in the latency figure: † where its encoder bar stops before the cross-attention K/V."""
    from whisperbench.backends import registry

    backend = registry.BACKENDS.get(row.backend)
    return _label(row) + (" †" if backend and backend.encoder_excludes_cross_kv else "")


class Style:
    """The colour of each model and the marker of each backend, fixed for every figure of a study."""

    def __init__(self, frame):
        import matplotlib.pyplot as plt

        self.models, self.backends = sorted(frame["model"].unique()), sorted(frame["backend"].unique())
        self.colors = plt.get_cmap("tab10")
        self.numerics = sorted(frame["numerics"].dropna().unique()) if "numerics" in frame else []

    def color(self, model: str):
        return self.colors(self.models.index(model) % 10)

    def marker(self, backend: str) -> str:
        return MARKERS[self.backends.index(backend) % len(MARKERS)]

    def legend(self, frontier: bool = True):
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=self.color(m), marker="o", linestyle="", label=m) for m in self.models]
        for backend in self.backends:
            peer = _is_peer(backend)
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.3",
                    marker=self.marker(backend),
                    markerfacecolor="none" if peer else "0.3",
                    linestyle="",
                    label=f"{backend} (peer)" if peer else backend,
                )
            )
        if frontier:
            handles.append(Line2D([], [], color="0.35", linestyle="--", label="Pareto frontier"))
        return handles + [Line2D([], [], linestyle="", label=f"* {text}") for text in self.numerics]


def _error_bars(axis, row, spec: TradeOff, color) -> None:
    """The WER's 95 % bootstrap interval, where the table has one."""
    if spec.y != "wer_pct":
        return
    low, high = getattr(row, "wer_low_pct", None), getattr(row, "wer_high_pct", None)
    if low is None or high is None or math.isnan(low) or math.isnan(high):  # no interval (one utterance)
        return
    y = row.wer_pct
    axis.errorbar(
        getattr(row, spec.x),
        y,
        yerr=[[y - low], [high - y]],
        fmt="none",
        ecolor=color,
        alpha=0.45,
        capsize=2,
        linewidth=0.8,
        zorder=2,
    )


def _panel(axis, cells, spec: TradeOff, style: Style) -> list:
    """Draw one dataset's points, intervals and frontier; return the labels to place once the layout is final."""
    valid = cells.dropna(subset=[spec.x, spec.y])
    for row in valid.itertuples(index=False):
        color = style.color(row.model)
        _error_bars(axis, row, spec, color)
        axis.scatter(
            getattr(row, spec.x),
            getattr(row, spec.y),
            s=42,
            zorder=3,
            # peer runtimes (what users would otherwise pick) are hollow, so our exports stand out against them
            facecolors="none" if _is_peer(row.backend) else color,
            edgecolors=color,
            marker=style.marker(row.backend),
        )
    front = pareto_front(list(zip(valid[spec.x], valid[spec.y], strict=True)), spec.maximize_y, spec.maximize_x)
    if front:
        xs, ys = zip(*front, strict=True)
        axis.step(xs, ys, where="post", color="0.35", linestyle="--", linewidth=1, zorder=2)
    axes.plain_log(axis, "x")
    if spec.log_y:
        axes.plain_log(axis, "y")
    axis.grid(True, which="major", alpha=0.3)
    return [(getattr(row, spec.x), getattr(row, spec.y), _label(row)) for row in valid.itertuples()]


def _without_broken(axis, cells, spec: TradeOff):
    """Cells with WER in the hundreds (hallucination loops) would flatten every other point: name them instead."""
    if spec.y != "wer_pct":
        return cells
    broken = cells[cells["wer_pct"] > MAX_PLOTTED_WER]
    if len(broken):
        names = ", ".join(f"{_label(row)} {row.wer_pct:.0f} %" for row in broken.itertuples())
        axis.text(
            0.01,
            0.98,
            f"not shown, WER > {MAX_PLOTTED_WER} %: {names}",
            transform=axis.transAxes,
            fontsize=6,
            va="top",
            wrap=True,
        )
    return cells[~cells.index.isin(broken.index)]


def _save(figure, outputs: list[Path]) -> None:
    import matplotlib.pyplot as plt

    from whisperbench.io import atomic_path

    for output in outputs:
        with atomic_path(output) as temp:
            figure.savefig(temp, format=Path(output).suffix.lstrip("."), dpi=160, bbox_inches="tight")
    plt.close(figure)


def _figure(frame, width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted(frame["dataset"].unique())
    figure, grid = plt.subplots(1, len(datasets), figsize=(width * len(datasets), height), squeeze=False)
    return figure, list(zip(grid[0], datasets, strict=True))


def _panel_size(frame) -> tuple[float, float]:
    """Inches per panel: more cells need more room for their labels (a 46-cell study: about 7.5 x 5.8)."""
    crowd = max(0, int(frame.groupby("dataset").size().max()) - 12)
    return min(5.2 + 0.07 * crowd, 9.0), min(4.2 + 0.05 * crowd, 7.0)


def trade_off(frame, spec: TradeOff, title: str, outputs: list[Path]) -> None:
    style = Style(frame)
    figure, panels = _figure(frame, *_panel_size(frame))
    labels = {}
    for axis, dataset in panels:
        cells = _without_broken(axis, frame[frame["dataset"] == dataset], spec)
        labels[axis] = _panel(axis, cells, spec, style)
        axis.set_title(dataset, fontsize=10)
        axis.set_xlabel(spec.xlabel)
        axis.set_ylabel(spec.ylabel)
    handles = style.legend()
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.05 + 0.04 * math.ceil(len(handles) / 4), 1, 1))
    for axis, axis_labels in labels.items():
        axes.place_labels(axis, axis_labels)
    _save(figure, outputs)


def latency_breakdown(frame, title: str, outputs: list[Path]) -> None:
    """Per timed cell, where one utterance's time goes (medians over the timed utterances)."""
    import matplotlib.pyplot as plt

    columns = [column for column, _ in STAGES]
    timed = frame.dropna(subset=columns)
    height = 1.2 + 0.22 * max(len(timed[timed["dataset"] == d]) for d in frame["dataset"].unique())
    figure, panels = _figure(frame, 6.0, max(height, 3.0))
    colors = plt.get_cmap("Set2")
    for axis, dataset in panels:
        cells = timed[timed["dataset"] == dataset].sort_values(["model", "backend", "precision"])
        names = [_stage_label(row) for row in cells.itertuples()]
        left = [0.0] * len(cells)
        for index, (column, name) in enumerate(STAGES):
            values = list(cells[column])
            axis.barh(names, values, left=left, color=colors(index), label=name, height=0.7)
            left = [a + b for a, b in zip(left, values, strict=True)]
        axis.invert_yaxis()
        axis.tick_params(axis="y", labelsize=axes.LABEL_POINTS)
        axis.set_xlabel("ms per utterance (median)")
        axis.set_title(dataset, fontsize=10)
        axis.grid(True, axis="x", alpha=0.3)
    handles, names = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(STAGES), fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11)
    figure.text(0.5, 0.005, CUT_POINT_CAPTION, ha="center", va="bottom", fontsize=6.5, wrap=True)
    figure.tight_layout(rect=(0, 0.09, 1, 1))
    _save(figure, outputs)


def write_plots(frame, outputs: list[Path]) -> None:
    """Draw each figure named by an output's stem (see FIGURES) into its files."""
    synthetic = frame["dataset"].str.contains("synthetic").any()
    suffix = " (includes synthetic speech)" if synthetic else ""
    for name in FIGURES:
        files = [Path(output) for output in outputs if Path(output).stem == name]
        if not files:
            continue
        if name == "latency_breakdown":
            latency_breakdown(frame, "Where the time goes" + suffix, files)
        else:
            trade_off(frame, TRADE_OFFS[name], TRADE_OFFS[name].title + suffix, files)
