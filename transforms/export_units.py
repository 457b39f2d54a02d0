"""The export's arrows: lake partitions -> calls -> planned calls -> shards -> files, card.

Metadata only crosses the shuffles (a call's table rows and its units); each shard writer reads
its calls' WAVs itself.  Shard membership is decided from the whole split's call ids (sorted, cut
by estimated size), so the files are the same on every runner and every re-run.
"""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.metrics import Metrics

from voicelake import storage
from voicelake.export import dataset_card, lake, ml_features
from voicelake.export.lake import LakeCall
from voicelake.export.shards import CallPlan, ExportSettings, assign_shards, plan_call, write_shard
from voicelake.layout import join

NAMESPACE = "voicelake.export"
FAILURES = "failures"
PATHS = "paths"
# What an export owns under its output folder: files matching these and not written by this
# export are a previous export's leftovers and are removed.
ShardKey = tuple[str, int, int]  # (split, shard, shard count)
OWNED = ("data/*.parquet", "*_*-of-*.jsonl", "audio/*/*.wav", "features/*/*.npy",
         "README.md", "failures.jsonl", "export.json")


@beam.typehints.with_output_types(LakeCall)
class ReadLakeCalls(beam.PTransform):
    """Dates -> every call of the lake on those dates, with its channel and segment rows."""

    def __init__(self, root: str, dates: list[str]):
        super().__init__()
        self.root, self.dates = root, dates

    def expand(self, p):
        root = self.root
        return (
            p
            | "Dates" >> beam.Create(self.dates)
            | "Partitions" >> beam.FlatMap(lambda d: [(d, v) for v in lake.partitions(root, d)])
            | "SpreadPartitions" >> beam.Reshuffle()
            | "ReadPartition" >> beam.FlatMap(
                lambda dv: lake.read_partition(root, *dv)).with_output_types(LakeCall)
        )


@beam.typehints.with_input_types(LakeCall)
@beam.typehints.with_output_types(tuple[ShardKey, CallPlan])
class PlanCalls(beam.PTransform):
    """Calls -> (split, shard, shard count), planned call: units, split and shard decided."""

    def __init__(self, settings: ExportSettings):
        super().__init__()
        self.settings = settings

    def expand(self, calls):
        settings = self.settings
        # a call without units (a contact that never reached an agent has no conversation
        # segments) takes no place in a shard: its audio would be read for nothing
        plans = (calls | "Plan" >> beam.Map(plan_call, settings)
                 | "WithUnits" >> beam.Filter(lambda c: len(c.units) > 0))
        shard_bytes = settings.shard_mb << 20
        shards = (
            plans
            | "SizeBySplit" >> beam.Map(lambda c: (c.split, (c.call.call_id, c.estimated_bytes)))
            | "GroupSplits" >> beam.GroupByKey()
            | "AssignShards" >> beam.FlatMap(
                lambda kv: [(call_id, (kv[0], *where))
                            for call_id, where in assign_shards(list(kv[1]), shard_bytes).items()])
        )
        return (
            {"plan": plans | "ById" >> beam.Map(lambda c: (c.call.call_id, c)), "shard": shards}
            | "JoinShards" >> beam.CoGroupByKey()
            | "KeyByShard" >> beam.Map(lambda kv: (kv[1]["shard"][0], kv[1]["plan"][0]))
            .with_output_types(tuple[ShardKey, CallPlan])
        )


class _WriteShard(beam.DoFn):
    def __init__(self, settings: ExportSettings):
        self.settings = settings
        self.units = Metrics.counter(NAMESPACE, "units")
        self.audio_ms = Metrics.counter(NAMESPACE, "audio_ms")
        self.failed = Metrics.counter(NAMESPACE, "failures")

    def setup(self):
        ml_features.warm_up(self.settings.features, self.settings.sample_rate)

    def process(self, element):
        (split, shard, count), plans = element
        result = write_shard(list(plans), split, shard, count, self.settings)
        for roles in result.stats["units"].values():
            for n, ms in roles.values():
                self.units.inc(n)
                self.audio_ms.inc(ms)
        self.failed.inc(len(result.failures))
        yield result.stats
        for row in result.failures:
            yield beam.pvalue.TaggedOutput(FAILURES, row)
        for path in result.paths:
            yield beam.pvalue.TaggedOutput(PATHS, path)


@beam.typehints.with_input_types(tuple[ShardKey, CallPlan])
class WriteShards(beam.PTransform):
    """(shard key, CallPlan) -> shard stats (main), failure records, written paths."""

    def __init__(self, settings: ExportSettings):
        super().__init__()
        self.settings = settings

    def expand(self, keyed):
        out = (
            keyed
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShard(self.settings))
            .with_output_types(dict, failures=dict, paths=str).with_outputs(FAILURES, PATHS, main="stats")
        )
        return out.stats, out[FAILURES], out[PATHS]


def _sort_failure(row: dict):
    return tuple("" if row.get(k) is None else str(row[k]) for k in ("call_id", "unit", "reason"))


class _Finish(beam.DoFn):
    """Card, failures and export.json from everything at once; previous leftovers removed."""

    def __init__(self, settings: ExportSettings, card_settings: dict):
        self.settings, self.card_settings = settings, card_settings

    def process(self, _, stats, failures, written):
        out = self.settings.out
        merged = dataset_card.merge_stats(stats)
        failures = sorted(failures, key=_sort_failure)
        by_reason: dict[str, int] = {}
        for row in failures:
            by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
        files = {
            "README.md": dataset_card.render(self.card_settings, merged, by_reason).encode(),
            "failures.jsonl": "".join(json.dumps(r, sort_keys=True) + "\n" for r in failures).encode(),
            "export.json": (json.dumps({**merged, "failures": by_reason, "settings": self.card_settings},
                                       indent=1, sort_keys=True) + "\n").encode(),
        }
        for name, data in files.items():
            storage.write_bytes(join(out, name), data)
        keep = set(written) | {join(out, n) for n in files}
        stale = sorted({p for pattern in OWNED for p in storage.list_paths(join(out, pattern))} - keep)
        if stale:
            storage.delete(stale)
        yield {**merged, "failures": by_reason, "stale_removed": len(stale)}


@beam.typehints.with_output_types(dict)
class FinishExport(beam.PTransform):
    """(shard stats, failure records, written paths) -> the export's summary, once the README,
    failures and export.json are written and stale files removed."""

    def __init__(self, settings: ExportSettings, card_settings: dict):
        super().__init__()
        self.settings, self.card_settings = settings, card_settings

    def expand(self, inputs):
        stats, failures, paths = inputs
        p = stats.pipeline
        return (
            p
            | "Once" >> beam.Create([None])
            | "Finish" >> beam.ParDo(_Finish(self.settings, self.card_settings),
                                     beam.pvalue.AsList(stats), beam.pvalue.AsList(failures),
                                     beam.pvalue.AsList(paths)).with_output_types(dict)
        )
