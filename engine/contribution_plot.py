"""The contribution table as an SVG bar chart: each candidate's gain alone, with its training memory.

Plain SVG text, no plotting library; one row per candidate, in table order.
"""
from __future__ import annotations

from html import escape

from engine.contribution import Contribution

ROW, LABEL, BAR, MEMORY = 18, 300, 360, 110


def contribution_svg(table: list[Contribution], title: str = "Contribution of each candidate trained alone") -> str:
    scale = max((abs(c.gain) for c in table), default=0.0) or 1.0
    zero = LABEL + BAR // 2
    width, height = LABEL + BAR + MEMORY, ROW * (len(table) + 3)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="6" y="{ROW}" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<text x="{zero}" y="{2 * ROW - 4}" text-anchor="middle">gain on later text (nats/token, '
             f'max {scale:.4f})</text>',
             f'<text x="{LABEL + BAR + 6}" y="{2 * ROW - 4}">training KiB</text>',
             f'<line x1="{zero}" y1="{2 * ROW}" x2="{zero}" y2="{height - ROW // 2}" stroke="#888"/>']
    for i, c in enumerate(table):
        y = ROW * (i + 2)
        length = abs(c.gain) / scale * (BAR // 2 - 4)
        x = zero if c.gain >= 0 else zero - length
        colour = "#3a7bd5" if c.gain >= 0 else "#d55a3a"
        parts += [f'<text x="{LABEL - 6}" y="{y + ROW - 5}" text-anchor="end">{escape(c.candidate.name)}</text>',
                  f'<rect x="{x:.1f}" y="{y + 3}" width="{length:.1f}" height="{ROW - 6}" fill="{colour}"/>',
                  f'<text x="{LABEL + BAR + 6}" y="{y + ROW - 5}">{c.training_bytes / 1024:,.0f}</text>']
    parts.append("</svg>")
    return "\n".join(parts)
