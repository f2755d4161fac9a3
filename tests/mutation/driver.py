"""Mutation testing of the claim rules, the schedules and the stores' claim code (issue #17).

``python -m tests.mutation.driver full``  - what ``tox -e mutation`` runs: every mutant of
    the modules in :data:`GROUPS` (the stores narrowed to their insert / compare-and-set
    functions by mutant name), a score per group, the surviving mutants; exit 1 when a
    group scores under the threshold.
``python -m tests.mutation.driver guard`` - what ``tox -e mutguard`` runs (plain ``tox``):
    a fixed-seed sample of ``cron/claim.py``'s mutants in a throwaway copy of the tree;
    exit 1 under the threshold.

mutmut 3 reads ``[tool.mutmut]`` in ``pyproject.toml``: the files it mutates and the tests
it runs. It copies the tree into ``mutants/`` and runs pytest there; every process a test
starts must import that copy too, so ``PYTHONPATH`` names it (a child started elsewhere
would otherwise import the editable install, unmutated, and let its mutant survive).
A score counts killed and timed-out mutants over all tested ones; "no tests" counts as a
survivor (nothing would catch that change).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THRESHOLD = 90.0
GUARD_SEED = 17
GUARD_SAMPLE = 40
GUARD_FILE = "cron/claim.py"
GUARD_MODULE = "cron.claim"
# The guard's test set: the fastest that still pins the claim rules (the pure rule tests
# and the phase-0 claim API); the full run adds the goldens, the tick and the stores.
GUARD_TESTS = (
    "tests/foundation/test_claim_rules.py",
    "tests/foundation/test_jobs_api.py",
)

CAUGHT = {"killed", "timeout", "caught by type check"}
NOT_TESTED = {"skipped", "not checked", "equivalent"}


def _methods(module: str, cls: str, names: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{module}.x\u01c1{cls}\u01c1{name}__mutmut_*" for name in names)


# Each group: the mutant-name globs it scores. Store backends are scored on their claim
# code only - insert and the compare-and-set swap (the rest is reading, DDL, plumbing).
GROUPS: dict[str, tuple[str, ...]] = {
    "cron/claim.py": ("cron.claim.*",),
    "cron/schedule.py": ("cron.schedule.*",),
    "cron/stores/json.py (claim)": _methods(
        "cron.stores.json",
        "JsonJobStore",
        ("insert", "insert_many", "swap", "swap_many", "_write_batch"),
    ),
    "cron/stores/sqlite.py (claim)": _methods(
        "cron.stores.sqlite",
        "SqliteJobStore",
        ("_insert_in", "insert", "insert_many", "_swap_in", "swap", "swap_many"),
    ),
    "cron/stores/postgres.py (claim)": _methods(
        "cron.stores.postgres",
        "PostgresJobStore",
        ("_insert_in", "insert", "insert_many", "_is_rev", "_swap_params", "swap", "swap_many"),
    ),
}


@dataclass(frozen=True)
class Equivalent:
    """A surviving change that provably cannot alter behaviour, matched on its diff (mutant
    numbers shift whenever the code changes; the diff does not). Listed in tests/MUTATION.md."""

    names: str  # glob over mutant names
    removed: str  # regex the removed line matches
    added: str  # regex the added line matches
    reason: str
    same_but_case: bool = False  # the two lines differ only in letter case


_SQL = r"\b(?i:select|update|insert|delete|where|returning|values|from|set)\b"
EQUIVALENTS = (
    Equivalent(
        "cron.stores.*",
        _SQL,
        _SQL,
        "SQL keywords and unquoted identifiers are case-insensitive (SQLite, PostgreSQL)",
        same_but_case=True,
    ),
    Equivalent(
        "cron.stores.json.x\u01c1JsonJobStore\u01c1swap*",
        r"if isinstance\((r\.)?result, Stored\) else None",
        r"if \(isinstance\((r\.)?result, Stored\)\) or True else None",
        "a swap's result is a Stored or None, so the guard returns it either way",
    ),
    Equivalent(
        "cron.stores.postgres.x\u01c1PostgresJobStore\u01c1*",
        r'json\.dumps\((new|job), separators=\(",", ":"\)\)',
        r"json\.dumps\((new|job), (separators=None)?\)",
        "the doc column's text is only ever parsed (json.loads), never compared: "
        "its whitespace cannot show",
    ),
    Equivalent(
        "cron.stores.postgres.x\u01c1PostgresJobStore\u01c1insert_many__*",
        r"zip\(jobs, docs, strict=True\)",
        r"zip\(jobs, docs, (strict=(None|False))?\)",
        "docs is built from jobs, one per job: the two are always the same length",
    ),
    Equivalent(
        "cron.stores.postgres.x\u01c1PostgresJobStore\u01c1insert_many__*",
        r"^batch = json\.dumps\(",
        r"^batch = None$",
        "a NULL batch inserts nothing, so insert_many takes its row-by-row path, which "
        "stores the same rows, revisions and wake times in the same transaction",
    ),
    Equivalent(
        "cron.claim.x__lateness__*",
        r"^late > GRACE_MIN$",
        r"^late >= GRACE_MIN$",
        "a short cut: grace is never under GRACE_MIN, so at late == GRACE_MIN the grace "
        "test that follows is false either way",
    ),
    Equivalent(
        "cron.claim.x__missed_between__*",
        r"end=end, limit=MISSED_ROWS_LIMIT \+ 1",
        r"start=start, end=end,( limit=MISSED_ROWS_LIMIT \+ 2\b| *\)|\s*$)",
        "the rows are the first MISSED_ROWS_LIMIT slots before end, and only the slot at end "
        "(the last) is dropped: any limit >= MISSED_ROWS_LIMIT gives the same rows",
    ),
    Equivalent(
        "cron.stores.json.x\u01c1JsonJobStore\u01c1_write_batch__*",
        r'req\.result = None if req\.op == "swap" else False',
        r"^req\.result = (None|None if .* else False)$",
        "a lost op's result is only read as `is True` (delete) or `isinstance(..., Stored)` "
        "(swap, insert): None and False read the same",
    ),
    Equivalent(
        "cron.stores.json.x\u01c1JsonJobStore\u01c1swap_many__*",
        r"zip\(swaps, out, strict=True\)",
        r"zip\(swaps, out, (strict=(None|False))?\s*\)",
        "out is built from swaps, one per swap: the two are always the same length",
    ),
    Equivalent(
        "cron.stores.postgres.x\u01c1PostgresJobStore\u01c1*",
        r"SWAP_MANY, swap_many_params\(.*\), prepare=True",
        r"SWAP_MANY, swap_many_params\(.*\),( prepare=(None|False))?\s*\)?$",
        "prepare= only chooses whether the server keeps the statement prepared (a speed "
        "matter): the statement and its results are the same",
    ),
    Equivalent(
        "cron.schedule.x__parse_dict__*",
        r'if zone_name and "tz" not in out:',
        r'if zone_name and "(XXtzXX|TZ)" not in out:',
        "out has a tz only from _cron_schedule given this same zone_name, so writing it "
        "again stores the same value",
    ),
)


def _diff(cwd: Path, name: str) -> tuple[str, str]:
    """The removed and the added line of a mutant (mutmut changes one spot)."""
    shown = _mutmut(cwd, "show", name, capture=True).stdout.splitlines()
    removed = " ".join(x[1:].strip() for x in shown if x.startswith("-") and not x.startswith("--"))
    added = " ".join(x[1:].strip() for x in shown if x.startswith("+") and not x.startswith("++"))
    return removed, added


def equivalent(name: str, removed: str, added: str) -> Equivalent | None:
    for eq in EQUIVALENTS:
        if not fnmatch.fnmatchcase(name, eq.names):
            continue
        if not (re.search(eq.removed, removed) and re.search(eq.added, added)):
            continue
        # ... and changes no quoted literal ('jobs_version') or psycopg placeholder
        # (%s -> %S): those are case-sensitive. Lower-casing leaves %s as it is.
        if eq.same_but_case and (
            removed.lower() != added.lower()
            or removed == added
            or "'" in removed.strip().strip('"')[1:-1]
            or "%S" in added
        ):
            continue
        return eq
    return None


def _mark_equivalents(scores: list[Score], cwd: Path) -> dict[str, str]:
    """Set each provably equivalent survivor's status to ``equivalent``; name -> reason."""
    found: dict[str, str] = {}
    for score in scores:
        for name in score.survivors():
            eq = equivalent(name, *_diff(cwd, name))
            if eq is not None:
                score.statuses[name] = "equivalent"
                found[name] = eq.reason
    return found


