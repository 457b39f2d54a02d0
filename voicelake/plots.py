"""The report's figures: matplotlib on plain columns (lists of values), each returned as PNG bytes.

No Beam and no data frames: the report reads the lake into ``{column: [values]}`` per table and
hands columns here.  Every figure renders even without data (it then says so), so a report always
has the same figures in the same order.
"""
from __future__ import annotations

import io
from collections import Counter

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import MaxNLocator  # noqa: E402

ROLES = ("customer", "agent")
COLOURS = {"customer": "#1f77b4", "agent": "#ff7f0e", None: "#7f7f7f"}
# The phases of a call in the order a contact passes them; "agent" is drawn without its holds.
PHASES = ("ivr", "queue", "agent", "hold", "after", "call")
PHASE_COLOURS = {"ivr": "#9467bd", "queue": "#8c564b", "agent": "#ff7f0e", "hold": "#bcbd22",
                 "after": "#7f7f7f", "call": "#1f77b4"}
PHASE_LABELS = {"agent": "agent (holds out)"}
SIZE = (7.5, 3.2)


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=96)
    plt.close(fig)
    return buffer.getvalue()


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in these dates", ha="center", va="center", transform=ax.transAxes,
            color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def stacked_by_day(dates: list[str], groups: list[str], values: list[float], *, title: str,
                   ylabel: str) -> bytes:
    """One bar per day, stacked by group (connector or instance)."""
    fig, ax = plt.subplots(figsize=SIZE)
    if not values:
        _empty(ax, "calls")
    else:
        days = sorted(set(dates))
        bottom = [0.0] * len(days)
        for group in sorted(set(groups)):
            heights = [sum(v for d, g, v in zip(dates, groups, values, strict=True) if d == day and g == group)
                       for day in days]
            ax.bar(days, heights, bottom=bottom, label=group)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.legend(fontsize=7, title="voice_connector_id", title_fontsize=7)
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    return png(fig)


def histogram(values: list[float], *, title: str, xlabel: str, what: str = "calls",
              bins: int = 20) -> bytes:
    fig, ax = plt.subplots(figsize=SIZE)
    present = [v for v in values if v is not None]
    if not present:
        _empty(ax, what)
    else:
        ax.hist(present, bins=bins, color="#1f77b4")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(what)
    ax.set_title(title)
    return png(fig)


