"""Beam's Python SDK worker pool (``EXTERNAL`` environments), listening on one address.

``python -m apache_beam.runners.worker.worker_pool_main --service_port=P`` listens on every interface,
so two pools on one machine cannot share a port. A Flink TaskManager reaches its pool at the address
the pipeline names (``localhost:50000``); to give each TaskManager of a one-machine cluster a pool of its
own, as each host of a real cluster has, ``runners.clusters`` resolves ``localhost`` to a different
loopback address per TaskManager and starts this pool on it::

    python -m runners.worker_pool --host=127.0.0.2 --port=50000 --container_executable=boot.sh

The pool itself is Beam's (``BeamFnExternalWorkerPoolServicer``): workers are started with the
container executable, ``runners.worker_boot`` in practice.
"""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str]) -> None:
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
    from apache_beam.utils import thread_pool_executor

    parser = argparse.ArgumentParser(prog="python -m runners.worker_pool")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--container_executable", required=True,
                        help="the worker boot program (Beam's container contract)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                         options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)])
    pool = BeamFnExternalWorkerPoolServicer(use_process=True, container_executable=args.container_executable)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    logging.info("worker pool listening on %s:%d, workers booted by %s", args.host, args.port,
                 args.container_executable)
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1:])
