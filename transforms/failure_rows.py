"""Failure -> a ``failures`` table row in its (date, partition), counted by reason."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from voicelake.model import Failure

NAMESPACE = "voicelake.failures"
UNKNOWN_PARTITION = "unknown"


def failure_row(failure: Failure) -> dict:
    return {
        "stage": failure.stage, "reason": failure.reason, "detail": failure.detail,
        "source": failure.source, "call_id": failure.call_id, "source_key": failure.source_key,
        "source_offset": failure.source_offset, "kept": False,
    }


class _ToRow(beam.DoFn):
    def __init__(self, dates):
        self.dates = sorted(set(dates))

    def process(self, failure: Failure):
        # A broken record found in a look-ahead folder belongs to the run of its own day; one
        # whose key names no day at all can belong to no other run, so it is this run's.
        date = failure.date or self.dates[0]
        if date not in self.dates:
            return
        Metrics.counter(NAMESPACE, failure.reason).inc()
        yield ("failures", date, failure.partition_id or UNKNOWN_PARTITION, failure_row(failure))


@beam.typehints.with_input_types(Failure)
@beam.typehints.with_output_types(tuple[str, str, str, dict])
class FailureRows(beam.PTransform):
    """Failures -> (``failures``, date, partition, row) of the run's dates."""

    def __init__(self, dates):
        super().__init__()
        self.dates = list(dates)

    def expand(self, failures):
        return failures | "ToFailureRow" >> beam.ParDo(_ToRow(self.dates)).with_output_types(tuple[str, str, str, dict])
