"""Shared fixtures: the local world (a real S3 API and the KVS emulator on loopback) and ../shared."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import boto3
import pytest

from runners.local.kvs_emulator import start_emulator
from runners.local.kvs_store import KvsStore
from runners.local.s3 import environment, local_s3
from runners.local.seed import WorldConfig, seed_world

# Beam's Prism runner logs from an atexit hook, after pytest has closed its capture streams; the
# resulting "--- Logging error ---" traceback would trail the test summary in every CI log.
logging.raiseExceptions = False
# ...and its "Really destroying service" warning at exit is routine, not news.
logging.getLogger("apache_beam.utils.subprocess_server").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared; a missing one fails loudly instead of skipping the test."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need the shared/ folder beside the project")
    return path


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (mkvtoolnix is the parser's oracle; "
                    f"runners/local/test.sh installs it)")
    return found


@pytest.fixture(scope="session")
def s3_server():
    with local_s3() as s3, environment(s3.environment()):
        yield s3


class World:
    """A seeded demo day served over HTTP, with its ground truth."""

    def __init__(self, root: Path, s3, kvs, truth, config):
        self.root, self.s3, self.kvs, self.truth, self.config = root, s3, kvs, truth, config

    def kvs_client(self, service: str = "kinesis-video-archived-media"):
        return boto3.client(service, endpoint_url=self.kvs.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def s3_uri(self, prefix: str) -> str:
        return f"s3://{self.config.bucket}/{prefix}"


def make_world(root: Path, s3_server, config: WorldConfig, **emulator_args):
    store = KvsStore(root / "kvs")
    kvs = start_emulator(root / "kvs", **emulator_args)
    truth = seed_world(s3_server.client(), store, config, root / "truth.json")
    return World(root, s3_server, kvs, truth, config)


@pytest.fixture(scope="session")
def world(tmp_path_factory, s3_server):
    """The default demo day: 4 Connect and 3 Chime calls of ~40 s, plus a few bad records."""
    w = make_world(tmp_path_factory.mktemp("world"), s3_server, WorldConfig(bucket="world-default"))
    yield w
    w.kvs.stop()
