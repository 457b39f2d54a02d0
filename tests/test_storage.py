"""storage lists, reads, writes and deletes the same way on S3 (over HTTP) and on local disk."""
from __future__ import annotations

import pytest

from voicelake import storage


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, s3_server):
    if request.param == "local":
        return str(tmp_path)
    bucket = f"storage-{abs(hash(str(tmp_path))) % 10**8}"
    s3_server.client().create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


def test_a_glob_matches_one_folder_level_per_star(root):
    for key in ("json/vc1/2024/05/14/a", "json/vc1/2024/05/14/b", "json/vc2/2024/05/14/c",
                "json/vc1/2024/05/15/d", "json/vc1/2024/05/14/deeper/e"):
        storage.write_bytes(f"{root}/{key}", key.encode())
    assert storage.list_paths(f"{root}/json/*/2024/05/14/*") == [
        f"{root}/json/vc1/2024/05/14/a", f"{root}/json/vc1/2024/05/14/b", f"{root}/json/vc2/2024/05/14/c"]
    assert storage.list_paths(f"{root}/json/vc1/2024/05/1?/d") == [f"{root}/json/vc1/2024/05/15/d"]
    assert storage.list_paths(f"{root}/nothing/*") == []


def test_written_bytes_read_back_and_deleted_files_are_gone(root):
    paths = [f"{root}/t/date=2024-05-14/voice_connector_id=x/part-{i:05d}.parquet" for i in range(3)]
    for i, path in enumerate(paths):
        storage.write_bytes(path, bytes([i]) * 10)
    assert [storage.read_bytes(p) for p in paths] == [bytes([i]) * 10 for i in range(3)]
    storage.delete(paths[:2])
    assert storage.list_paths(f"{root}/t/date=2024-05-14/*/*") == paths[2:]


def test_a_scheme_other_than_s3_is_refused_not_written_as_a_local_folder():
    with pytest.raises(ValueError, match="unsupported storage scheme"):
        storage.write_bytes("gs://bucket/lake/calls/x.parquet", b"")
