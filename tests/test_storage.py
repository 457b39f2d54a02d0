"""storage lists, reads, writes and deletes the same way on S3 (over HTTP) and on local disk."""
from __future__ import annotations

import pytest

from transforms.lake_sink import _PlanCommit
from voicelake import lake_commit, layout, storage
from voicelake.layout import Partition


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


def test_a_listing_gives_each_object_its_size_without_reading_it(root):
    storage.write_bytes(f"{root}/ctr/2024/05/14/10/a", b"x" * 10)
    storage.write_bytes(f"{root}/ctr/2024/05/14/10/b", b"")
    assert storage.list_sizes(f"{root}/ctr/2024/05/14/10/*") == [
        (f"{root}/ctr/2024/05/14/10/a", 10), (f"{root}/ctr/2024/05/14/10/b", 0)]


def test_a_tree_lists_files_at_every_depth_below_a_folder_and_nothing_beside_it(root):
    inside = ["calls/date=2024-05-14/stray.parquet", "calls/date=2024-05-14/voice_connector_id=x/part-00000.parquet",
              "calls/date=2024-05-14/voice_connector_id=x/sub/deeper/nested.wav"]
    beside = ["calls/date=2024-05-140/part-00000.parquet", "calls/date=2024-05-15/stray.parquet"]
    for relative in inside + beside:
        storage.write_bytes(f"{root}/{relative}", b"x")
    assert storage.list_tree(f"{root}/calls/date=2024-05-14") == sorted(f"{root}/{p}" for p in inside)
    assert storage.list_tree(f"{root}/nothing/here") == []


def test_a_commit_brings_in_what_the_run_staged_and_removes_what_it_replaced_and_nothing_else(root):
    """The run's plan deletes, under its own dates only: the files of a written partition it did not
    stage again, the WAVs of calls it neither landed nor kept, and partitions it did not write; the
    commit then moves every staged file to its lake name and drops the scratch."""
    part = f"{root}/calls/date=2024-05-14/voice_connector_id=x"
    audio = f"{root}/audio/date=2024-05-14/voice_connector_id=x"
    landed_again = [f"{part}/part-00000.parquet", f"{audio}/call-1.wav"]
    kept = [f"{audio}/call-kept.wav", f"{audio}/call-kept.8k.wav"]
    stale = [f"{part}/part-00001.parquet", f"{audio}/call-gone.wav", f"{root}/calls/date=2024-05-14/stray.parquet",
             f"{root}/gaps/date=2024-05-14/voice_connector_id=gone/part-00000.parquet",
             f"{root}/audio/date=2024-05-14/voice_connector_id=gone/sub/nested.wav"]
    scratch = [f"{root}/_work/date=2024-05-14/chime/vc/call-1/channel-0.pcm",
               f"{root}/_work/date=2024-05-14/rows/calls/vc/chime.call-1.arrow"]
    untouched = [f"{root}/calls/date=2024-05-13/voice_connector_id=x/part-00000.parquet",
                 f"{root}/_work/date=2024-05-15/chime/vc/call-2/channel-0.pcm", f"{root}/calls/notes.txt",
                 f"{root}/elsewhere/date=2024-05-14/file"]
    for path in landed_again + kept + stale + scratch + untouched:
        storage.write_bytes(path, b"old")
    for path in landed_again:
        storage.write_bytes(layout.staged(root, path), b"new")
    written = [Partition("calls", "2024-05-14", "x"), Partition("audio", "2024-05-14", "x")]
    kept_calls = [(("2024-05-14", "x"), ("call-kept", "chime"))]
    assert list(_PlanCommit(root, ["2024-05-14"]).process(written, kept_calls)) == [len(stale)]
    assert lake_commit.commit(root, ["2024-05-14"]) == len(landed_again)
    assert sorted(storage.list_tree(root)) == sorted(landed_again + kept + untouched)
    assert {storage.read_bytes(p) for p in landed_again} == {b"new"}
    assert {storage.read_bytes(p) for p in kept} == {b"old"}
