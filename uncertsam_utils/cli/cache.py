"""``uncertsam cache list | verify | clear``: the computed results kept in the results cache
(``uncertsam_utils.cache``): evaluations, Laplace posteriors, variance heads, fusion modules."""

from __future__ import annotations

from .common import add_command, add_group


def _root():
    from ..paths import results_cache_dir

    return results_cache_dir()


def _describe(entry) -> str:
    state = f"recorded {entry.created}" if entry.recorded else ("unfinished" if entry.path.is_dir() else "no record")
    return (f"  {entry.kind:<12} {entry.path.name:<44} {entry.bytes / 2**20:>8.1f} MB {entry.files:>6} files  "
            f"{state}")


def _list(args) -> int:
    """Every entry of the results cache: its kind, name, size, number of files and whether it is
    complete (recorded, with its files' SHA-256) or unfinished."""
    from ..cache.entries import KINDS, list_entries

    root = _root()
    print(f"results cache: {root}  (set UNCERTSAM_RESULTS_CACHE to change)")
    entries = list_entries(root, args.kind)
    for kind in args.kind or KINDS:
        print(f"{kind}: {KINDS[kind][2]}")
        for entry in (e for e in entries if e.kind == kind):
            print(_describe(entry))
    total = sum(e.bytes for e in entries)
    print(f"{len(entries)} entries, {total / 2**20:.1f} MB")
    return 0


def _verify(args) -> int:
    """Hash every file of every entry again and compare with its record. Exit status 1 when an entry
    failed (a changed, missing or extra file, or a file without a record); ``--remove-bad`` removes
    those entries so that the next run computes them again."""
    from ..cache.entries import list_entries, remove_entry, verify_entry

    failed = 0
    for entry in list_entries(_root(), args.kind):
        if entry.path.is_dir() and not entry.recorded:
            print(f"unfinished  {entry.kind}/{entry.path.name} (resumed by the next run)")
            continue
        problems = verify_entry(entry.path)
        if not problems:
            print(f"ok          {entry.kind}/{entry.path.name} ({entry.files} files)")
            continue
        failed += 1
        print(f"FAILED      {entry.kind}/{entry.path.name}: " + "; ".join(problems))
        if args.remove_bad:
            remove_entry(entry.path)
            print(f"            removed {entry.path}")
    if failed:
        print(f"{failed} entr{'y' if failed == 1 else 'ies'} failed verification"
              + ("" if args.remove_bad else " (--remove-bad removes them)"))
    return 1 if failed else 0


def _clear(args) -> int:
    """Remove the cached results of the given kinds (default: all). UncertSAM-mini, the checkpoints and
    the data fingerprints are never removed by this command."""
    from ..cache.entries import clear_kinds

    root = _root()
    removed, freed = clear_kinds(root, args.kind)
    print(f"removed {removed} entries ({freed / 2**20:.1f} MB) from {root}")
    return 0


def register(subparsers) -> None:
    from ..cache.entries import KINDS

    actions = add_group(subparsers, "cache", "list, verify and clear the cached results", "action", "ACTION")
    for name, handler, help in (("list", _list, "every cached result and whether it is complete"),
                                ("verify", _verify, "check every cached result against its recorded SHA-256"),
                                ("clear", _clear, "remove cached results (not the data, not the checkpoints)")):
        parser = add_command(actions, name, handler, help)
        parser.add_argument("--kind", nargs="+", choices=list(KINDS), help="only these kinds (default: all)")
        if name == "verify":
            parser.add_argument("--remove-bad", action="store_true", help="remove the entries that failed")
