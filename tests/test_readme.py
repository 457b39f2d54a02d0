"""README and docs/ stay true: the table reference (docs/tables.md) is generated from schemas/, the
commands they name exist."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from schemas import tables
from tests.conftest import ROOT


def test_the_table_reference_is_the_one_generated_from_the_schemas():
    reference = (ROOT / "docs/tables.md").read_text()
    embedded = reference.split("<!-- tables:start -->\n", 1)[1].split("<!-- tables:end -->", 1)[0]
    assert embedded.strip() == tables.describe_markdown().strip()


def test_readme_names_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Two commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["bash runners/local/demo.sh [WORKDIR]", "bash runners/local/test.sh"]
    assert "bash runners/local/test.sh" in (ROOT / ".ci/run").read_text()


def pages() -> list[Path]:
    """The first page and every page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_documented_subcommand_answers_help():
    text = "\n".join(page.read_text() for page in pages())
    for name in sorted(set(re.findall(r"`voicelake ([a-z-]+)", text))):
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", name, "--help"],
                              capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, (name, done.stderr)
        assert "usage" in done.stdout.lower() or "--" in done.stdout, name


def test_every_relative_link_of_the_readme_and_docs_reaches_a_file_and_heading():
    for page in pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), (page.name, target)
            if anchor and linked.suffix == ".md":
                assert anchor in heading_anchors(linked.read_text()), (page.name, target)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as '-'."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
