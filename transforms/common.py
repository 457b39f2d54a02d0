"""What every stage shares: the failures output tag and how a call becomes a failure row."""
from __future__ import annotations

from pipeline.model import CallSpec, Failure

FAILURES = "failures"


def call_key(call: CallSpec) -> str:
    """Unique per call and run: the same call id never spans two sources or partitions."""
    return f"{call.date}/{call.source}/{call.partition_id}/{call.call_id}"


def call_failure(call: CallSpec, stage: str, reason: str, detail: str) -> Failure:
    return Failure(stage=stage, reason=reason, detail=detail, source=call.source,
                   call_id=call.call_id, partition_id=call.partition_id, date=call.date,
                   source_key=call.source_key, source_offset=call.source_offset)
