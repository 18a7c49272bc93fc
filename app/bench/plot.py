"""Line charts as plain SVG text (no plotting library): one polyline per series over evenly spaced points, with
the points' labels under the x axis; what the benchmarks write beside their JSON.
"""
from __future__ import annotations

from html import escape

COLOURS = ["#888888", "#3a7bd5", "#d55a3a", "#2aa876", "#9b59b6", "#e0a100", "#222222"]


def curve_svg(series: dict[str, list[float]], title: str, x_label: str, y_label: str, ticks: list[str] | None = None,
              pad: float = 1.0, digits: int = 1) -> str:
    """`series` share their x positions (as many as the longest has); the y range is their span widened by `pad`."""
    width, height, left, top, bottom = 640, 360, 56, 30, 44
    points_n = max(len(line) for line in series.values())
    values = [v for line in series.values() for v in line]
    low, high = min(values) - pad, max(values) + pad
    plot_w, plot_h = width - left - 170, height - top - bottom

    def x(i: int) -> float:
        return left + plot_w * (i + 0.5) / points_n

    def y(v: float) -> float:
        return top + plot_h * (high - v) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
             f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>',
             f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
             f'text-anchor="middle">{escape(y_label)}</text>']
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
