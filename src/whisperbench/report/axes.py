"""What every figure's axes share: log scales that read as plain numbers, and labels placed off each other
and off their points."""

from __future__ import annotations

LABEL_POINTS = 7


def plain_log(axis, which: str) -> None:
    """A log axis that reads 20, 50, 100, 200 rather than 10^2."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    scale = getattr(axis, f"{which}axis")
    getattr(axis, f"set_{which}scale")("log")
    scale.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    scale.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    scale.set_minor_formatter(NullFormatter())


def place_labels(axis, labels: list[tuple[float, float, str]]) -> None:
    """Label every point: adjustText moves the labels off each other and off the points (a fixed number of
    steps, so a figure is the same on every machine), then any labels still touching are pushed apart
    vertically, and each label is joined to its point. Labels of cells at one point (two backends, same
    size and WER) start stacked: adjustText cannot part equal boxes."""
    from adjustText import adjust_text

    seen: dict[tuple[float, float], int] = {}
    texts = []
    for x, y, text in labels:
        stacked = seen[(x, y)] = seen.get((x, y), -1) + 1
        display = axis.transData.transform((x, y)) + (0, stacked * 1.6 * LABEL_POINTS * axis.figure.dpi / 72)
        start = axis.transData.inverted().transform(display)
        texts.append(axis.text(start[0], start[1], text, fontsize=LABEL_POINTS))
    if not texts:
        return
    # expand: a margin around each label, so neighbours do not touch
    adjust_text(texts, ax=axis, expand=(1.1, 1.35), force_text=(0.3, 0.6), iter_lim=400)
    _separate(axis, texts)
    for text, (x, y, _) in zip(texts, labels, strict=True):
        axis.annotate(
            "", xy=(x, y), xytext=text.get_position(), arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5}
        )


def _separate(axis, texts: list) -> None:
    """Move each label that still overlaps one placed before it up (or, at the top, down) until it is clear."""
    renderer = axis.figure.canvas.get_renderer()
    inside = axis.get_window_extent(renderer)
    placed = []
    for text in sorted(texts, key=lambda t: t.get_window_extent(renderer).y0):
        box = text.get_window_extent(renderer)
        for direction in (1, -1):
            shift = 0.0
            while any(box.translated(0, shift).overlaps(other) for other in placed):
                shift += direction * 2.0
                moved = box.translated(0, shift)
                if moved.y1 > inside.y1 or moved.y0 < inside.y0:
                    break
            else:
                break
        x, y = axis.transData.transform(text.get_position())
        text.set_position(axis.transData.inverted().transform((x, y + shift)))
        placed.append(text.get_window_extent(renderer))
