"""What every stage shares: the failures output tag and how a call becomes a failure row."""
from __future__ import annotations

import apache_beam as beam

from voicelake.media.kvs_client import KvsArchive, RetryPolicy
from voicelake.model import CallSpec, Failure

FAILURES = "failures"


def call_key(call: CallSpec) -> str:
    """Unique per call and run: the same call id never spans two sources or partitions."""
    return f"{call.date}/{call.source}/{call.partition_id}/{call.call_id}"


def call_failure(call: CallSpec, stage: str, reason: str, detail: str) -> Failure:
    return Failure(stage=stage, reason=reason, detail=detail, source=call.source,
                   call_id=call.call_id, partition_id=call.partition_id, date=call.date,
                   source_key=call.source_key, source_offset=call.source_offset)


class KvsDoFn(beam.DoFn):
    """A DoFn that talks to KVS: the archive (paced, retried, cached endpoints) is built per worker
    in ``setup``, never pickled with the DoFn."""

    def __init__(self, *, endpoint_url, region, max_attempts, retry_budget_s):
        self.endpoint_url, self.region = endpoint_url, region
        self.max_attempts, self.retry_budget_s = max_attempts, retry_budget_s

    def throttled_since(self, seen: int) -> int:
        """Throttled answers met since ``seen`` (this worker's count), for a stage's counter."""
        return self.archive.retry.throttled - seen

    def setup(self):
        self.archive = KvsArchive(endpoint_url=self.endpoint_url, region=self.region,
                                  retry=RetryPolicy(max_attempts=self.max_attempts,
                                                    budget_s=self.retry_budget_s))
