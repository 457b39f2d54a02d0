"""README stays true: its table reference is generated from schemas/, its commands exist."""
from __future__ import annotations

import re
import subprocess
import sys

from schemas import tables
from tests.conftest import ROOT


def test_readme_table_reference_is_the_one_generated_from_the_schemas():
    readme = (ROOT / "README.md").read_text()
    embedded = readme.split("<!-- tables:start -->\n", 1)[1].split("<!-- tables:end -->", 1)[0]
    assert embedded.strip() == tables.describe_markdown().strip()


def test_readme_names_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Two commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["bash runners/local/demo.sh [WORKDIR]", "bash runners/local/test.sh"]
    assert "bash runners/local/test.sh" in (ROOT / ".ci/run").read_text()


def test_every_documented_subcommand_answers_help():
    readme = (ROOT / "README.md").read_text()
    for name in sorted(set(re.findall(r"`voicelake ([a-z-]+)", readme))):
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", name, "--help"],
                              capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, (name, done.stderr)
        assert "usage" in done.stdout.lower() or "--" in done.stdout, name
