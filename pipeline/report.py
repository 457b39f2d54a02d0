"""``voicelake report --lake ROOT --dates ...``: one static HTML page about the lake's days.

The page shows the runs' own numbers (from ``_runs/<date>/summary.json``) and figures of calls and
audio-hours per day and connector, durations, time per phase (IVR, queue, agent, hold, after),
talk share, silence, overlap and interruptions, SNR and clipping by role, failures by reason and
stage, partial calls and gaps.  Talk, overlap and interruptions are the lake's conversation
columns: a contact that never reached an agent has none (null), so it is left out of those
figures, and counted in their captions, rather than drawn as a call without talk.  Figures are PNGs
embedded in the page, so the file stands alone (mail it, open it offline).  The lake is read with
pyarrow through voicelake.storage, local or S3 alike; no Beam.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections import Counter

from pipeline.dates import parse_dates
from schemas.tables import PARTITION_COLUMNS
from voicelake import layout
from voicelake.analysis.phases import AGENT, HOLD

FIGURES_STATUS_ID = "figures-status"


def read_table(lake: str, table: str, dates: list[str]) -> dict[str, list]:
    """A table's rows for the dates as columns, with the partition columns from the folders."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.tables import TABLES
    from voicelake import storage

    parts = []
    for date in dates:
        for path in storage.list_paths(layout.table_files(lake, table, date)):
            data = pq.read_table(io.BytesIO(storage.read_bytes(path)))
            partition = layout.partition_of(lake, path).partition
            data = data.append_column("date", pa.array([date] * data.num_rows, pa.string()))
            parts.append(data.append_column("voice_connector_id",
                                            pa.array([partition] * data.num_rows, pa.string())))
    if not parts:
        return {name: [] for name in [*TABLES[table].names, *(n for n, _ in PARTITION_COLUMNS)]}
    # days written before and after a column was added: the older ones read it as null
    return pa.concat_tables(parts, promote_options="default").to_pydict()


def read_runs(lake: str, dates: list[str]) -> list[dict]:
    """The summaries of the runs that covered any of the dates, in date order."""
    from voicelake import storage

    found = []
    for path in storage.list_paths(layout.summaries(lake)):
        summary = json.loads(storage.read_bytes(path))
        if set(summary.get("dates", [])) & set(dates):
            found.append(summary)
    return sorted(found, key=lambda s: s["dates"])


def run_numbers(summary: dict) -> dict[str, str]:
    """The figures of one run, as the page's table shows them."""
    run = summary.get("run", {})
    counters = summary.get("counters", {})
    throttle_retries = sum(v for k, v in counters.items() if "throttl" in k and not k.startswith("failures."))

    def shown(value, unit=""):
        return "n/a" if value is None else f"{value}{unit}"

    return {
        "dates": ", ".join(summary["dates"]),
        "records": str(summary["records"]),
        "calls": str(summary["calls"]),
        "partial calls": shown(summary.get("partial_calls")),
        "failures": str(summary["failed"]),
        "audio hours": f"{summary['audio_seconds'] / 3600:.3f}",
        "wall time": shown(run.get("wall_seconds"), " s"),
        "CPU on the driver's machine": shown(run.get("cpu_seconds"), " s"),
        "audio-hours per CPU-hour": shown(run.get("audio_hours_per_cpu_hour")),
        "throttled (failures / retries)":
            f"{summary['failures_by_reason'].get('throttled', 0)} / {throttle_retries}",
        "MB fetched": f"{summary['bytes_fetched'] / 1e6:.1f}",
        "warnings": "; ".join(summary.get("warnings", [])) or "none",
    }


def non_speech_share(channels: dict[str, list], n: int) -> list[float | None]:
    """non_speech_ms / duration_ms per channel; None where unknown (lakes written before the column)."""
    return [None if ns is None or not d else ns / d
            for ns, d in zip(channels.get("non_speech_ms", [None] * n), channels["duration_ms"], strict=True)]