@dataclass
class Score:
    group: str
    statuses: dict[str, str] = field(default_factory=dict)

    @property
    def tested(self) -> int:
        return sum(1 for s in self.statuses.values() if s not in NOT_TESTED)

    @property
    def caught(self) -> int:
        return sum(1 for s in self.statuses.values() if s in CAUGHT)

    @property
    def percent(self) -> float:
        return 100.0 * self.caught / self.tested if self.tested else 0.0

    def survivors(self) -> list[str]:
        return sorted(
            (n for n, s in self.statuses.items() if s not in CAUGHT and s not in NOT_TESTED),
            key=_natural,
        )


def _natural(name: str) -> tuple[str, int]:
    stem, _, num = name.rpartition("__mutmut_")
    return stem, int(num) if num.isdigit() else 0


def _mutmut(cwd: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    # Before the interpreter starts: a PYTHONPATH entry missing at start-up is cached as
    # "no finder" and never searched, even once mutmut has created it.
    (cwd / "mutants").mkdir(exist_ok=True)
    env = dict(os.environ)
    # Children started by tests (``python -m cron``, spawn workers) import the mutated copy.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(cwd / "mutants"), env.get("PYTHONPATH", "")) if p
    )
    exe = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    return subprocess.run(
        [exe, *args],
        cwd=cwd,
        env=env,
        text=True,
        check=False,
        stdout=subprocess.PIPE if capture else None,
    )


