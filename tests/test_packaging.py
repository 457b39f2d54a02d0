"""What the distribution installs at the top level, and that nothing else in the environment
installs the same names.

setup.py installs the design card's folders as five top-level packages (``voicelake``,
``pipeline``, ``transforms``, ``schemas``, ``runners``), so a checkout runs as it is (``python -m
pipeline.cli``, SDK workers started in the checkout) and an installed wheel runs the same code
under the same names.  Four of the names are generic: this check is how a clash would show,
before one distribution's ``schemas`` silently shadows the other's.
"""
import importlib.metadata

import pytest

TOP_LEVEL = ("voicelake", "pipeline", "transforms", "schemas", "runners")


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_each_top_level_package_comes_from_voicelake_alone(name):
    owners = set(importlib.metadata.packages_distributions().get(name, []))
    assert owners == {"voicelake"}, f"{name} is also installed by {sorted(owners - {'voicelake'})}"


def test_the_tests_and_benchmarks_are_not_installed():
    # (ebmlite happens to install a top-level ``tests``; ours is only ever the checkout's)
    for name in ("tests", "benchmarks"):
        assert "voicelake" not in importlib.metadata.packages_distributions().get(name, [])
