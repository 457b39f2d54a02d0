"""Boot an SDK worker the way Beam's container does, options first: for EXTERNAL pools and PROCESS.

``python -m apache_beam.runners.worker.worker_pool_main`` starts each worker as a bare
``SdkHarness(...)`` run by whatever ``python`` is first on PATH, and that worker never receives
the pipeline options (log levels, pickler, experiments, runner capabilities; Beam's own S3
filesystem even refuses to work without them, shared/domain/beam.md §2). Workers of Dataflow,
Flink and Spark are booted by Beam's container instead: it asks the runner's provision service for
the options and starts ``sdk_worker_main``, which installs them. This module does the same with the
interpreter it runs in, so a local pool rehearses those workers faithfully::

    printf '#!/bin/sh\nexec %s -m runners.worker_boot "$@"\n' "$VENV/bin/python" > boot.sh
    chmod +x boot.sh
    python -m apache_beam.runners.worker.worker_pool_main --service_port=50000 \\
        --container_executable="$PWD/boot.sh"

The pool calls the executable with the container contract's flags (``--id``,
``--provision_endpoint``, ``--control_endpoint``, ``--logging_endpoint``, ``--artifact_endpoint``).
A Java runner's ``PROCESS`` environment (``--environment_type=PROCESS
--environment_config='{"command": "…/boot.sh"}'``) passes only ``--id`` and ``--provision_endpoint``;
the other endpoints are then read from the provision service's answer, as Beam's container boot does.
Staged artifacts are not installed: the worker's environment must already hold voicelake (the wheel).
S3 does not depend on this: ``voicelake.storage`` reads the standard AWS variables of the pool.
"""
from __future__ import annotations

import argparse
import os
import sys

SDK_WORKER = "apache_beam.runners.worker.sdk_worker_main"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runners.worker_boot")
    parser.add_argument("--id", required=True, help="worker id given by the runner")
    parser.add_argument("--provision_endpoint", required=True)
    parser.add_argument("--control_endpoint", default="", help="default: the provision service's")
    parser.add_argument("--logging_endpoint", default="", help="default: the provision service's")
    parser.add_argument("--artifact_endpoint", default="", help="accepted, not used (see above)")
    parser.add_argument("--semi_persist_dir", default="", help="as in Beam's container contract")
    return parser.parse_known_args(argv)[0]


def provision_info(endpoint: str, worker_id: str):
    """The runner's ProvisionInfo for this worker (the provision service keys it by worker_id)."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        return stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                     metadata=[("worker_id", worker_id)]).info


def worker_environment(args: argparse.Namespace, info) -> dict[str, str]:
    """The variables ``sdk_worker_main`` reads, as Beam's container boot sets them."""
    from google.protobuf import json_format

    control = args.control_endpoint or info.control_endpoint.url
    logging_ = args.logging_endpoint or info.logging_endpoint.url
    env = {
        "WORKER_ID": args.id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "CONTROL_API_SERVICE_DESCRIPTOR": f'url: "{control}"',
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    if logging_:
        env["LOGGING_API_SERVICE_DESCRIPTOR"] = f'url: "{logging_}"'
    if args.semi_persist_dir:
        env["SEMI_PERSISTENT_DIRECTORY"] = args.semi_persist_dir
    return env


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    env = {**os.environ, **worker_environment(args, provision_info(args.provision_endpoint, args.id))}
    # exec, not a child: the pool (or the runner, for PROCESS) stops workers by signalling the process
    # it started
    os.execve(sys.executable, [sys.executable, "-m", SDK_WORKER], env)


if __name__ == "__main__":
    main(sys.argv[1:])
