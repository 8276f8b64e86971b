"""Regenerate every figure and table: the numbered notebooks, in order, under papermill.

``uncertsam reproduce [--profile mini|smoke|paper] [--only NN ...]`` reads ``params/<profile>.yaml``
(``defaults`` for every notebook, ``notebooks: {NN: {...}}`` per notebook), converts each jupytext
``notebooks/NN_*.py`` source to a notebook, passes it the parameters it declares, executes it into
``build/<profile>/`` and records in ``tables/manifest.md`` what each run wrote: file, SHA-256,
notebook, parameters, model and checksum, data root and time taken. The manifest is the run log;
every other table is byte-identical between runs with the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import figures_dir, project_root, tables_dir

PROFILES = ("mini", "smoke", "paper")


@dataclass
class NotebookRun:
    notebook: str
    parameters: dict
    seconds: float
    outputs: list[Path]


def notebooks_dir() -> Path:
    root = project_root()
    if root is None:
        raise FileNotFoundError("uncertsam reproduce needs a checkout of the repository (notebooks/ not found)")
    return root / "notebooks"


def numbered_notebooks(only: list[str] | None = None) -> list[Path]:
    found = sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.py"))
    if only:
        wanted = {n.zfill(2) for n in only}
        found = [p for p in found if p.name[:2] in wanted]
        missing = wanted - {p.name[:2] for p in found}
        if missing:
            raise FileNotFoundError(f"no notebook numbered {', '.join(sorted(missing))} in {notebooks_dir()}")
    return found


def load_profile(name: str) -> dict:
    import yaml

    path = notebooks_dir().parent / "params" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"profile {name!r} not found: expected {path} (profiles: {', '.join(PROFILES)})")
    profile = yaml.safe_load(path.read_text()) or {}
    profile.setdefault("defaults", {})
    profile.setdefault("notebooks", {})
    return profile


def parameters_for(profile: dict, notebook: Path, declared: set[str]) -> dict:
    """The profile's values for the parameters this notebook declares (others are not passed)."""
    merged = {**profile["defaults"], **(profile["notebooks"].get(notebook.name[:2]) or {})}
    return {k: v for k, v in merged.items() if k in declared}


def to_ipynb(source: Path, target: Path) -> Path:
    import jupytext

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, target)
    return target


def declared_parameters(ipynb: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(ipynb)))


def check_profile(name: str, profile: dict) -> None:
    """The paper profile needs the real benchmark and an official checkpoint: fail fast if absent."""
    if name != "paper":
        return
    defaults = profile["defaults"]
    from .model.checkpoints import checkpoint_dir, resolve_name

    root = defaults.get("data_root")
    if not root or not Path(root).is_dir():
        raise FileNotFoundError(
            f"the paper profile needs the UncertSAM benchmark at data_root={root!r} (params/paper.yaml). "
            "Get it with `uncertsam data download --out DIR` (needs HF_TOKEN) and set data_root to DIR."
        )
    info = resolve_name(defaults.get("model", "sam2_hiera_large"))
    checkpoint = Path(defaults["checkpoint"]) if defaults.get("checkpoint") else checkpoint_dir() / info.filename
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"the paper profile needs the {info.name} checkpoint at {checkpoint}. "
            f"Run `uncertsam checkpoints download {info.name}` or place the file there by hand."
        )


def run_profile(name: str = "mini", only: list[str] | None = None, build_dir: Path | None = None, prepare_only: bool = False) -> list[NotebookRun]:
    import papermill

    profile = load_profile(name)
    check_profile(name, profile)
    build_dir = Path(build_dir) if build_dir else notebooks_dir().parent / "build" / name
    runs = []
    for source in numbered_notebooks(only):
        prepared = to_ipynb(source, build_dir / "prepared" / f"{source.stem}.ipynb")
        parameters = parameters_for(profile, source, declared_parameters(prepared))
        target = build_dir / f"{source.stem}.ipynb"
        print(f"[{name}] {source.name} {json.dumps(parameters, sort_keys=True)}", flush=True)
        started = time.time()
        papermill.execute_notebook(
            str(prepared), str(target), parameters=parameters, kernel_name="python3",
            cwd=str(source.parent), prepare_only=prepare_only, progress_bar=not prepare_only,
        )
        seconds = time.time() - started
        outputs = [p for d in (figures_dir(), tables_dir()) for p in sorted(d.iterdir()) if p.is_file() and p.stat().st_mtime >= started and p.name != "manifest.md"]
        runs.append(NotebookRun(source.name, parameters, seconds, outputs))
    if not prepare_only:
        write_manifest(name, runs)
    return runs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_checksum(parameters: dict) -> str:
    from .model.checkpoints import NANO_WEIGHTS, checkpoint_dir, resolve_name

    model = parameters.get("model")
    if model is None:
        return ""
    checkpoint = parameters.get("checkpoint")
    if checkpoint == "random":
        return "random weights"
    info = resolve_name(model)
    path = Path(checkpoint) if checkpoint else (NANO_WEIGHTS if info.family == "nano" else checkpoint_dir() / info.filename)
    return _sha256(path)[:16] if path.is_file() else "missing"


def write_manifest(profile: str, runs: list[NotebookRun]) -> Path:
    """Append this run's rows to tables/manifest.md, replacing earlier rows of the same notebooks."""
    path = tables_dir() / "manifest.md"
    header = [
        "# Manifest of regenerated outputs",
        "",
        "Written by `uncertsam reproduce`; one row per output file of the latest run of its notebook.",
        "",
        "| output | sha256 | notebook | profile | parameters | model checksum | data root | notebook time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {}
    if path.is_file():
        for line in path.read_text().splitlines()[len(header):]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 8:
                rows[cells[0]] = line
    root = project_root()
    for run in runs:
        for stale in [k for k, v in rows.items() if f"| {run.notebook} |" in v]:
            del rows[stale]
        for output in run.outputs:
            name = str(output.relative_to(root)) if root and output.is_relative_to(root) else str(output)
            rows[name] = (
                f"| {name} | {_sha256(output)[:16]} | {run.notebook} | {profile} | "
                f"`{json.dumps(run.parameters, sort_keys=True)}` | {_model_checksum(run.parameters)} | "
                f"{run.parameters.get('data_root') or 'UncertSAM-mini (generated)'} | {run.seconds:.1f} |"
            )
    path.write_text("\n".join(header + [rows[k] for k in sorted(rows)]) + "\n")
    return path
