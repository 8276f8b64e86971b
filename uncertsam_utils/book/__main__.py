"""``python -m uncertsam_utils.book``: the static site of the executed notebooks (``make book``).

Builds ``--out`` (default ``build/book``) from the executed notebooks of the last ``uncertsam
reproduce`` (``--notebooks``, default ``build/<profile>``), first executing, with that profile, each
numbered notebook that has no executed copy there yet (``--no-run``: build from what is there).
Figures and tables come from the run's output folders (``UNCERTSAM_OUTPUTS`` or the checkout's
``figures/`` and ``tables/``; ``--outputs DIR`` for ``DIR/figures`` and ``DIR/tables``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def missing_notebooks(executed: Path) -> list[str]:
    """Numbers of the numbered notebooks of the checkout without an executed copy in ``executed``."""
    from ..reproduce import numbered_notebooks

    return [source.name[:2] for source in numbered_notebooks() if not (executed / f"{source.stem}.ipynb").is_file()]


def main(argv=None) -> int:
    from ..paths import figures_dir, project_root, tables_dir
    from ..reproduce import PROFILES, run_profile
    from .site import build_site

    parser = argparse.ArgumentParser(prog="python -m uncertsam_utils.book", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="mini", choices=PROFILES, help="profile of the run (default: mini)")
    parser.add_argument("--notebooks", help="folder of the executed NN_*.ipynb (default: build/<profile>)")
    parser.add_argument("--out", help="the site's folder (default: build/book)")
    parser.add_argument("--outputs", help="folder holding the run's figures/ and tables/ (default: as the run wrote them)")
    parser.add_argument("--no-run", action="store_true", help="do not execute missing notebooks")
    args = parser.parse_args(argv)

    root = project_root() or Path.cwd()
    executed = Path(args.notebooks) if args.notebooks else root / "build" / args.profile
    missing = missing_notebooks(executed)
    if missing and not args.no_run:
        print(f"book: executing the notebooks missing from {executed}: {', '.join(missing)}", flush=True)
        run_profile(args.profile, only=missing, build_dir=executed)
    elif missing:
        print(f"book: WARNING: no executed copy of notebook(s) {', '.join(missing)} in {executed}; left out", flush=True)
    outputs = Path(args.outputs) if args.outputs else None
    figures = outputs / "figures" if outputs else figures_dir()
    tables = outputs / "tables" if outputs else tables_dir()
    built = build_site(executed, Path(args.out) if args.out else root / "build" / "book", figures=figures, tables=tables)
    for name, count in built.errors.items():
        print(f"book: WARNING: {name} carries {count} error output(s): its page shows them", file=sys.stderr)
    print(f"book: {len(built.pages)} notebook pages in {built.seconds:.1f} s: {built.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