def _results(cwd: Path) -> dict[str, str]:
    """Every mutant's status, from ``mutmut results --all true``."""
    out = _mutmut(cwd, "results", "--all", "true", capture=True).stdout
    statuses: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status
    return statuses


def _score(statuses: dict[str, str], groups: dict[str, tuple[str, ...]]) -> list[Score]:
    scores = [Score(g) for g in groups]
    for name, status in statuses.items():
        for score in scores:
            if any(fnmatch.fnmatchcase(name, pat) for pat in groups[score.group]):
                score.statuses[name] = status
                break
    return scores


def _report(scores: list[Score], threshold: float, cwd: Path, diffs: bool) -> bool:
    ok = True
    equivalents = _mark_equivalents(scores, cwd)
    print()
    print(f"{'module':34} {'killed':>7} {'tested':>7} {'score':>7}")
    for s in scores:
        flag = "" if s.percent >= threshold else f"  < {threshold:.0f} %"
        ok = ok and s.percent >= threshold
        print(f"{s.group:34} {s.caught:7d} {s.tested:7d} {s.percent:6.1f}%{flag}")
    for s in scores:
        survivors = s.survivors()
        if not survivors:
            continue
        print(f"\nsurviving in {s.group}:")
        for name in survivors:
            print(f"  {name}  ({s.statuses[name]})")
            if diffs:
                shown = _mutmut(cwd, "show", name, capture=True).stdout
                print("    " + "\n    ".join(shown.splitlines()[1:]))
    if equivalents:
        print("\nequivalent (not scored):")
        for name, reason in sorted(equivalents.items()):
            print(f"  {name}: {reason}")
    return ok


def _all_mutants(path: str) -> list[str]:
    """Every mutant name mutmut makes of ``path`` (``cron.claim.x_try_claim__mutmut_3``)."""
    from mutmut.mutation.file_mutation import mutate_file_contents

    module = path.removesuffix(".py").replace("/", ".")
    names = mutate_file_contents(path, (ROOT / path).read_text()).mutant_names
    return sorted((f"{module}.{n}" for n in names), key=_natural)


def _sample(groups: dict[str, tuple[str, ...]], seed: int, size: int) -> list[str]:
    """``size`` mutants of each group, drawn with ``seed`` (reproducible)."""
    rng = random.Random(seed)
    picked: list[str] = []
    for group, patterns in groups.items():
        names = [
            n
            for n in _all_mutants(group.split()[0])
            if any(fnmatch.fnmatchcase(n, p) for p in patterns)
        ]
        picked += sorted(rng.sample(names, min(size, len(names))), key=_natural)
    return picked


@contextlib.contextmanager
def _postgres() -> Iterator[None]:
    """One PostgreSQL server for the whole run: without it every mutant's pytest session
    (a fork) would start its own (``CRONKIT_TEST_POSTGRES_DSN``, tests/conftest.py)."""
    if os.environ.get("CRONKIT_TEST_POSTGRES_DSN"):
        yield
        return
    from cron.testing.postgres import PostgresServer

    with PostgresServer() as server:
        os.environ["CRONKIT_TEST_POSTGRES_DSN"] = server.url
        try:
            yield
        finally:
            del os.environ["CRONKIT_TEST_POSTGRES_DSN"]