def phase_ms_by_day(phases: dict[str, list]) -> dict[str, dict[str, int]]:
    """ms per day and phase from the phases table.  A hold lies inside the agent phase, whose row
    counts its time too: it is taken out of agent, so a day's phases add up to its audio."""
    out: dict[str, dict[str, int]] = {}
    for date, phase, ms in zip(phases["date"], phases["phase"], phases["duration_ms"], strict=True):
        day = out.setdefault(date, {})
        day[phase] = day.get(phase, 0) + ms
        if phase == HOLD:
            day[AGENT] = day.get(AGENT, 0) - ms
    return out


def calls_per_phase(phases: dict[str, list]) -> dict[str, int]:
    """How many calls have each phase; a call with two holds counts once."""
    had = set(zip(phases["date"], phases["call_id"], phases["phase"], strict=True))
    return dict(Counter(phase for _, _, phase in had))


def without_conversation(call_ids: list[str], values: list) -> int:
    """Calls whose conversation column is null: a contact that never reached an agent has no
    conversation to measure, so a figure leaves it out rather than drawing it as 0."""
    return len({c for c, v in zip(call_ids, values, strict=True) if v is None})


def left_out(calls: int) -> str:
    """What a figure's caption says of the calls it leaves out."""
    return f" ({calls} contact{'s' if calls != 1 else ''} that reached no agent left out)" if calls else ""


def figures(lake: str, dates: list[str], runs: list[dict]) -> list[tuple[str, bytes]]:
    """(caption, PNG) for every figure of the page, always the same ones in the same order."""
    from voicelake import plots

    calls = read_table(lake, "calls", dates)
    channels = read_table(lake, "channels", dates)
    gaps = read_table(lake, "gaps", dates)
    failures = read_table(lake, "failures", dates)
    phases = read_table(lake, "phases", dates)
    hours = [(ms or 0) / 3.6e6 for ms in calls["duration_ms"]]
    roles = channels["role"]
    return [
        ("Calls per day and connector",
         plots.stacked_by_day(calls["date"], calls["voice_connector_id"], [1] * len(calls["call_id"]),
                              title="Calls per day and connector", ylabel="calls")),
        ("Audio-hours per day and connector",
         plots.stacked_by_day(calls["date"], calls["voice_connector_id"], hours,
                              title="Audio-hours per day and connector", ylabel="audio-hours")),
        ("Call duration",
         plots.histogram([(ms or 0) / 60000 for ms in calls["duration_ms"]], title="Call duration",
                         xlabel="minutes")),
        ("Time per phase: IVR, queue, agent, hold, after, or one-phase call",
         plots.time_per_phase(phase_ms_by_day(phases), calls_per_phase(phases))),
        ("Talk share by role over the conversation"
         + left_out(without_conversation(channels["call_id"], channels["talk_share"])),
         plots.by_role(roles, [("talk_share", channels["talk_share"], "talk_ms / conversation duration")],
                       title="Talk share by role over the conversation")),
        ("Silence and non-speech sound by role",
         plots.by_role(roles, [("silence_ratio", channels["silence_ratio"], "share of silent frames"),
                               ("non-speech share", non_speech_share(channels, len(roles)),
                                "non_speech_ms / duration_ms (hold music, prompts, noise)")],
                       title="Silence and non-speech sound by role")),
        ("Overlap and interruptions over the conversation"
         + left_out(without_conversation(calls["call_id"], calls["overlap_ratio"])),
         plots.overlap_and_interruptions(calls["overlap_ratio"],
                                         {"customer": calls["interruptions_customer"],
                                          "agent": calls["interruptions_agent"]})),
        ("SNR and clipping by role",
         plots.by_role(roles, [("snr_db", channels["snr_db"], "dB"),
                               ("clipped_ratio", channels["clipped_ratio"], "share of clipped samples")],
                       title="SNR and clipping by role")),
        ("Failures by reason and stage",
         plots.counted_bars([f"{s} / {r}" for s, r in zip(failures["stage"], failures["reason"], strict=True)],
                            title="Failures by stage / reason", what="failures")),
        ("Partial calls and gaps",
         plots.partial_calls_and_gaps(calls["date"], calls["partial"], gaps["duration_ms"])),
        ("The runs: wall time and throughput",
         plots.runs([", ".join(s["dates"]) for s in runs],
                    [s.get("run", {}).get("wall_seconds") for s in runs],
                    [s.get("run", {}).get("audio_hours_per_cpu_hour") for s in runs])),
    ]


