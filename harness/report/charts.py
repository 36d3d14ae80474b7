"""Pictures: a timeline per drill and a trend per scenario, as PNG and SVG bytes.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global backend
switch, safe from any thread). The caller scans the bytes for secrets before writing them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.record.model import DrillRecord

__all__ = ["timeline_chart", "trend_chart", "render"]

_LANES = ["escrows", "agent", "health", "alerts", "faults", "phases"]
_SEV_COLOR = {"SEV-1": "#b2182b", "SEV-2": "#ef8a62", "SEV-3": "#f4c542", "SEV-4": "#67a9cf"}
_HEALTH_COLOR = {"ok": "#1a9850", "degraded": "#fdae61", "halted": "#d73027", "unreachable": "#999999"}
_PHASE_COLOR = {"passed": "#91bfdb", "failed": "#d73027", "error": "#7b3294", "skipped": "#dddddd"}


def render(fig: Figure) -> dict[str, bytes]:
    """The figure as {"png": ..., "svg": ...} (the SVG without a date, so reruns compare equal)."""
    FigureCanvasAgg(fig)
    out: dict[str, bytes] = {}
    for fmt, kwargs in (("png", {"dpi": 110}), ("svg", {"metadata": {"Date": None}})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, bbox_inches="tight", **kwargs)
        out[fmt] = buf.getvalue()
    return out


def _end(d: DrillRecord) -> float:
    rels = [e.rel_s for e in d.timeline] + [p.end_rel_s or p.start_rel_s for p in d.phases]
    return max(rels, default=0.0)


def timeline_chart(d: DrillRecord) -> dict[str, bytes]:
    """Phases, injections, alerts, health, restarts and escrows of one drill; MTTD and MTTR marked."""
    fig = Figure(figsize=(11, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    lane = {name: i for i, name in enumerate(_LANES)}
    start = min([e.rel_s for e in d.timeline] + [p.start_rel_s for p in d.phases] + [0.0])
    end = max(_end(d), start + 1.0)
    pad = (end - start) * 0.02

    for p in d.phases:
        width = max((p.end_rel_s if p.end_rel_s is not None else end) - p.start_rel_s, (end - start) * 0.004)
        ax.broken_barh([(p.start_rel_s, width)], (lane["phases"] - 0.35, 0.7), facecolors=_PHASE_COLOR[p.outcome],
                       edgecolor="white", linewidth=0.5)
        if width > (end - start) * 0.05:
            ax.text(p.start_rel_s + width / 2, lane["phases"], p.name, ha="center", va="center", fontsize=7)

    for f in d.faults:
        if f.injected_rel_s is None:
            continue
        healed = f.healed_rel_s if f.healed_rel_s is not None else end
        ax.broken_barh([(f.injected_rel_s, max(healed - f.injected_rel_s, 0.01))], (lane["faults"] - 0.3, 0.6),
                       facecolors="#fbb4ae", edgecolor="#b2182b")
        ax.text(f.injected_rel_s, lane["faults"] + 0.38, f.type, fontsize=7, va="bottom")

    for inc in d.incidents:
        for ev in inc.events:
            if ev.rel_s is None:
                continue
            ax.scatter([ev.rel_s], [lane["alerts"]], s=46, color=_SEV_COLOR.get(ev.severity, "grey"), zorder=3,
                       edgecolors="black", linewidths=0.4, marker="o" if ev.status != "resolved" else "s")
            ax.text(ev.rel_s, lane["alerts"] - 0.42, ev.status[:4], fontsize=6, ha="center", va="top")

    health = [(e.rel_s, str(e.data.get("status"))) for e in d.timeline if e.kind == "health"]
    health += [(e.rel_s, "unreachable") for e in d.timeline if e.kind == "health.unreachable"]
    health.sort()
    for i, (rel, status) in enumerate(health):
        nxt = health[i + 1][0] if i + 1 < len(health) else end
        ax.broken_barh([(rel, max(nxt - rel, 0.01))], (lane["health"] - 0.25, 0.5),
                       facecolors=_HEALTH_COLOR.get(status, "#cccccc"))

    for kind, marker, color in (("agent.exit", "x", "#d73027"), ("agent.restart", "^", "#4575b4"),
                                ("agent.start", "|", "#333333")):
        xs = [e.rel_s for e in d.timeline if e.kind == kind]
        if xs:
            ax.scatter(xs, [lane["agent"]] * len(xs), marker=marker, color=color, s=40, zorder=3, label=kind)

    for kind, color in (("escrow.opened", "#999999"), ("escrow.proven", "#1a9850"), ("escrow.expired", "#d73027"),
                        ("escrow.reassigned", "#7b3294")):
        xs = [e.rel_s for e in d.timeline if e.kind == kind]
        if xs:
            ax.vlines(xs, lane["escrows"] - 0.3, lane["escrows"] + 0.3, colors=color, linewidth=1.2)

    if d.t0 is not None:
        ax.axvline(0.0, color="black", linewidth=1, label="t0 (injection)")
    for value, budget, label, color in ((d.mttd_s, d.budgets.detect_s, "MTTD", "#2166ac"),
                                        (d.contain_s, d.budgets.contain_s, "contained", "#e08214"),
                                        (d.mttr_s, d.budgets.recover_s, "MTTR", "#1a9850")):
        if value is not None:
            ax.axvline(value, color=color, linestyle="--", linewidth=1.4, label=f"{label} {value:.1f} s")
        if budget is not None and d.t0 is not None and budget <= end * 1.2:
            ax.axvline(budget, color=color, linestyle=":", linewidth=1.0, alpha=0.8, label=f"{label} budget {budget:g} s")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)

    ax.set_yticks(range(len(_LANES)), _LANES)
    ax.set_ylim(-0.7, len(_LANES) - 0.3)
    ax.set_xlim(start - pad, end + pad)
    ax.set_xlabel("seconds since injection (t0)" if d.t0 is not None else "seconds since the drill started")
    ax.set_title(f"{d.scenario}: {d.status}", fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return render(fig)


def trend_chart(scenario: str, entries: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
    """MTTD, time to contain and MTTR of ``scenario`` over its history entries (oldest first)."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(1, len(entries) + 1))
    for key, label, color in (("mttd_s", "MTTD", "#2166ac"), ("contain_s", "contain", "#e08214"), ("mttr_s", "MTTR", "#1a9850")):
        points = [(x, e.get(key)) for x, e in zip(xs, entries) if e.get(key) is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=color, label=label)
    failed = [(x, e.get("mttr_s") or e.get("mttd_s") or 0.0) for x, e in zip(xs, entries) if e.get("status") != "passed"]
    if failed:
        ax.scatter([f[0] for f in failed], [f[1] for f in failed], marker="x", s=80, color="#d73027", zorder=4, label="not passed")
    if entries:
        last = entries[-1].get("budgets") or {}
        for key, color in (("detect_s", "#2166ac"), ("recover_s", "#1a9850")):
            if last.get(key):
                ax.axhline(last[key], color=color, linestyle=":", linewidth=0.9)
    ax.set_xticks(xs, [str(e.get("run_id", ""))[-8:] for e in entries], rotation=45, fontsize=7, ha="right")
    ax.set_ylabel("seconds since injection")
    ax.set_title(f"{scenario}: last {len(entries)} run(s)", fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    return render(fig)
