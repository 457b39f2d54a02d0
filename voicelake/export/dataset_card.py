"""The export's ``README.md``: a Hugging Face style dataset card, from the shards' counts.

YAML front matter (``configs`` with each split's files, ``dataset_info`` with the features and
split sizes) so the Hub and ``load_dataset`` see the splits, then what a model builder needs to
judge the data: hours and units per split and role and per phase of the calls, sample rate, how
units and splits were made, which phases the units come from and why, the VAD method behind the
segments, the source dates, the features and every column.
"""
from __future__ import annotations

from collections import defaultdict

from voicelake.analysis.features import method_note
from voicelake.export.manifests import UNIT_COLUMNS, hf_dtype
from voicelake.export.units import PHASES


def merge_stats(parts: list[dict]) -> dict:
    """Add up per-shard counts: {"units": {split: {role: [units, ms]}}, "phases": {phase: [units,
    ms]}, "calls": {split: n}, "shards": {split: n}, "vad_methods": [...]}."""
    units: dict = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    phases: dict = defaultdict(lambda: [0, 0])
    calls: dict = defaultdict(int)
    shards: dict = defaultdict(int)
    vad = set()
    for part in parts:
        for split, roles in part["units"].items():
            for role, (n, ms) in roles.items():
                units[split][role][0] += n
                units[split][role][1] += ms
        for phase, (n, ms) in part["phases"].items():
            phases[phase][0] += n
            phases[phase][1] += ms
        for split, n in part["calls"].items():
            calls[split] += n
        for split, n in part["shards"].items():
            shards[split] += n
        vad.update(part["vad_methods"])
    return {"units": {s: {r: list(v) for r, v in sorted(roles.items())} for s, roles in sorted(units.items())},
            "phases": {p: phases[p] for p in sorted(phases, key=_phase_order)},
            "calls": dict(sorted(calls.items())), "shards": dict(sorted(shards.items())),
            "vad_methods": sorted(vad)}


def _phase_order(phase: str) -> tuple[int, str]:
    """Phases in the order a contact passes them, then anything else (every: whole-call units)."""
    return (PHASES.index(phase) if phase in PHASES else len(PHASES), phase)


def _hours(ms: int) -> str:
    return f"{ms / 3_600_000:.3f}"


def _yaml(settings: dict, stats: dict) -> list[str]:
    lines = ["---", "pretty_name: voicelake contact-center speech units", "tags:", "- audio",
             "- telephony", "- contact-center", "configs:", "- config_name: default", "  data_files:"]
    for split in settings["splits"]:
        lines += [f"  - split: {split}", f"    path: {settings['data_files'][split]}"]
    if settings["format"] == "hf":
        lines += ["dataset_info:", "  features:", "  - name: audio", "    dtype:", "      audio:",
                  f"        sampling_rate: {settings['sample_rate']}"]
        for name, type_, _ in UNIT_COLUMNS:
            lines += [f"  - name: {name}", f"    dtype: {hf_dtype(type_)}"]
        for name, width in settings["feature_widths"].items():
            lines += [f"  - name: {name}", "    list:", "      list: float32", f"      length: {width}"]
        lines += ["  splits:"]
        for split in settings["splits"]:
            n = sum(v[0] for v in stats["units"].get(split, {}).values())
            lines += [f"  - name: {split}", f"    num_examples: {n}"]
    return lines + ["---"]


def render(settings: dict, stats: dict, failures: dict[str, int]) -> str:
    """settings: format, splits, data_files, sample_rate, audio, dates, units, phases, split_rule,
    features (text or None), feature_widths, command."""
    out = _yaml(settings, stats)
    total_ms = sum(ms for roles in stats["units"].values() for _, ms in roles.values())
    total_units = sum(n for roles in stats["units"].values() for n, _ in roles.values())
    out += ["", "# voicelake export", "",
            f"Speech units cut from contact-center calls of a voicelake lake: {total_units} units, "
            f"{_hours(total_ms)} hours of audio, format `{settings['format']}`.", "",
            "| split | role | units | hours | calls |", "|---|---|---|---|---|"]
    for split in settings["splits"]:
        roles = stats["units"].get(split, {})
        for role, (n, ms) in roles.items():
            out.append(f"| {split} | {role} | {n} | {_hours(ms)} | {stats['calls'].get(split, 0)} |")
        if not roles:
            out.append(f"| {split} | - | 0 | 0.000 | 0 |")
    out += ["", "| phase | units | hours |", "|---|---|---|"]
    out += [f"| {phase} | {n} | {_hours(ms)} |" for phase, (n, ms) in stats["phases"].items()]
    if not stats["phases"]:
        out.append("| - | 0 | 0.000 |")
    out += ["", "## How it was made", "",
            f"- **Source dates:** {', '.join(settings['dates'])}.",
            f"- **Audio:** {settings['audio']}, 16-bit PCM at {settings['sample_rate']} Hz.",
            f"- **Units:** {settings['units']}.",
            f"- **Phases:** {settings['phases']}",
            f"- **VAD:** the lake's segments table, method {', '.join(stats['vad_methods']) or 'unknown'} "
            f"({'; '.join(method_note(m) for m in stats['vad_methods']) or 'no calls'}).",
            f"- **Splits:** {settings['split_rule']}. No call is in two splits.",
            f"- **Features:** {settings['features'] or 'none'}.",
            f"- **Command:** `{settings['command']}`.",
            "- **Text:** none. The lake has no transcripts, so no text field is written.", ""]
    if failures:
        out += ["Calls or units that could not be exported are listed in `failures.jsonl`: " +
                ", ".join(f"{n} × {reason}" for reason, n in sorted(failures.items())) + ".", ""]
    out += ["## Columns", "", "| column | meaning |", "|---|---|",
            "| `audio` | the unit's audio (hf: {bytes: WAV, path}; lhotse, nemo: a span of a WAV under `audio/`) |"]
    out += [f"| `{name}` | {text} |" for name, _, text in UNIT_COLUMNS]
    out += [f"| `{name}` | (frames, {width}) float32 array |" for name, width in settings["feature_widths"].items()]
    out += ["", "## Use with care", "",
            "Contact-center calls carry personal data of customers and agents. Keep this dataset under "
            "the same access rules as the recordings it comes from.", ""]
    return "\n".join(out)
