#!/usr/bin/env python3
"""Draws docs/latency-vs-rate.svg from rate-sweep results: one JSON report of
`charla-load chat --json` per line, in files named on the command line (one series per
file, named after the file). Plain SVG, no plotting library needed.

    python3 docs/plot_latency.py docs/data/rate-sweep-sqlite.jsonl docs/data/rate-sweep-postgres.jsonl
"""
import json
import os
import sys

W, H = 760, 430
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 40, 60
COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700"]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return sorted(rows, key=lambda r: r.get("offered_rate") or r.get("msgs_per_sec") or 0)


def main(paths):
    series = []
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0].replace("rate-sweep-", "")
        rows = load(path)
        pts_ack = [(r["offered_rate"], r["ack_p99_ms"]) for r in rows if r.get("ack_p99_ms") is not None]
        pts_del = [(r["offered_rate"], r["delivery_p99_ms"]) for r in rows if r.get("delivery_p99_ms") is not None]
        series.append((f"{name} ack p99", pts_ack, False))
        series.append((f"{name} delivery p99", pts_del, True))
    xs = [x for _, pts, _ in series for x, _ in pts]
    ys = [y for _, pts, _ in series for _, y in pts]
    if not xs:
        sys.exit("no data")
    xmax = max(xs) * 1.05
    ymax = max(max(ys) * 1.1, 50)

    def px(x):
        return LEFT + (W - LEFT - RIGHT) * x / xmax

    def py(y):
        return H - BOTTOM - (H - TOP - BOTTOM) * min(y, ymax) / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W/2 - 60}" y="22" font-size="15">Latency against offered rate (charla-load chat)</text>']
    for i in range(6):
        y = ymax * i / 5
        out.append(f'<line x1="{LEFT}" x2="{W-RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT-8}" y="{py(y)+4:.1f}" text-anchor="end">{y:.0f}</text>')
    for i in range(6):
        x = xmax * i / 5
        out.append(f'<text x="{px(x):.1f}" y="{H-BOTTOM+18}" text-anchor="middle">{x:,.0f}</text>')
    out.append(f'<line x1="{LEFT}" x2="{W-RIGHT}" y1="{H-BOTTOM}" y2="{H-BOTTOM}" stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H-BOTTOM}" stroke="#333"/>')
    out.append(f'<text x="{(LEFT + W - RIGHT)/2}" y="{H-18}" text-anchor="middle">offered rate (messages per second, both directions)</text>')
    out.append(f'<text x="18" y="{(TOP + H - BOTTOM)/2}" transform="rotate(-90 18 {(TOP + H - BOTTOM)/2})" text-anchor="middle">p99 latency (ms)</text>')
    for k, (name, pts, dashed) in enumerate(series):
        colour = COLOURS[(k // 2) % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = TOP + 20 + 20 * k
        out.append(f'<line x1="{W-RIGHT+15}" x2="{W-RIGHT+40}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W-RIGHT+46}" y="{ly+4}">{name}</text>')
    out.append("</svg>")
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "latency-vs-rate.svg")
    with open(target, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
