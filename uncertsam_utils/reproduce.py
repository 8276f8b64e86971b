"""Regenerate every figure and table: the numbered notebooks, in order, under papermill.

``uncertsam reproduce [--profile mini|smoke|paper] [--only NN ...] [--data-root DIR] [--set NAME=VALUE ...]``
reads ``params/<profile>.yaml`` (``defaults`` for every notebook, ``notebooks: {NN: {...}}`` per
notebook), converts each jupytext ``notebooks/NN_*.py`` source to a notebook, passes it the
parameters it declares, executes it into ``build/<profile>/`` and records in ``tables/manifest.md``
what each run wrote: file, SHA-256, notebook, profile and command-line overrides, parameters, model
and checksum, data root and time taken. The manifest is the run log; every other table is
byte-identical between runs with the same inputs. After a run, the README's results section is
regenerated from the claims scorecard (``tables/claims.csv``, ``update_results_section``) when the
outputs went to the checkout's own ``tables/``.

Overrides (``--set NAME=VALUE``, ``--data-root DIR`` for ``data_root``) win over the profile's
defaults and per-notebook values and reach every notebook that declares the parameter; a name that
no notebook declares is an error. The paper profile is checked before any notebook runs
(``check_profile``): every missing split under the data root and a missing checkpoint are named.

The manifest holds no path of the machine that wrote it: an absolute path among the parameters (a
data root, a checkpoint) is written as ``.../<its last part>``.

Checked outputs (``checked_outputs``): ``--record-expected DIR`` writes each executed notebook's
checked cells to ``DIR`` (``make expected``); ``--expected DIR`` with ``--prepare-only`` copies them
into the prepared notebooks, which nbval then runs and compares (``make test``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import figures_dir, project_root, tables_dir

PROFILES = ("mini", "smoke", "paper")


class OverrideError(ValueError):
    """A ``--set`` that cannot be applied: malformed, given twice, or no notebook's parameter."""


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


def parse_overrides(pairs: list[str] | None) -> dict:
    """``--set NAME=VALUE`` pairs as ``{NAME: value}``. VALUE is read as YAML, like the profiles:
    ``1`` an int, ``0.5`` a float, ``null`` None, ``true`` a bool, ``[a, b]`` a list, anything
    else a string (``random``, ``sam2.1_hiera_tiny``)."""
    import yaml

    out: dict = {}
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise OverrideError(f"--set takes NAME=VALUE with NAME a notebook parameter (e.g. max_images=1), got {pair!r}")
        if name in out:
            raise OverrideError(f"--set {name} is given twice")
        if not text.strip():
            raise OverrideError(f"--set {name}= has no value (write {name}=null for None)")
        try:
            value = yaml.safe_load(text)
            json.dumps(value)  # papermill and the manifest take plain values only
        except (yaml.YAMLError, TypeError) as err:
            raise OverrideError(f"--set {pair!r}: not a plain YAML value (a number, string, null, true/false, list)") from err
        out[name] = value
    return out


def check_overrides(overrides: dict, declared: dict[str, set[str]]) -> None:
    """Every overridden name is a parameter of some notebook (``declared``: notebook -> its parameters)."""
    known = set().union(*declared.values()) if declared else set()
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise OverrideError(f"no notebook declares {', '.join(unknown)}; the notebooks' parameters: {', '.join(sorted(known))}")


def parameters_for(profile: dict, notebook: Path, declared: set[str]) -> dict:
    """The profile's values for the parameters this notebook declares (others are not passed):
    its defaults, then its values for this notebook, then the command line's overrides."""
    merged = {**profile["defaults"], **(profile["notebooks"].get(notebook.name[:2]) or {}),
              **profile.get("overrides", {})}
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
    """The paper profile needs the real benchmark (each test domain's ``test`` split and the fit set's
    ``fit/train`` and ``fit/val``) and the model's checkpoint (unless ``checkpoint`` is ``random``):
    everything missing is named in one error, before any notebook runs."""
    if name != "paper":
        return
    settings = {**profile["defaults"], **profile.get("overrides", {})}
    problems = _missing_data(settings.get("data_root")) + _missing_checkpoint(settings)
    if problems:
        raise FileNotFoundError("the paper profile cannot run:\n" + "\n".join(f"  - {p}" for p in problems))


def _missing_data(root) -> list[str]:
    from .data.layout import list_splits
    from .data.names import DATASETS

    if not root:
        return ["data_root is not set: pass --data-root DIR, the UncertSAM benchmark in the published layout "
                "(`uncertsam data download --out DIR`, needs HF_TOKEN) with its fit set in DIR/fit"]
    root = Path(root).expanduser()
    if not root.is_dir():
        return [f"data_root {root} is not a folder"]
    tests = [f"{d}/test" for d in DATASETS if "test" not in list_splits(root, d)]
    fit = [f"fit/{s}" for s in ("train", "val") if s not in list_splits(root, "fit")]
    problems = []
    if tests:
        problems.append(f"test splits missing under {root}: {', '.join(tests)} (each <dataset>/test/annotations/"
                        f"dataset.json with images/; `uncertsam data download --out {root} --splits test`)")
    if fit:
        problems.append(f"fit splits missing under {root}: {', '.join(fit)} (the fit set, the paper's SA-1B subset, "
                        "in the published layout; notebooks 04-07 fit and train on it)")
    return problems


def _missing_checkpoint(settings: dict) -> list[str]:
    from .model.checkpoints import resolve_name

    if settings.get("checkpoint") == "random":
        return []
    model = settings.get("model", "sam2_hiera_large")
    try:
        info = resolve_name(model)
    except KeyError as err:
        return [str(err.args[0])]
    path = checkpoint_file(model, settings.get("checkpoint"))
    if path.is_file():
        return []
    if settings.get("checkpoint"):
        return [f"checkpoint file {path} not found"]
    return [f"no {info.name} checkpoint at {path}: run `uncertsam checkpoints download {info.name}`, place the "
            "file there by hand, or pass --set checkpoint=FILE (random: seeded random weights, for pipeline checks)"]


