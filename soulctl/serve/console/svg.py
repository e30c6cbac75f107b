"""Charts drawn on the server as SVG: no script, no build step, nothing fetched. Each point
links to what it shows and says its figures in a tooltip (<title>)."""

from __future__ import annotations

from html import escape

PALETTE = ("#3b6ea5", "#c8553d", "#588b8b", "#8e6c8a", "#d4a017", "#6a994e")


def series_chart(labels: list[str], series: list[dict], bound: float | None = None, bound_label: str = "",
                 href=None, width: int = 760, height: int = 220, title: str = "") -> str:
    """Lines over the generations: each series {name, values (None: not measured), colour};
    a dashed horizontal bound when given."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 22, 34
    values = [v for s in series for v in s["values"] if v is not None] + ([bound] if bound is not None else [])
    low, high = (min(values + [0.0]), max(values + [0.0])) if values else (0.0, 1.0)
    if high - low < 1e-12:
        high = low + 1.0
    span_x = max(len(labels) - 1, 1)

    def px(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * i / span_x

    def py(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (high - v) / (high - low)

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg">', f'<text x="{pad_l}" y="14" class="t">{escape(title)}</text>']
    for v in (low, (low + high) / 2, high):
        out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{py(v):.1f}" y2="{py(v):.1f}" class="grid"/>'
                   f'<text x="{pad_l - 6}" y="{py(v) + 4:.1f}" class="ax" text-anchor="end">{v:.4g}</text>')
    step = max(1, len(labels) // 12)
    for i in range(0, len(labels), step):
        out.append(f'<text x="{px(i):.1f}" y="{height - 12}" class="ax" text-anchor="middle">{escape(labels[i])}</text>')
    if bound is not None:
        out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{py(bound):.1f}" y2="{py(bound):.1f}" class="bound">'
                   f'<title>{escape(bound_label)} {bound:g}</title></line>'
                   f'<text x="{width - pad_r}" y="{py(bound) - 4:.1f}" class="ax bound-t" text-anchor="end">'
                   f'{escape(bound_label)} {bound:g}</text>')
    for n, s in enumerate(series):
        colour = s.get("colour", PALETTE[n % len(PALETTE)])
        pts = [(px(i), py(v), i, v) for i, v in enumerate(s["values"]) if v is not None]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        for x, y, i, v in pts:
            dot = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{colour}">'
                   f'<title>{escape(labels[i])}: {escape(s["name"])} {v:.6g}</title></circle>')
            out.append(f'<a href="{escape(href(i))}">{dot}</a>' if href else dot)
        out.append(f'<text x="{pad_l + 8 + 150 * n}" y="{height - 1}" class="ax" fill="{colour}">'
                   f'● {escape(s["name"])}</text>')
    out.append("</svg>")
    return "".join(out)


def scatter(points: list[dict], width: int = 760, height: int = 520) -> str:
    """The resonance map: a dot a reply, its colour its cluster, its size and opacity its
    resonance, a dark ring around the replies the next night would learn from."""
    if not points:
        return '<p class="empty">No replies to draw yet: talk to the soul first.</p>'
    pad = 14
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2 * pad) / ((x1 - x0) or 1.0)
    sy = (height - 2 * pad) / ((y1 - y0) or 1.0)
    out = [f'<svg class="map" viewBox="0 0 {width} {height}" role="img" aria-label="resonance map" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for p in sorted(points, key=lambda p: (p["next"], p["resonance"] or 0)):  # the strongest drawn last
        r = p["resonance"]
        size = 2.5 + 4.5 * (r or 0)
        ring = ' stroke="#111" stroke-width="1.4"' if p["next"] else ""
        tip = f'{p["prose"]} — resonance {"unscored" if r is None else f"{r:.2f}"}'
        out.append(f'<a href="/packet/{escape(p["id"])}"><circle id="p-{escape(p["id"])}" '
                   f'cx="{pad + (p["x"] - x0) * sx:.1f}" cy="{pad + (y1 - p["y"]) * sy:.1f}" r="{size:.1f}" '
                   f'fill="{PALETTE[p["cluster"] % len(PALETTE)]}" fill-opacity="{0.25 + 0.7 * (r or 0):.2f}"'
                   f'{ring} data-resonance="{"" if r is None else f"{r:.3f}"}"><title>{escape(tip)}</title>'
                   f'</circle></a>')
    out.append("</svg>")
    return "".join(out)
