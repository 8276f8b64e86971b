"""Break the pipeline on purpose and check that the tests fail (issue 21): ``python tests/mutation_check.py``.

Four one-line mutations, one at a time, each in a fresh copy of this checkout (the checkout itself
is never edited): IoU, the binary entropy, the prompt jitter and the Laplace predictive variance.
For each, two stages of ``make test`` run on the copy, and each must fail:

1. the unit tests (``pytest -x``; the test files that exercise the mutated function first, then
   all others), stopped at the first failure;
2. the smoke notebooks that use the function, under nbval with their checked outputs
   (``tests/expected``), with the results cache WARM: the cache ``make test`` left (or a baseline
   run made here, which must pass) is not cleared, so a pass would mean stale CSVs were reused.

``--record`` writes the table of results to ``tests/MUTATIONS.md``. Options: ``--only NAME ...``,
``--unit-only``, ``--notebooks-only``, ``--results-cache DIR`` (default ``build/mutation/cache``;
``--skip-baseline`` when it is already warm from an unmutated run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"


@dataclass
class Mutation:
    name: str
    path: str  # in the package
    old: str  # the exact line (stripped of its indentation) that is replaced
    new: str
    tests: tuple[str, ...]  # unit test files run first
    notebooks: tuple[str, ...]  # smoke notebooks run under nbval

    @property
    def change(self) -> str:
        return f"`{self.old}` → `{self.new}`".replace("|", "\\|")  # a table cell, even in code


MUTATIONS = (
    Mutation("IoU", "uncertsam_utils/metrics/segmentation.py", "union = (p | g).flatten(-2).sum(-1)",
             "union = (p | g).flatten(-2).sum(-1) + 1", ("tests/test_metrics.py",), ("00", "06")),
    # the entropy every map is computed with (measures.entropy_from_logits; binary_entropy only serves
    # probabilities that come without logits, which notebooks 02 and 03 never show)
    Mutation("binary entropy", "uncertsam_utils/uq/measures.py",
             "return F.softplus(-a) + a * torch.sigmoid(-a)",
             "return F.softplus(-a) + a * torch.sigmoid(a)", ("tests/test_logit_convention.py", "tests/test_uq_sampling.py"),
             ("02", "03")),
    Mutation("prompt jitter", "uncertsam_utils/prompts.py",
             "noise = _uniform_symmetric(boxes.shape, generator, boxes.device) * bounds",
             "noise = _uniform_symmetric(boxes.shape, generator, boxes.device) * bounds * 0.5",
             ("tests/test_uq_sampling.py",), ("03",)),
    Mutation("Laplace predictive variance", "uncertsam_utils/uq/laplace/predictive.py",
             'var = torch.einsum("nc,ncp->np", z_cov.diagonal(dim1=-2, dim2=-1), flat * flat)',
             'var = torch.einsum("nc,ncp->np", z_cov.diagonal(dim1=-2, dim2=-1), flat.abs())',
             ("tests/test_laplace.py",), ("06",)),
)


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def make_copy(target: Path, mutation: Mutation | None) -> Path:
    """A copy of the checkout's files under ``target`` (its cache linking to this one's UncertSAM-mini),
    with ``mutation`` applied."""
    shutil.rmtree(target, ignore_errors=True)
    for name in tracked_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    (target / ".cache").mkdir(parents=True, exist_ok=True)
    for mini in (ROOT / ".cache").glob("UncertSAM-mini-*"):
        (target / ".cache" / mini.name).symlink_to(mini.resolve())
    if mutation is not None:
        path = target / mutation.path
        text = path.read_text()
        lines = [line for line in text.splitlines() if line.strip() == mutation.old]
        if len(lines) != 1:
            raise SystemExit(f"{mutation.path}: the line {mutation.old!r} is there {len(lines)} times, not once")
        indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
        path.write_text(text.replace(lines[0], indent + mutation.new))
    return target


def _env(copy: Path, results_cache: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(copy), UNCERTSAM_CACHE=str(copy / ".cache"),
               UNCERTSAM_RESULTS_CACHE=str(results_cache), UNCERTSAM_OUTPUTS=str(copy / "build" / "smoke" / "outputs"),
               MPLBACKEND="Agg", PYTHONHASHSEED="0", OMP_WAIT_POLICY="PASSIVE")
    for name in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        env[name] = str(copy / ".jupyter" / name.lower())
    return env


def _run(cmd: list[str], copy: Path, env: dict, log: Path) -> tuple[int, str, float]:
    started = time.time()
    done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    return done.returncode, done.stdout, time.time() - started


def failures(output: str) -> list[str]:
    """The failed test ids of a pytest run (its short summary)."""
    return [m.strip() for m in re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, flags=re.M)]


def unit_stage(copy: Path, mutation: Mutation, results_cache: Path) -> tuple[list[str], float]:
    first = list(mutation.tests)
    rest = sorted(str(p.relative_to(copy)) for p in (copy / "tests").glob("test_*.py") if str(p.relative_to(copy)) not in first)
    code, out, seconds = _run([sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *first, *rest],
                              copy, _env(copy, results_cache), copy / "unit.log")
    return (failures(out) or ([f"exit status {code}"] if code else [])), seconds


def cache_entries(results_cache: Path) -> set[str]:
    """The entries of the results cache (evaluations, posteriors, heads, fusion modules)."""
    return {f"{p.parent.name}/{p.name}" for kind in ("evaluations", "laplace", "varnet", "fusion")
            for p in (results_cache / kind).glob("*") if not p.name.endswith((".json", ".resume.pt"))}


def notebook_stage(copy: Path, notebooks: tuple[str, ...], results_cache: Path) -> tuple[list[str], float]:
    env = _env(copy, results_cache)
    code, out, prep = _run([sys.executable, "-m", "uncertsam_utils.cli", "reproduce", "--profile", "smoke", "--prepare-only",
                            "--build-dir", "build/smoke", "--expected", "tests/expected", "--only", *notebooks],
                           copy, env, copy / "prepare.log")
    if code:
        raise SystemExit(f"preparing the notebooks failed: see {copy / 'prepare.log'}")
    files = [str(p.relative_to(copy)) for n in notebooks for p in (copy / "build" / "smoke").glob(f"{n}_*.ipynb")]
    code, out, seconds = _run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "--nbval-lax",
                               "--nbval-current-env", "--nbval-sanitize-with", "params/nbval_sanitize.cfg", *files],
                              copy, env, copy / "notebooks.log")
    return (failures(out) or ([f"exit status {code}"] if code else [])), prep + seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="mutations by name (default: all four)")
    parser.add_argument("--unit-only", action="store_true")
    parser.add_argument("--notebooks-only", action="store_true")
    parser.add_argument("--results-cache", type=Path, default=WORK / "cache")
    parser.add_argument("--skip-baseline", action="store_true", help="the results cache is already warm")
    parser.add_argument("--record", action="store_true", help="write the results to tests/MUTATIONS.md")
    args = parser.parse_args(argv)
    args.results_cache = args.results_cache.resolve()  # the commands run in the copies, the kernels in notebooks/
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    notebooks = tuple(sorted({n for m in chosen for n in m.notebooks}))
    if not args.unit_only and not args.skip_baseline:
        print(f"baseline (no mutation): notebooks {', '.join(notebooks)}, filling {args.results_cache}", flush=True)
        failed, seconds = notebook_stage(make_copy(WORK / "baseline", None), notebooks, args.results_cache)
        if failed:
            raise SystemExit(f"the unmutated notebooks fail ({failed}): fix that (or `make expected`) first")
        print(f"  passed in {seconds:.0f} s", flush=True)
    rows = []
    for mutation in chosen:
        copy = make_copy(WORK / mutation.name.replace(" ", "-"), mutation)
        print(f"{mutation.name}: {mutation.path}: {mutation.change}", flush=True)
        unit = ([], 0.0) if args.notebooks_only else unit_stage(copy, mutation, args.results_cache)
        before = cache_entries(args.results_cache)
        nbs = ([], 0.0) if args.unit_only else notebook_stage(copy, mutation.notebooks, args.results_cache)
        new = sorted(cache_entries(args.results_cache) - before)
        rows.append((mutation, unit, nbs, new))
        print(f"  unit tests: {unit[0][:3] or 'none failed'} ({unit[1]:.0f} s)\n"
              f"  notebooks {', '.join(mutation.notebooks)}: {nbs[0][:6] or 'none failed'} ({nbs[1]:.0f} s); "
              f"recomputed into the warm cache: {new or 'nothing'}", flush=True)
    if args.record:
        write_record(rows, args)
    caught = all((args.notebooks_only or u[0]) and (args.unit_only or n[0]) for _, u, n, _ in rows)
    print("every mutation was caught" if caught else "A MUTATION WAS NOT CAUGHT")
    return 0 if caught else 1


def write_record(rows, args) -> None:
    lines = [
        "# Mutation check",
        "",
        "Written by `python tests/mutation_check.py --record` (do not edit by hand). Each row: a one-line",
        "break of the package in a copy of the checkout, the first unit test that failed (`pytest -x`, the",
        "listed test files first), and the checked notebook cells that failed under nbval with the results",
        "cache warm from an unmutated run (not cleared, so reused stale CSVs would pass), and the cache",
        "entries the mutated code computed anew (its keys cover the package's code, so none is reused).",
        "",
        "| mutation | change | unit tests: first failure | s | smoke notebooks: failed cells | s | recomputed |",
        "|---|---|---|---:|---|---:|---|",
    ]
    for mutation, (unit, unit_s), (nbs, nb_s), new in rows:
        unit_text = "<br>".join(f"`{u}`" for u in unit) or ("not run" if args.notebooks_only else "**none**")
        nb_text = "<br>".join(f"`{n}`" for n in nbs) or ("not run" if args.unit_only else "**none**")
        new_text = "<br>".join(f"`{n}`" for n in new) or ("not run" if args.unit_only else "nothing")
        lines.append(f"| {mutation.name} | `{mutation.path}`: {mutation.change} | {unit_text} | {unit_s:.0f} | "
                     f"{nb_text} | {nb_s:.0f} | {new_text} |")
    baseline = ("the unmutated notebooks passed first, filling it" if not (args.skip_baseline or args.unit_only) else
                f"given (`--skip-baseline`): `{args.results_cache.relative_to(ROOT) if args.results_cache.is_relative_to(ROOT) else args.results_cache}`, "
                "left by a passing `make test` notebook run")
    lines += ["", f"Warm results cache: {baseline}.",
              f"Run on {time.strftime('%Y-%m-%d')}; durations on the project machine (2 CPU cores shared with other work)."]
    (ROOT / "tests" / "MUTATIONS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