# Marks, once the page has loaded, how many figures decoded: what a browser test reads back.
_SCRIPT = f"""
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.querySelectorAll("figure img"));
  var loaded = images.filter(function (img) {{ return img.complete && img.naturalWidth > 0; }});
  var status = document.getElementById("{FIGURES_STATUS_ID}");
  status.dataset.loaded = loaded.length;
  status.textContent = loaded.length + " of " + images.length + " figures loaded";
}});
"""

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
figure { display: inline-block; margin: 0.5em; }
figure img { width: 520px; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
"""


def render(lake: str, dates: list[str]) -> str:
    runs = read_runs(lake, dates)
    numbers = [run_numbers(s) for s in runs]
    head = list(numbers[0]) if numbers else []
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(n[k])}</td>" for k in head) + "</tr>\n"
                   for n in numbers)
    table = (f"<table id=\"run-numbers\"><tr>{''.join(f'<th>{html.escape(k)}</th>' for k in head)}</tr>\n"
             f"{rows}</table>" if numbers else "<p id=\"run-numbers\">no run summary for these dates</p>")
    shown = figures(lake, dates, runs)
    images = "\n".join(
        f"<figure><img alt=\"{html.escape(caption)}\" "
        f"src=\"data:image/png;base64,{base64.b64encode(data).decode()}\">"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>" for caption, data in shown)
    title = f"voicelake report: {dates[0]}" + (f" to {dates[-1]}" if len(dates) > 1 else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Lake <code>{html.escape(lake)}</code>, {len(dates)} day(s). <span id="{FIGURES_STATUS_ID}"
data-loaded="0">{len(shown)} figures, not yet loaded</span></p>
<h2>The runs</h2>
{table}
<h2>Figures</h2>
{images}
<script>{_SCRIPT}</script>
</body></html>
"""


def default_out(lake: str, dates: list[str]) -> str:
    from voicelake import storage

    if storage.is_s3(lake):  # a page to open here, not one more object in the lake
        return f"voicelake-report-{layout.run_label(dates)}.html"
    return layout.report_path(lake, dates)


def write_report(lake: str, dates: list[str], out: str | None = None) -> str:
    from voicelake import storage

    out = out or default_out(lake, dates)
    storage.write_bytes(out, render(lake, dates).encode())
    return out


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command's arguments, ``dates`` as the days; usage and exit status 2 when they are wrong."""
    parser = argparse.ArgumentParser(
        prog="voicelake report",
        description="Write one static HTML page with the runs' numbers and figures of the lake's "
                    "calls, channels, failures and gaps for the given days.",
        epilog="example: voicelake report --lake demo-work/lake --dates 2024-05-14")
    parser.add_argument("--lake", required=True, help="root of the lake (s3://bucket/prefix or a local path)")
    parser.add_argument("--dates", required=True,
                        help="YYYY-MM-DD, a comma-separated list, or FIRST..LAST")
    parser.add_argument("--out", default=None,
                        help="where to write the page (default: <lake>/_runs/<dates>/report.html "
                             "for a local lake, ./voicelake-report-<dates>.html for an S3 lake)")
    args = parser.parse_args(argv)
    try:
        args.dates = parse_dates(args.dates, "--dates")
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        import matplotlib  # noqa: F401 - asked only whether it is installed, before any work
    except ImportError:
        print("voicelake report: matplotlib is not installed: pip install 'voicelake[report]'",
              file=sys.stderr)
        return 2
    print(write_report(args.lake, args.dates, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
