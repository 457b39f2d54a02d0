"""Pipeline options, Beam-style: one PipelineOptions subclass read with ``options.view_as``."""
from __future__ import annotations

import datetime as dt

from apache_beam.options.pipeline_options import PipelineOptions

from voicelake.firehose import DEFAULT_MAX_OBJECT_MB


class VoicelakeOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("voicelake")
        g.add_argument("--date", help="UTC day to process, YYYY-MM-DD (or use --start_date/--end_date)")
        g.add_argument("--start_date", help="first UTC day of a range, YYYY-MM-DD")
        g.add_argument("--end_date", help="last UTC day of a range (inclusive), YYYY-MM-DD")
        g.add_argument("--sdr_prefix", default=None,
                       help="where Chime Voice Connector SDRs live: the folder holding "
                            "Amazon-Chime-Voice-Connector-SDRs/ (s3://bucket/prefix/ or a local path)")
        g.add_argument("--events_prefix", default=None,
                       help="where archived Chime streaming-status events live (Firehose layout "
                            "YYYY/MM/dd/HH/); without it, Chime calls are found by scanning the "
                            "Voice Connector's streams for fragments tagged with the TransactionId")
        g.add_argument("--ctr_prefix", default=None,
                       help="where Amazon Connect CTR Firehose objects live (layout YYYY/MM/dd/HH/)")
        g.add_argument("--output", required=False,
                       help="root of the lake (s3://bucket/prefix or a local path)")
        g.add_argument("--lookahead_hours", type=int, default=24,
                       help="hours after the last day whose Firehose folders are also read: CTRs and "
                            "events land by arrival time and are re-delivered later (default 24)")
        g.add_argument("--max_record_object_mb", type=float, default=DEFAULT_MAX_OBJECT_MB,
                       help="largest record object (CTR, event or SDR file) read, in MB after gzip "
                            "inflation; a larger one is one failure row (too_large) and is not read. "
                            f"Firehose writes at most 128 MiB per object (default {DEFAULT_MAX_OBJECT_MB})")
        g.add_argument("--kvs_endpoint_url", default=None,
                       help="KVS control-plane endpoint (default: AWS's for the region); the local "
                            "emulator's URL in the demo and tests")
        g.add_argument("--kvs_region", default=None, help="AWS region of the KVS streams")
        g.add_argument("--fragment_selector", default="SERVER_TIMESTAMP",
                       choices=["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
                       help="which KVS clock ListFragments filters on (default SERVER_TIMESTAMP, the "
                            "service-side clock that record timestamps come from; producer clocks can be off by days)")
        g.add_argument("--max_fragment_ms", type=int, default=10_000,
                       help="longest fragment KVS allows; the call window is padded by it because "
                            "ListFragments selects by fragment start (default 10000)")
        g.add_argument("--fragments_per_range", type=int, default=1000,
                       help="fragments per GetMediaForFragmentList request, 1-1000; smaller gives "
                            "more parallelism (default 1000)")
        g.add_argument("--max_attempts", type=int, default=6,
                       help="rounds a fragment range gets when KVS answers without the fragment "
                            "(in-band FRAGMENT_NOT_FOUND, a fragment shorter than listed) before it "
                            "is reported missing (default 6)")
        g.add_argument("--kvs_retry_budget_s", type=float, default=1800.0,
                       help="seconds each KVS request (a fragment range, a listing) keeps retrying "
                            "throttling, 5xx, resets and cut bodies, with backoff and jitter, before "
                            "its call fails as throttled / kvs_unavailable (default 1800: a nightly "
                            "batch outwaits a busy stream)")
        g.add_argument("--allow_missing_fragments", action="store_true", default=False,
                       help="keep a call whose fragments are missing or expired, as a partial call "
                            "with gaps (default: the call goes to failures with the reason)")
        g.add_argument("--target_sample_rate", type=int, default=16000,
                       help="sample rate of the ML WAV (default 16000)")
        g.add_argument("--customer_leg", default="auto", choices=["auto", "caller", "callee"],
                       help="Chime: which leg is the customer; auto = the caller on Inbound calls, "
                            "the callee on Outbound calls")
        g.add_argument("--write_raw_channels", action="store_true", default=False,
                       help="also write each channel's un-normalised 8 kHz audio as its own WAV")
        g.add_argument("--connect_attribute_keys", default=None,
                       help="Connect: comma-separated Attributes keys holding stream ARN, start "
                            "fragment, start and stop timestamps, used when a CTR has no KVS "
                            "Recordings entry")


def run_dates(opts: VoicelakeOptions) -> list[str]:
    """The UTC days a run covers, from --date or --start_date/--end_date."""
    if opts.date and (opts.start_date or opts.end_date):
        raise ValueError("give --date or --start_date/--end_date, not both")
    first = opts.date or opts.start_date
    last = opts.date or opts.end_date or opts.start_date
    if not first:
        raise ValueError("--date (or --start_date) is required")
    start, end = (dt.date.fromisoformat(d) for d in (first, last))
    if end < start:
        raise ValueError("--end_date is before --start_date")
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