def full(args: argparse.Namespace) -> int:
    groups = {g: p for g, p in GROUPS.items() if not args.only or any(o in g for o in args.only)}
    if args.sample:
        names = _sample(groups, args.seed, args.sample)
    else:
        names = [p for pats in groups.values() for p in pats]
    selected = list(names)
    if args.rerun:
        # Re-run only the mutants a previous run left with this status (e.g. "timeout"
        # after raising timeout_constant); the report still covers the whole selection.
        known = _score(_results(ROOT), groups)
        wanted = set(args.rerun.split(","))
        names = [
            n
            for sc in known
            for n, st in sc.statuses.items()
            if st in wanted and (not args.sample or n in set(selected))
        ]
        if not names:
            print(f"no mutant has status {args.rerun!r}")
    start = time.monotonic()
    if names:
        with _postgres():
            _mutmut(ROOT, "run", "--max-children", str(args.max_children), *names)
    elapsed = time.monotonic() - start
    statuses = _results(ROOT)
    if args.sample:
        statuses = {n: s for n, s in statuses.items() if n in set(selected)}
    scores = _score(statuses, groups)
    ok = _report(scores, args.threshold, ROOT, args.diffs)
    summary = {
        s.group: {
            "killed": s.caught,
            "tested": s.tested,
            "score": round(s.percent, 1),
            "timeouts": sum(1 for v in s.statuses.values() if v == "timeout"),
            "equivalent": sorted(n for n, v in s.statuses.items() if v == "equivalent"),
            "survivors": s.survivors(),
        }
        for s in scores
    }
    (ROOT / "mutants" / "cronkit-summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{elapsed:.0f} s; summary in mutants/cronkit-summary.json")
    return 0 if ok else 1


def guard_sample(seed: int, size: int) -> list[str]:
    """The guard's mutants: a fixed-seed sample of every mutant mutmut makes of GUARD_FILE."""
    return _sample({GUARD_FILE: (f"{GUARD_MODULE}.*",)}, seed, size)


def _guard_tree(dest: Path) -> None:
    """A copy of what the guard's run needs, its test selection narrowed to GUARD_TESTS."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "cron", dest / "cron", ignore=skip)
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=skip)
    text = (ROOT / "pyproject.toml").read_text()
    head, sep, rest = text.partition("pytest_add_cli_args_test_selection = [")
    if not sep:
        raise ValueError("pyproject.toml has no [tool.mutmut] pytest_add_cli_args_test_selection")
    _, _, tail = rest.partition("]")
    tests = ", ".join(json.dumps(t) for t in GUARD_TESTS)
    (dest / "pyproject.toml").write_text(f"{head}{sep}{tests}]{tail}")


def guard(args: argparse.Namespace) -> int:
    names = guard_sample(args.seed, args.sample)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cronkit-mutguard-") as tmp:
        work = Path(tmp)
        _guard_tree(work)
        run = _mutmut(work, "run", "--max-children", str(args.max_children), *names)
        statuses = {n: s for n, s in _results(work).items() if n in set(names)}
        scores = _score(statuses, {GUARD_FILE: (f"{GUARD_MODULE}.*",)})
        ok = _report(scores, args.threshold, work, diffs=True)
    elapsed = time.monotonic() - start
    print(f"\nguard: seed {args.seed}, {len(names)} mutants of {GUARD_FILE}, {elapsed:.0f} s")
    if run.returncode != 0 and not statuses:
        print(f"mutmut run failed (exit {run.returncode})")
        return 1
    return 0 if ok and len(statuses) == len(names) else 1


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: the PostgreSQL server stops


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    common.add_argument("--threshold", type=float, default=THRESHOLD)
    p_full = sub.add_parser("full", parents=[common], help="every mutant (tox -e mutation)")
    p_full.add_argument("--only", action="append", help="score only groups naming this text")
    p_full.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    p_full.add_argument(
        "--sample", type=int, default=0, help="only this many mutants per group (0: all)"
    )
    p_full.add_argument("--seed", type=int, default=GUARD_SEED, help="seed of --sample")
    p_full.add_argument(
        "--rerun",
        metavar="STATUS",
        help="only re-run mutants a previous run left with STATUS (a,b: any)",
    )
    p_guard = sub.add_parser("guard", parents=[common], help="the sampled CI guard")
    p_guard.add_argument("--seed", type=int, default=GUARD_SEED)
    p_guard.add_argument("--sample", type=int, default=GUARD_SAMPLE)
    args = parser.parse_args(argv)
    return full(args) if args.cmd == "full" else guard(args)


if __name__ == "__main__":
    sys.exit(main())
