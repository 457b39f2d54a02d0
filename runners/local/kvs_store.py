"""On-disk store behind the local KVS emulator: streams and their archived fragments.

Layout under the store root, one folder per stream (stream names match ``[a-zA-Z0-9_.-]+``):

    <root>/<stream name>/stream.json      StreamInfo as JSON
    <root>/<stream name>/fragments.jsonl  one Fragment per line, in ingestion order
    <root>/<stream name>/media.bin        the fragments' chunks, appended back to back

The files are append-only, so a demo generator may seed a store while an emulator serves it: readers
reload a stream's index whenever ``fragments.jsonl`` has grown.

Fragment numbers imitate KVS: 47-digit decimal strings that increase with ingestion order within a
stream and differ between streams.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

STREAM_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,256}$")
ACCOUNT = "111122223333"
REGION = "us-east-1"
_NUMBER_PREFIX = 91343852333181  # 14 digits; with 33 more digits every number has 47
_NUMBER_STEP = 4_398_046_511_104_000


@dataclass(frozen=True)
class StreamInfo:
    name: str
    arn: str
    creation_ms: int
    retention_hours: int
    media_type: str
    version: str


@dataclass(frozen=True)
class Fragment:
    number: str
    producer_ms: int
    server_ms: int
    duration_ms: int
    size: int
    offset: int


def stream_arn(name: str, creation_ms: int) -> str:
    return f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/{name}/{creation_ms}"


def fragment_number(stream_name: str, sequence: int) -> str:
    salt = int.from_bytes(hashlib.sha256(stream_name.encode()).digest()[:8], "big") % 10**20
    value = _NUMBER_PREFIX * 10**33 + salt + sequence * _NUMBER_STEP
    text = str(value)
    assert len(text) == 47, text
    return text


class KvsStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._index: dict[str, tuple[int, list[Fragment]]] = {}

    # -- streams -----------------------------------------------------------------------------
    def create_stream(
        self,
        name: str,
        *,
        retention_hours: int = 24,
        media_type: str = "audio/L16",
        creation_ms: int | None = None,
    ) -> StreamInfo:
        if not STREAM_NAME.match(name):
            raise ValueError(f"invalid stream name {name!r}")
        with self._lock:
            folder = self.root / name
            if (folder / "stream.json").exists():
                raise FileExistsError(name)
            folder.mkdir(parents=True)
            created = int(time.time() * 1000) if creation_ms is None else creation_ms
            info = StreamInfo(
                name=name,
                arn=stream_arn(name, created),
                creation_ms=created,
                retention_hours=retention_hours,
                media_type=media_type,
                version=hashlib.sha256(f"{name}{created}".encode()).hexdigest()[:20],
            )
            (folder / "stream.json").write_text(json.dumps(asdict(info)))
            (folder / "fragments.jsonl").touch()
            (folder / "media.bin").touch()
            return info

    def stream(self, *, name: str | None = None, arn: str | None = None) -> StreamInfo | None:
        if arn is not None:
            parts = arn.split("/")
            if len(parts) < 3:
                return None
            name = parts[-2]
        if name is None or not STREAM_NAME.match(name):
            return None
        path = self.root / name / "stream.json"
        if not path.exists():
            return None
        info = StreamInfo(**json.loads(path.read_text()))
        if arn is not None and info.arn != arn:
            return None
        return info

    def streams(self) -> Iterator[StreamInfo]:
        for path in sorted(self.root.glob("*/stream.json")):
            yield StreamInfo(**json.loads(path.read_text()))

    # -- fragments ---------------------------------------------------------------------------
    def put_fragment(
        self,
        stream_name: str,
        *,
        producer_ms: int,
        server_ms: int,
        duration_ms: int,
        make_chunk: Callable[[str], bytes],
    ) -> Fragment:
        """Ingest one fragment, as PutMedia would: KVS assigns the number, the producer the bytes."""
        with self._lock:
            if self.stream(name=stream_name) is None:
                raise KeyError(stream_name)
            folder = self.root / stream_name
            existing = self.fragments(stream_name)
            number = fragment_number(stream_name, len(existing))
            data = make_chunk(number)
            media = folder / "media.bin"
            offset = media.stat().st_size
            with media.open("ab") as f:
                f.write(data)
            fragment = Fragment(number, producer_ms, server_ms, duration_ms, len(data), offset)
            index = folder / "fragments.jsonl"
            with index.open("a") as f:
                f.write(json.dumps(asdict(fragment)) + "\n")
            # Extend the cached index in place: re-reading it per fragment made seeding quadratic.
            self._index[stream_name] = (index.stat().st_size, [*existing, fragment])
            return fragment

    def fragments(self, stream_name: str) -> list[Fragment]:
        """All fragments of a stream in ingestion order (reloaded when the index grows)."""
        path = self.root / stream_name / "fragments.jsonl"
        with self._lock:
            size = path.stat().st_size
            cached = self._index.get(stream_name)
            if cached is None or cached[0] != size:
                with path.open() as f:
                    frags = [Fragment(**json.loads(line)) for line in f if line.strip()]
                self._index[stream_name] = (size, frags)
            return self._index[stream_name][1]

    def read_chunk(self, stream_name: str, fragment: Fragment) -> bytes:
        with (self.root / stream_name / "media.bin").open("rb") as f:
            f.seek(fragment.offset)
            return f.read(fragment.size)
