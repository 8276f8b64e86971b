"""The project's own files agree with each other: environments, notebook pairs, profiles, CLI."""

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _pins(lines):
    return {re.split(r"[=<>]", line)[0].lower(): line for line in lines}


def test_environment_yml_pins_exactly_the_requirements():
    requirements = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert all("==" in line for line in requirements), "every requirement is pinned"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert _pins(pip_section) == _pins(requirements)
    binder = [l for l in (ROOT / "binder" / "requirements.txt").read_text().splitlines() if l.startswith("torch")]
    assert set(binder) <= set(requirements), "Binder's CPU torch has the same versions"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_pairs_are_in_sync(source):
    """notebooks/NN_*.ipynb are generated from the .py sources (`make pair`), never hand-edited."""
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} is missing: run `make pair`"
    expected = jupytext.read(source)
    actual = nbformat.read(paired, as_version=4)
    strip = lambda nb: [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]  # noqa: E731
    assert strip(actual) == strip(expected), f"{paired.name} is out of sync with {source.name}: run `make pair`"
    assert all(not c.get("outputs") for c in actual.cells if c.cell_type == "code"), "pairs carry no outputs"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_parameters_cell_and_profiles_only_set_declared_parameters(source):
    notebook = jupytext.read(source)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{source.name} needs exactly one cell tagged 'parameters'"
    declared = set(re.findall(r"^(\w+)\s*=", tagged[0].source, flags=re.M))
    for profile in ("mini", "smoke", "paper"):
        overrides = (yaml.safe_load((ROOT / "params" / f"{profile}.yaml").read_text()).get("notebooks") or {}).get(source.name[:2]) or {}
        assert set(overrides) <= declared, f"params/{profile}.yaml sets undeclared parameters of {source.name}"


# Every command group of `uncertsam` and its subcommands, in the order of --help (README, "The `uncertsam` command").
CLI_COMMANDS = {
    "checkpoints": ["list", "download", "verify"],
    "data": ["download", "import", "inspect", "mini"],
    "train": ["nano", "nano-card", "varnet", "fusion"],
    "fit": ["laplace"],
    "eval": [],
    "bench": ["core", "uq"],
    "reproduce": [],
    "cache": ["list", "verify", "clear"],
}


def _subcommands(parser) -> dict:
    import argparse

    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: sub for group in groups for name, sub in group.choices.items()}


def test_cli_has_every_command_group_and_subcommand_each_with_a_handler():
    from uncertsam_utils.cli import build_parser

    groups = _subcommands(build_parser())
    assert list(groups) == list(CLI_COMMANDS)
    for group, expected in CLI_COMMANDS.items():
        leaves = _subcommands(groups[group])
        assert list(leaves) == expected, f"uncertsam {group}"
        for name, parser in (leaves or {group: groups[group]}).items():
            assert callable(parser.get_default("handler")), f"uncertsam {group} {name} has no handler"


def test_cli_runs_as_a_module_and_as_the_entry_point():
    out = subprocess.run([sys.executable, "-m", "uncertsam_utils.cli", "--help"], capture_output=True, text=True, check=True).stdout
    listed = re.findall(r"^    (\S+)", out, flags=re.M)
    assert listed == list(CLI_COMMANDS)
    # a user error is a message and exit status 2, not a traceback, also under `python -m`
    failed = subprocess.run([sys.executable, "-m", "uncertsam_utils.cli", "data", "inspect", str(ROOT / "no-such-folder")],
                            capture_output=True, text=True)
    assert failed.returncode == 2 and failed.stderr.startswith("uncertsam: error:") and "Traceback" not in failed.stderr
    import importlib
    import tomllib

    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["uncertsam"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is importlib.import_module("uncertsam_utils.cli").main


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
