"""The lake's layout, as analysts and the Athena DDL read it: one module spells every path."""
import pytest

from voicelake import layout


def test_a_tables_partition_file_has_hive_folders_and_a_fixed_name():
    assert layout.table_file("s3://lake/v", "segments", "2024-05-14", "vc1", 3) == \
        "s3://lake/v/segments/date=2024-05-14/voice_connector_id=vc1/part-00003.parquet"


def test_a_calls_wavs_sit_in_the_audio_partition_with_the_source_rate_beside_it():
    assert layout.wav_path("/lake/", "2024-05-14", "vc1", "c-1") == \
        "/lake/audio/date=2024-05-14/voice_connector_id=vc1/c-1.wav"
    assert layout.wav_relpath("2024-05-14", "vc1", "c-1", source=True) == \
        "audio/date=2024-05-14/voice_connector_id=vc1/c-1.8k.wav"


@pytest.mark.parametrize("path, expected", [
    ("/l/calls/date=2024-05-14/voice_connector_id=vc1/part-00000.parquet",
     layout.Partition("calls", "2024-05-14", "vc1")),
    ("/l/audio/date=2024-05-14/voice_connector_id=vc1/c.8k.wav", layout.Partition("audio", "2024-05-14", "vc1")),
    ("/l/_runs/2024-05-14/summary.json", None),
    ("/l/_work/date=2024-05-14/rows/calls/vc1/connect.c.arrow", None),
    ("/l/calls/2024-05-14/vc1/part-00000.parquet", None),
    ("/elsewhere/calls/date=2024-05-14/voice_connector_id=vc1/x.parquet", None),
])
def test_a_path_names_its_partition_or_none(path, expected):
    assert layout.partition_of("/l", path) == expected


def test_every_written_path_reads_back_as_its_partition():
    for path in (layout.table_file("/l", "gaps", "2024-05-14", "vc-9", 0),
                 layout.wav_path("/l", "2024-05-14", "vc-9", "x", source=True)):
        assert layout.partition_of("/l", path)[1:] == ("2024-05-14", "vc-9")


def test_runs_are_labelled_by_their_date_or_range():
    assert layout.summary_path("/l", ["2024-05-14"]) == "/l/_runs/2024-05-14/summary.json"
    assert layout.partitions_sql_path("/l", ["2024-05-14", "2024-05-15"]) == \
        "/l/_runs/2024-05-14_2024-05-15/partitions.sql"
    gapped = layout.run_label(["2024-05-14", "2024-05-16"])
    assert gapped.startswith("2024-05-14_2024-05-16-") and gapped != layout.run_label(
        ["2024-05-14", "2024-05-15", "2024-05-16"]) == "2024-05-14_2024-05-16"
    assert layout.is_run_file("_runs/2024-05-14/report.html") and not layout.is_run_file("calls/x")


def test_athenas_projection_template_is_the_partition_folder():
    assert layout.hive_template("s3://b/lake/calls") == \
        "s3://b/lake/calls/date=${date}/voice_connector_id=${voice_connector_id}/"


def test_scratch_lives_under_the_runs_date_and_removes_with_it():
    date_dir = layout.scratch_date_dir("/l", "2024-05-14")
    assert layout.channel_files_dir("/l", "2024-05-14", "connect", "i-1", "c").startswith(date_dir + "/")
    assert layout.row_shard("/l", "calls", "2024-05-14", "i-1", "connect", "c").startswith(date_dir + "/")


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "", "x" * 129, "c;rm", None])
def test_ids_from_records_never_decide_a_path_unchecked(bad):
    with pytest.raises(ValueError, match="unsafe path part"):
        layout.wav_path("/l", "2024-05-14", "vc1", bad)
