"""A real S3 API on loopback: moto's threaded server, started by the project on a free port.

boto3 and Beam's S3 filesystem reach it through ``AWS_ENDPOINT_URL`` (shared/domain/beam.md §2), so
the production code path runs unchanged: the pipeline never knows it is talking to a stand-in.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3

# moto accepts any credentials; these are placeholders, not secrets.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class LocalS3:
    endpoint_url: str
    _server: object

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (and so Beam's S3 filesystem) at this server."""
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL_S3": self.endpoint_url}

    def stop(self) -> None:
        self._server.stop()


def start_local_s3(host: str = "127.0.0.1", port: int = 0) -> LocalS3:
    from moto.server import ThreadedMotoServer

    # One line per request on stderr would drown the demo's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return LocalS3(endpoint_url=f"http://{bound_host}:{bound_port}", _server=server)


@contextmanager
def local_s3(host: str = "127.0.0.1", port: int = 0) -> Iterator[LocalS3]:
    s3 = start_local_s3(host, port)
    try:
        yield s3
    finally:
        s3.stop()


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block (restoring the old values)."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
