"""Objects in S3 (``s3://bucket/key``) or local files, behind four functions: list, read, write, delete.

Beam's S3 filesystem builds a new boto3 client for every match, open and create; each client
parses botocore's JSON service models, which cost most of the pipeline's CPU on a small night
(measured: 105 clients, 18.7 of 25 CPU seconds).  Here one client per process is shared.  S3 is
configured the standard AWS way (environment, profile, instance role); ``AWS_ENDPOINT_URL_S3``
points it at an S3-compatible server such as the local one.
"""
from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import re
import shutil
import tempfile
import threading

import boto3

_GLOB = re.compile(r"[*?\[]")
_client = None
_lock = threading.Lock()


def is_s3(path: str) -> bool:
    if path.startswith("s3://"):
        return True
    if "://" in path:  # gs://, hdfs://, ...: refused, never mistaken for a local folder
        raise ValueError(f"unsupported storage scheme in {path!r}: use s3:// or a local path")
    return False


def absolute(path: str) -> str:
    """An s3:// location as it is, a local one made absolute: one name for the same place in every
    stage and worker, whatever their working directory, and a path an analyst can open later."""
    return path if is_s3(path) else os.path.abspath(path)


def split_s3(path: str) -> tuple[str, str]:
    bucket, _, key = path[len("s3://"):].partition("/")
    return bucket, key


def s3():
    global _client
    with _lock:
        if _client is None:
            _client = boto3.session.Session().client("s3")
        return _client


def list_paths(pattern: str) -> list[str]:
    """Paths matching a glob (``*`` stays within a folder); nothing matching is an empty list."""
    return [path for path, _ in list_sizes(pattern)]


def list_sizes(pattern: str) -> list[tuple[str, int]]:
    """``list_paths`` with each object's size in bytes, from the listing itself (no extra request),
    so that a reader can refuse an object too large to hold before reading a byte of it."""
    if not is_s3(pattern):
        return sorted((p, os.path.getsize(p)) for p in glob.glob(pattern) if os.path.isfile(p))
    bucket, key_pattern = split_s3(pattern)
    *folders, name = key_pattern.split("/")
    # Walk folder by folder with a delimiter, so a wildcard folder (a Voice Connector id) lists
    # only its level, never every object below it (years of records).
    prefixes = [""]
    for folder in folders:
        if _GLOB.search(folder):
            prefixes = [sub for p in prefixes for sub in _listing(bucket, p, "CommonPrefixes")
                        if fnmatch.fnmatchcase(sub[len(p):-1], folder)]
        else:
            prefixes = [f"{p}{folder}/" for p in prefixes]
    literal = name[:_GLOB.search(name).start()] if _GLOB.search(name) else name
    return sorted((f"s3://{bucket}/{item['Key']}", item["Size"]) for p in prefixes
                  for item in _listing(bucket, p + literal, "Contents")
                  if fnmatch.fnmatchcase(item["Key"][len(p):], name))


def list_tree(folder: str) -> list[str]:
    """Every file below ``folder``, at any depth (a lake partition's stray files included)."""
    if is_s3(folder):
        bucket, prefix = split_s3(folder.rstrip("/") + "/")
        return sorted(f"s3://{bucket}/{item['Key']}"
                      for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                      for item in page.get("Contents", []))
    return sorted(os.path.join(top, name) for top, _, names in os.walk(folder) for name in names)


def _listing(bucket: str, prefix: str, kind: str) -> list:
    """One level below ``prefix``: sub-folder prefixes (CommonPrefixes) or objects (Contents, as
    listed: ``Key``, ``Size``, ...)."""
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
    if kind == "CommonPrefixes":
        return [item["Prefix"] for page in pages for item in page.get(kind, [])]
    return [item for page in pages for item in page.get(kind, [])]


def read_bytes(path: str) -> bytes:
    if is_s3(path):
        bucket, key = split_s3(path)
        return s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    """Write whole; a local file appears under its name only when complete (rename)."""
    if is_s3(path):
        bucket, key = split_s3(path)
        s3().put_object(Bucket=bucket, Key=key, Body=data)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.partial-{os.getpid()}-{threading.get_ident()}"
    with open(partial, "wb") as f:
        f.write(data)
    os.replace(partial, path)


@contextlib.contextmanager
def writable(path: str):
    """A local file path to write ``path``'s content to; published under ``path`` only when the
    block ends without error (a local rename, or one streamed S3 upload), so a reader never sees
    half a file and a big file never has to sit in memory."""
    if is_s3(path):
        fd, local = tempfile.mkstemp(prefix="voicelake-", suffix=os.path.splitext(path)[1])
        os.close(fd)
        try:
            yield local
            bucket, key = split_s3(path)
            s3().upload_file(local, bucket, key)
        finally:
            os.remove(local)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.partial-{os.getpid()}-{threading.get_ident()}"
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


@contextlib.contextmanager
def readable(path: str):
    """A local file path holding ``path``'s content (an S3 object is downloaded, streaming)."""
    if not is_s3(path):
        yield path
        return
    fd, local = tempfile.mkstemp(prefix="voicelake-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        bucket, key = split_s3(path)
        s3().download_file(bucket, key, local)
        yield local
    finally:
        os.remove(local)


def move(source: str, target: str) -> None:
    """Put ``source`` under the name ``target`` (replacing it) and remove ``source``: a rename
    locally, a copy and a delete on S3."""
    if is_s3(source) != is_s3(target):
        raise ValueError(f"cannot move {source} to {target}: one is on S3, the other is not")
    if not is_s3(source):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        os.replace(source, target)
        return
    (bucket, key), (to_bucket, to_key) = split_s3(source), split_s3(target)
    s3().copy({"Bucket": bucket, "Key": key}, to_bucket, to_key)  # managed: multipart past 5 GB
    s3().delete_object(Bucket=bucket, Key=key)


def exists(path: str) -> bool:
    if not is_s3(path):
        return os.path.exists(path)
    bucket, key = split_s3(path)
    return any(item["Key"] == key for item in _listing(bucket, key, "Contents"))


def remove_empty_folder(folder: str) -> None:
    """Remove a local folder that holds nothing (S3 has no folders)."""
    if not is_s3(folder):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def delete_tree(folder: str) -> None:
    """Remove ``folder`` and everything below it (nothing there is no error)."""
    if is_s3(folder):
        delete(list_tree(folder))
        return
    shutil.rmtree(folder, ignore_errors=True)
    parent = os.path.dirname(folder.rstrip("/"))
    with contextlib.suppress(OSError):  # the parent goes too once it is empty (S3 has no folders)
        os.rmdir(parent)


def delete(paths: list[str]) -> None:
    """Remove the files; one already gone is no error (a commit may be completed twice)."""
    s3_paths = [p for p in paths if is_s3(p)]
    for path in paths:
        if not is_s3(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    by_bucket: dict[str, list[str]] = {}
    for path in s3_paths:
        bucket, key = split_s3(path)
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            s3().delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