def checkpoint_file(model: str, checkpoint: str | None) -> Path:
    """The weights file a notebook loads for ``model`` and ``checkpoint`` (None: the registry's default place)."""
    from .model.checkpoints import NANO_WEIGHTS, checkpoint_dir, resolve_name

    if checkpoint:
        return Path(checkpoint).expanduser()
    info = resolve_name(model)
    return NANO_WEIGHTS if info.family == "nano" else checkpoint_dir() / info.filename


def prepare_notebooks(sources: list[Path], build_dir: Path) -> dict[Path, tuple[Path, set[str]]]:
    """Each source converted to ``build_dir/prepared/<stem>.ipynb``, with the parameters it declares."""
    out = {}
    for source in sources:
        prepared = to_ipynb(source, build_dir / "prepared" / f"{source.stem}.ipynb")
        out[source] = (prepared, declared_parameters(prepared))
    return out


def run_profile(name: str = "mini", only: list[str] | None = None, build_dir: Path | None = None,
                prepare_only: bool = False, overrides: dict | None = None, expected: Path | None = None,
                record_expected: Path | None = None) -> list[NotebookRun]:
    """Run the profile's notebooks (``only``: these numbers), ``overrides`` winning over its values.
    ``expected`` (with ``prepare_only``): copy the expected outputs of the checked cells from that
    folder; ``record_expected``: write the executed notebooks' checked outputs to that folder."""
    import papermill

    from .checked_outputs import apply_expected
    from .checked_outputs import record_expected as record

    profile = load_profile(name)
    profile["overrides"] = dict(overrides or {})
    check_profile(name, profile)
    build_dir = Path(build_dir) if build_dir else notebooks_dir().parent / "build" / name
    selected = numbered_notebooks(only)
    notebooks = prepare_notebooks(numbered_notebooks() if profile["overrides"] else selected, build_dir)
    check_overrides(profile["overrides"], {source.name: declared for source, (_, declared) in notebooks.items()})
    runs = []
    for source in selected:
        prepared, declared = notebooks[source]
        parameters = parameters_for(profile, source, declared)
        target = build_dir / f"{source.stem}.ipynb"
        print(f"[{name}] {source.name} {json.dumps(parameters, sort_keys=True)}", flush=True)
        started = time.time()
        papermill.execute_notebook(
            str(prepared), str(target), parameters=parameters, kernel_name="python3",
            cwd=str(source.parent), prepare_only=prepare_only, progress_bar=not prepare_only,
        )
        seconds = time.time() - started
        if prepare_only and expected is not None:
            apply_expected(target, Path(expected))
        if not prepare_only and record_expected is not None:
            record(target, Path(record_expected) / target.name)
        outputs = [p for d in (figures_dir(), tables_dir()) for p in sorted(d.iterdir()) if p.is_file() and p.stat().st_mtime >= started and p.name != "manifest.md"]
        runs.append(NotebookRun(source.name, parameters, seconds, outputs))
    if not prepare_only:
        write_manifest(name, runs, profile["overrides"])
        update_results_section()
    return runs


def update_results_section() -> Path | None:
    """README.md's generated results section from ``tables/claims`` (``scorecard.readme``), when the
    tables are the checkout's own (not sent elsewhere by ``UNCERTSAM_OUTPUTS``); returns the README
    when its text changed."""
    from .scorecard import update_readme

    root = project_root()
    if root is None or tables_dir().resolve() != (root / "tables").resolve():
        return None
    readme = root / "README.md"
    return readme if update_readme(readme, tables_dir() / "claims") else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_checksum(parameters: dict) -> str:
    model = parameters.get("model")
    if model is None:
        return ""
    checkpoint = parameters.get("checkpoint")
    if checkpoint == "random":
        return "random weights"
    from .model.checkpoints import cached_sha256

    path = checkpoint_file(model, checkpoint)
    return cached_sha256(path)[:16] if path.is_file() else "missing"


def portable(parameters: dict) -> dict:
    """``parameters`` with every absolute path (a string starting with / or a drive letter) written as
    ``.../<its last part>``: the manifest is committed and names no folder of the machine that wrote it."""
    def short(value):
        if isinstance(value, str) and (value.startswith(("/", "~")) or (len(value) > 2 and value[1:3] in (":\\", ":/"))):
            return f".../{Path(value).name}"
        return value

    return {key: short(value) for key, value in parameters.items()}


def write_manifest(profile: str, runs: list[NotebookRun], overrides: dict | None = None) -> Path:
    """Append this run's rows to tables/manifest.md, replacing earlier rows of the same notebooks.
    The profile cell names the command line's overrides, if any (their values are also in the parameters)."""
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
    label = f"{profile} `--set {json.dumps(portable(overrides), sort_keys=True)}`" if overrides else profile
    for run in runs:
        for stale in [k for k, v in rows.items() if f"| {run.notebook} |" in v]:
            del rows[stale]
        for output in run.outputs:
            name = str(output.relative_to(root)) if root and output.is_relative_to(root) else str(output)
            rows[name] = (
                f"| {name} | {_sha256(output)[:16]} | {run.notebook} | {label} | "
                f"`{json.dumps(portable(run.parameters), sort_keys=True)}` | {_model_checksum(run.parameters)} | "
                f"{portable(run.parameters).get('data_root') or 'UncertSAM-mini (generated)'} | {run.seconds:.1f} |"
            )
    path.write_text("\n".join(header + [rows[k] for k in sorted(rows)]) + "\n")
    return path
