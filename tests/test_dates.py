"""The days an operator gives: one grammar (pipeline.dates) for `voicelake run --date`,
`voicelake export --dates` and `voicelake report --dates`, with one refusal."""
from __future__ import annotations

import pytest

from pipeline.dates import day, parse_dates

MIXED = "2024-05-01..2024-05-03,2024-05-07"
MIXED_DAYS = ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-07"]
EXPECTED = ("expected YYYY-MM-DD, a comma-separated list of them, or FIRST..LAST ranges, "
            "e.g. --dates=2024-05-01..2024-05-03,2024-05-07")


@pytest.mark.parametrize("text, days", [
    ("2024-05-14", ["2024-05-14"]),
    ("2024-05-16,2024-05-14", ["2024-05-14", "2024-05-16"]),
    ("2024-02-28..2024-03-01", ["2024-02-28", "2024-02-29", "2024-03-01"]),  # a leap day inside
    (MIXED, MIXED_DAYS),
    ("2024-05-07,2024-05-02..2024-05-03,2024-05-01..2024-05-02", MIXED_DAYS),  # overlaps count once
    (" 2024-05-14 , 2024-05-15 .. 2024-05-15,", ["2024-05-14", "2024-05-15"]),  # spaces, a last comma
])
def test_days_lists_and_ranges_mix_and_come_back_sorted_once_each(text, days):
    assert parse_dates(text, "--dates") == days


@pytest.mark.parametrize("text, message", [
    ("14/05/2024", f"--dates=14/05/2024 is not a date: {EXPECTED}"),
    ("20240514", f"--dates=20240514 is not a date: {EXPECTED}"),  # fromisoformat alone takes it
    ("2024-02-30", f"--dates=2024-02-30 is not a date: {EXPECTED}"),
    ("2024-05-01,2024-5-3", f"--dates=2024-05-01,2024-5-3: 2024-5-3 is not a date: {EXPECTED}"),
    ("2024-05-01..2024-05-03..2024-05-04",
     f"--dates=2024-05-01..2024-05-03..2024-05-04: 2024-05-03..2024-05-04 is not a date: {EXPECTED}"),
    ("2024-05-14..", f"--dates=2024-05-14.. is not a date: {EXPECTED}"),
    ("2024-05-16..2024-05-14", f"--dates=2024-05-16..2024-05-14 ends before it starts: {EXPECTED}"),
    ("2024-05-01,2024-05-16..2024-05-14",
     f"--dates=2024-05-01,2024-05-16..2024-05-14: 2024-05-16..2024-05-14 ends before it starts: {EXPECTED}"),
    ("", f"--dates= holds no date: {EXPECTED}"),
    (",", f"--dates=, holds no date: {EXPECTED}"),
])
def test_a_wrong_value_is_refused_in_one_line_naming_the_option_and_the_wrong_part(text, message):
    with pytest.raises(ValueError) as refused:
        parse_dates(text, "--dates")
    assert str(refused.value) == message


def test_an_option_of_one_day_takes_only_a_day():
    assert day("--start_date", "2024-05-14").isoformat() == "2024-05-14"
    with pytest.raises(ValueError) as refused:
        day("--end_date", "2024-05-1")
    assert str(refused.value) == "--end_date=2024-05-1 is not a date: expected YYYY-MM-DD, e.g. --end_date=2024-05-14"


def test_run_takes_the_grammar_in_date():
    from pipeline.options import run_dates
    from pipeline.run import voicelake_options

    assert run_dates(voicelake_options([f"--date={MIXED}"])) == MIXED_DAYS
    assert run_dates(voicelake_options(["--start_date=2024-05-01", "--end_date=2024-05-03"])) == MIXED_DAYS[:3]
    with pytest.raises(ValueError, match=r"^--date=2024-05-03\.\.2024-05-01 ends before it starts: "):
        run_dates(voicelake_options(["--date=2024-05-03..2024-05-01"]))


def test_export_takes_the_grammar_in_dates():
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.export import ExportOptions, export_dates

    assert export_dates(PipelineOptions([f"--dates={MIXED}"]).view_as(ExportOptions)) == MIXED_DAYS
    with pytest.raises(ValueError, match=r"^--dates=2024-5-1 is not a date: expected YYYY-MM-DD, a comma"):
        export_dates(PipelineOptions(["--dates=2024-5-1"]).view_as(ExportOptions))


def test_report_takes_the_grammar_in_dates(capsys):
    from pipeline import report

    assert report.arguments(["--lake=lake", f"--dates={MIXED}"]).dates == MIXED_DAYS
    with pytest.raises(SystemExit) as refused:
        report.arguments(["--lake=lake", "--dates=2024-05-16..2024-05-14"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"voicelake report: error: --dates=2024-05-16..2024-05-14 ends before it starts: {EXPECTED}"