def time_per_phase(ms_by_day: dict[str, dict[str, int]], calls: dict[str, int]) -> bytes:
    """Left: audio-hours per day, stacked by phase (``ms_by_day``: day -> phase -> ms); right: how
    many calls have each phase (``calls``)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE)
    if ms_by_day:
        days = sorted(ms_by_day)
        bottom = [0.0] * len(days)
        for phase in PHASES:
            heights = [ms_by_day[day].get(phase, 0) / 3.6e6 for day in days]
            if any(heights):
                left.bar(days, heights, bottom=bottom, label=PHASE_LABELS.get(phase, phase),
                         color=PHASE_COLOURS[phase])
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        # beside the bars: a single day's bar fills the panel's width
        left.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        left.set_ylabel("audio-hours")
        shown = [p for p in PHASES if calls.get(p)]
        right.bar(shown, [calls[p] for p in shown], color=[PHASE_COLOURS[p] for p in shown])
        right.yaxis.set_major_locator(MaxNLocator(integer=True))
        right.tick_params(axis="x", labelsize=8)
        right.set_ylabel("calls")
    else:
        _empty(left, "phases")
        _empty(right, "phases")
    left.set_title("audio-hours per day by phase", fontsize=9)
    right.set_title("calls with each phase", fontsize=9)
    fig.suptitle("Time per phase")
    return png(fig)


def values_by_role(roles: list[str | None], values: list[float | None]) -> dict[str | None, list[float]]:
    """The values of each role (customer, agent, then None: unknown), nulls left out: a null is
    no measurement (e.g. talk of a contact that never reached an agent), never a 0."""
    return {role: [v for r, v in zip(roles, values, strict=True) if r == role and v is not None]
            for role in (*ROLES, None)}


def by_role(roles: list[str | None], panels: list[tuple[str, list[float | None], str]], *,
            title: str, what: str = "channels") -> bytes:
    """Side-by-side histograms, one per (panel title, values, x label), each split by role."""
    fig, axes = plt.subplots(1, len(panels), figsize=(SIZE[0], SIZE[1]), squeeze=False)
    for ax, (panel, values, xlabel) in zip(axes[0], panels, strict=True):
        shown = False
        for role, present in values_by_role(roles, values).items():
            if present:
                ax.hist(present, bins=15, alpha=0.6, color=COLOURS[role], label=role or "unknown role")
                shown = True
        if shown:
            ax.legend(fontsize=7)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(what)
        else:
            _empty(ax, what)
        ax.set_title(panel, fontsize=9)
    fig.suptitle(title)
    return png(fig)


def _histogram(ax, values: list, *, colour: str, xlabel: str, what: str, title: str) -> None:
    """One panel: a histogram of ``values`` (or a note that there were none), counted in ``what``."""
    if values:
        ax.hist(values, bins=15, color=colour)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(what)
    else:
        _empty(ax, what)
    ax.set_title(title, fontsize=9)


def overlap_and_interruptions(overlap_ratio: list[float | None], interruptions: dict[str, list[int | None]]) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE)
    _histogram(left, [v for v in overlap_ratio if v is not None], colour="#2ca02c",
               xlabel="overlap_ratio (cross-talk / conversation)", what="calls", title="overlap per call")
    totals = {role: sum(v for v in values if v is not None) for role, values in interruptions.items()}
    if any(values for values in interruptions.values()):
        right.bar(list(totals), list(totals.values()), color=[COLOURS[r] for r in totals])
        right.set_ylabel("interruptions (all calls)")
    else:
        _empty(right, "calls")
    right.set_title("interruptions by role", fontsize=9)
    fig.suptitle("Overlap and interruptions")
    return png(fig)


def counted_bars(labels: list[str], *, title: str, what: str) -> bytes:
    """Horizontal bars of how often each label occurs, most frequent on top."""
    fig, ax = plt.subplots(figsize=SIZE)
    counts = Counter(labels).most_common()
    if not counts:
        _empty(ax, what)
    else:
        names = [name for name, _ in reversed(counts)]
        ax.barh(names, [n for _, n in reversed(counts)], color="#d62728")
        ax.set_xlabel(what)
        ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title)
    return png(fig)


def partial_calls_and_gaps(dates: list[str], partial: list[bool | None], gap_ms: list[int]) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE)
    if dates:
        days = sorted(set(dates))
        whole = [sum(1 for d, p in zip(dates, partial, strict=True) if d == day and not p) for day in days]
        broken = [sum(1 for d, p in zip(dates, partial, strict=True) if d == day and p) for day in days]
        left.bar(days, whole, label="whole", color="#1f77b4")
        left.bar(days, broken, bottom=whole, label="partial", color="#d62728")
        left.legend(fontsize=7)
        left.set_ylabel("calls")
    else:
        _empty(left, "calls")
    left.set_title("whole and partial calls per day", fontsize=9)
    _histogram(right, gap_ms, colour="#9467bd", xlabel="gap duration_ms", what="gaps",
               title=f"{len(gap_ms)} gaps")
    fig.suptitle("Partial calls and gaps")
    return png(fig)


def runs(labels: list[str], wall_s: list[float | None], audio_hours_per_cpu_hour: list[float | None]) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE)
    if labels:
        left.bar(labels, [w or 0 for w in wall_s], color="#8c564b")
        left.set_ylabel("seconds")
        right.bar(labels, [a or 0 for a in audio_hours_per_cpu_hour], color="#17becf")
        right.set_ylabel("audio-hours per CPU-hour")
        for ax in (left, right):
            ax.tick_params(axis="x", labelsize=7)
    else:
        _empty(left, "runs")
        _empty(right, "runs")
    left.set_title("wall time per run", fontsize=9)
    right.set_title("throughput per run", fontsize=9)
    fig.suptitle("The runs")
    return png(fig)
