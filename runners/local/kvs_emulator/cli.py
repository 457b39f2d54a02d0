"""``voicelake kvs-emulator`` (also ``python -m runners.local.kvs_emulator``): serve a store until interrupted."""
from __future__ import annotations

import argparse
import logging
from datetime import datetime, timezone
from decimal import Decimal

from runners.local.kvs_emulator.faults import Faults
from runners.local.kvs_emulator.server import KvsEmulator


def parse_now(text: str) -> int:
    """``--now`` as epoch seconds (``1704067200.5``) or ISO 8601 (naive means UTC) -> epoch ms."""
    try:
        return int(Decimal(text) * 1000)
    except (ArithmeticError, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not epoch seconds or ISO 8601: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicelake kvs-emulator",
        description=(
            "Serve a local Kinesis Video Streams endpoint over HTTP for unmodified boto3 clients: "
            "CreateStream, DescribeStream, ListStreams, GetDataEndpoint (kinesisvideo) and "
            "ListFragments, GetMediaForFragmentList (kinesis-video-archived-media), with the "
            "real error wire format, per-stream throttling, retention, and optional seeded faults."
        ),
        epilog=(
            "Point clients at the printed URL, e.g. boto3.client('kinesis-video-archived-media', "
            "endpoint_url=URL, region_name='us-east-1', aws_access_key_id='testing', "
            "aws_secret_access_key='testing'). Any signature is accepted; an unsigned request gets "
            "401 NotAuthorizedException."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to bind; 0 picks a free one and prints it (default: %(default)s)")
    parser.add_argument("--store", required=True, metavar="DIR",
                        help="KvsStore directory with the streams and fragments to serve")
    parser.add_argument("--now", type=parse_now, metavar="ISO|EPOCH",
                        help="freeze the emulator clock (retention is judged against it), e.g. "
                             "2024-01-01T12:00:00Z or 1704110400; default: real time")
    parser.add_argument("--tps-limit", type=non_negative_int, default=5, metavar="N",
                        help="requests per second per stream per API before "
                             "ClientLimitExceededException; 0 disables (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the fault-injection random generator (default: %(default)s)")
    parser.add_argument("--deny-all", action="store_true",
                        help="answer every call 403 AccessDeniedException, as KVS does when IAM "
                             "does not allow the action")
    knobs = parser.add_argument_group(
        "fault injection (probabilities in [0, 1], all 0 by default; archived-media calls only)")
    knobs.add_argument("--throttle-probability", type=probability, default=0.0, metavar="P",
                       help="answer ClientLimitExceededException (ListFragments, GetMediaForFragmentList)")
    knobs.add_argument("--error-500-probability", type=probability, default=0.0, metavar="P",
                       help="answer HTTP 500 InternalFailure (ListFragments, GetMediaForFragmentList)")
    knobs.add_argument("--reset-probability", type=probability, default=0.0, metavar="P",
                       help="reset the connection (RST) inside a fragment of a media body")
    knobs.add_argument("--truncate-probability", type=probability, default=0.0, metavar="P",
                       help="end a media body cleanly inside a fragment")
    knobs.add_argument("--block-cut-probability", type=probability, default=0.0, metavar="P",
                       help="end a media body cleanly between two SimpleBlocks of a fragment")
    knobs.add_argument("--missing-fragment-probability", type=probability, default=0.0, metavar="P",
                       help="per fragment: send the in-band FRAGMENT_NOT_FOUND error chunk instead")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    faults = Faults(
        throttle_probability=args.throttle_probability,
        error_500_probability=args.error_500_probability,
        reset_probability=args.reset_probability,
        truncate_probability=args.truncate_probability,
        block_cut_probability=args.block_cut_probability,
        missing_fragment_probability=args.missing_fragment_probability,
        seed=args.seed,
        deny_all=args.deny_all,
    )
    emulator = KvsEmulator(args.store, args.host, args.port, faults, args.now, args.tps_limit or None)
    print(f"KVS emulator serving {args.store} at {emulator.url}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
