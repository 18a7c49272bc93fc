"""Charts as plain SVG text (no plotting library), what the benchmarks write beside their JSON: line charts (one
polyline per series over evenly spaced points, the points' labels under the x axis) and labelled scatter plots with
their Pareto frontier.
"""
from __future__ import annotations

from html import escape

COLOURS = ["#888888", "#3a7bd5", "#d55a3a", "#2aa876", "#9b59b6", "#e0a100", "#222222"]


WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 640, 360, 56, 30, 44


def _frame(title: str, x_label: str, y_label: str, plot_w: float, plot_h: float) -> list[str]:
    """The SVG's opening, the title, both axes and their labels."""
    left, top = LEFT, TOP
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
            f'font-size="11">', f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
            f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
            f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
            f'<text x="{left + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>',
            f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
            f'text-anchor="middle">{escape(y_label)}</text>']


def frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names of the points no other beats on both counts (lower x, the cost; higher y, the gain), by cost."""
    ranked = sorted(points, key=lambda n: (points[n][0], -points[n][1]))
    out, best = [], float("-inf")
    for name in ranked:
        if points[name][1] > best:
            out.append(name)
            best = points[name][1]
    return out


def scatter_svg(points: dict[str, tuple[float, float]], title: str, x_label: str, y_label: str) -> str:
    """Each point (x, y) labelled with its name, from the origin up; the Pareto frontier (`frontier`) joined."""
    plot_w, plot_h = WIDTH - LEFT - 40, HEIGHT - TOP - BOTTOM
    high_x = max(x for x, _ in points.values()) * 1.1 or 1.0
    high_y = max(max(y for _, y in points.values()) * 1.15, 1e-9)
    low_y = min(0.0, min(y for _, y in points.values()))

    def at(x: float, y: float) -> tuple[float, float]:
        return LEFT + plot_w * x / high_x, TOP + plot_h * (high_y - y) / (high_y - low_y)

    parts = _frame(title, x_label, y_label, plot_w, plot_h)
    for v in (low_y, high_y / 2, high_y):
        parts.append(f'<text x="{LEFT - 4}" y="{at(0, v)[1] + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    for v in (high_x / 2, high_x):
        parts.append(f'<text x="{at(v, low_y)[0]:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{v:.0f}</text>')
    line = " ".join("{:.1f},{:.1f}".format(*at(*points[n])) for n in frontier(points))
    parts.append(f'<polyline points="{line}" fill="none" stroke="{COLOURS[1]}" stroke-width="1.5"/>')
    for name, (x, y) in points.items():
        px, py = at(x, y)
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{COLOURS[2]}"/>',
                  f'<text x="{px + 6:.1f}" y="{py - 6:.1f}">{escape(name)}</text>']
    parts.append("</svg>")
    return "\n".join(parts)


def curve_svg(series: dict[str, list[float]], title: str, x_label: str, y_label: str, ticks: list[str] | None = None,
              pad: float = 1.0, digits: int = 1) -> str:
    """`series` share their x positions (as many as the longest has); the y range is their span widened by `pad`."""
    left, top = LEFT, TOP
    points_n = max(len(line) for line in series.values())
    values = [v for line in series.values() for v in line]
    low, high = min(values) - pad, max(values) + pad
    plot_w, plot_h = WIDTH - left - 170, HEIGHT - top - BOTTOM

    def x(i: int) -> float:
        return left + plot_w * (i + 0.5) / points_n

    def y(v: float) -> float:
        return top + plot_h * (high - v) / (high - low)

    parts = _frame(title, x_label, y_label, plot_w, plot_h)
    for v in (low + pad, (low + high) / 2, high - pad):
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.{digits}f}</text>')
    for i, tick in enumerate(ticks or []):
        parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(tick)}</text>')
    for k, (name, line) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line))
        parts += [f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>',
                  f'<text x="{left + plot_w + 10}" y="{top + 14 * k + 10}" fill="{colour}">{escape(name)}</text>']
    parts.append("</svg>")
    return "\n".join(parts)
