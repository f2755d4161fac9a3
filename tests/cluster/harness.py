"""The cluster harness: real gateway processes on one shared store, killed and restarted.

A :class:`Cluster` is a directory with one home per node (its own ``config.yaml``,
heartbeat files, output files, webhook secret) and one store URL written into every
home's config. The test process itself is an operator: it has a home of its own on the
same store and reads the shared ledger through the ``cron`` API.

Everything a scenario needs lives here, so the tests read as scenarios:

* :class:`Node` — start (optionally under ``faketime`` or inside a network namespace),
  ``kill -9``, graceful stop; every process it started is remembered by its owner id
  (``host:pid:start``, what ledger rows name);
* :func:`kill_schedule` — a seeded, printable plan of SIGKILLs and restarts that never
  kills the last live node;
* :class:`Fires` — the marker file every job appends to (``job slot pid`` per run),
  read independently of cronkit;
* :func:`ledger_rows`, :func:`doubles`, :func:`gaps`, :func:`percentile` — what the
  ledger says and the figures the lead quotes.

Every process a node starts carries ``CRONKIT_CLUSTER_TAG=<cluster dir>`` in its
environment, and so does every job command it runs (runners inherit the gateway's
environment): :meth:`Cluster.close` ends every tagged process, orphans included.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TAG_ENV = "CRONKIT_CLUSTER_TAG"
FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
FAKETIME_SHIM = """\
# Loaded (as sitecustomize) only by a gateway run under libfaketime with a real
# monotonic clock. libfaketime 0.9.10 shifts the deadline of
# clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) - what time.sleep uses - by the
# fake wall-clock time and gets EINVAL, so every time.sleep (subprocess.wait's too)
# would raise. A relative wait is not rewritten; Event waits already work.
import select
import time


def _sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
"""
READY_TIMEOUT = 30.0
"""Longest wait for a gateway to write its pid file (a loaded 2-core machine)."""
FINAL_STATUSES = frozenset({"ok", "error", "timeout", "interrupted", "unknown"})
NOT_RUN = frozenset({"missed", "skipped"})


def wait_for(
    predicate: Callable[[], Any], timeout: float, step: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or predicate}")
        time.sleep(step)


def parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def slot_key(text: str) -> str:
    """One spelling per instant, whoever wrote it (ledger, env var)."""
    dt = parse_ts(text)
    assert dt is not None, text
    return dt.astimezone(UTC).isoformat()


def faketime_lib() -> str | None:
    for path in FAKETIME_LIBS:
        if os.path.exists(path):
            return path
    return None


def process_start(pid: int) -> str | None:
    from cron.procinfo import process_start_time

    return process_start_time(pid)


# -- the store -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoreTarget:
    """The one shared store of a cluster: its backend name and its URL."""

    backend: str
    url: str
    host: str | None = None
    """The PostgreSQL server's host, when it is one (a partition cuts the way to it)."""


# -- nodes -----------------------------------------------------------------------------


@dataclass
class Started:
    """One process a node ran: its pid, owner id (ledger rows name it) and log."""

    pid: int
    owner: str
    log: Path
    started: float
    ended: float | None = None
    killed: bool = False


@dataclass
class Node:
    name: str
    home: Path
    cluster: Cluster
    proc: subprocess.Popen[bytes] | None = None
    runs: list[Started] = field(default_factory=list)
    webhook: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def current(self) -> Started:
        assert self.runs, f"node {self.name} never started"
        return self.runs[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        # The home's config.yaml names the store; nothing inherited may override it.
        for name in ("CRONKIT_STORE", "HYPOTHESIS_PROFILE", "PYTEST_CURRENT_TEST", "LD_PRELOAD"):
            env.pop(name, None)
        env["CRONKIT_HOME"] = str(self.home)
        env["TZ"] = "UTC"
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])
        )
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env[TAG_ENV] = str(self.cluster.root)
        env.update(extra or {})
        return env

    def start(
        self,
        *,
        webhook: bool = False,
        skew: str | None = None,
        wrap: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Started:
        """Start ``python -m cron gateway`` on this home; return once its pid file is written.

        ``skew`` (``"+30s"``) runs it under libfaketime (LD_PRELOAD, so the pid is the
        gateway's own); ``wrap`` prefixes the command (``ip netns exec ...``: each
        wrapper must ``exec`` so the pid stays the gateway's).
        """
        assert not self.alive, f"node {self.name} is already running"
        env = self.env(extra_env)
        if skew is not None:
            lib = faketime_lib()
            assert lib is not None, "libfaketime is not installed (apt-get install faketime)"
            env["LD_PRELOAD"] = lib
            env["FAKETIME"] = skew
            # A faked monotonic clock hangs Python's timed lock waits (sem_clockwait is
            # not intercepted); a real one needs the sleep shim (FAKETIME_SHIM).
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
            env["FAKETIME_NO_CACHE"] = "1"
            shim = self.cluster.root / "faketime-shim"
            shim.mkdir(exist_ok=True)
            (shim / "sitecustomize.py").write_text(FAKETIME_SHIM, encoding="utf-8")
            env["PYTHONPATH"] = os.pathsep.join([str(shim), env["PYTHONPATH"]])
        args = ["--grace", "3"]
        args += ["--host", "127.0.0.1", "--port", "0"] if webhook else ["--no-webhook"]
        cmd = [*wrap, sys.executable, "-m", "cron", "gateway", *args]
        log = self.cluster.root / "logs" / f"{self.name}.{len(self.runs) + 1}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as err:
            err.write(f"$ {shlex.join(cmd)}\n".encode())
            err.flush()
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        self.proc = proc
        self.webhook = webhook
        run = Started(proc.pid, "", log, time.time())
        self.runs.append(run)
        if wait:
            self.wait_ready()
        return run

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        proc = self.proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while True:
            info = self._pid_file()
            if info is not None and info.get("pid") == proc.pid:
                self.info = info
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"node {self.name} not ready (exit {proc.poll()}):\n{self.log_tail()}"
                )
            time.sleep(0.05)
        run = self.current
        host = str(info.get("hostname") or socket.gethostname())
        run.owner = f"{host}:{proc.pid}:{info.get('start') or process_start(proc.pid) or '0'}"

    def _pid_file(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.home / "cron" / "gateway.pid").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def kill(self) -> Started:
        """``kill -9`` the gateway (not its job runs: they are orphaned, as in a crash)."""
        assert self.proc is not None and self.alive, f"node {self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(15)
        run = self.current
        run.ended, run.killed = time.time(), True
        return run

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (the gateway's grace is 3 s); SIGKILL if it overstays."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"node {self.name} did not stop within {timeout}s:\n{self.log_tail()}"
            ) from None
        if self.runs and self.runs[-1].ended is None:
            self.runs[-1].ended = time.time()
        return code

    def log_tail(self, lines: int = 40) -> str:
        if not self.runs:
            return "(never started)"
        try:
            text = self.current.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``python -m cron ARGS`` on this node's home (its config, its store URL)."""
        return subprocess.run(
            [sys.executable, "-m", "cron", *args],
            env=self.env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class Cluster:
    """``n`` nodes under ``root``, each home configured for one shared store."""

    def __init__(
        self,
        root: Path,
        store: StoreTarget,
        names: Iterable[str],
        *,
        interval: float = 1.0,
        claim_ttl: float = 5.0,
        max_parallel: int = 8,
        extra_config: str = "",
    ) -> None:
        self.root = root
        self.store = store
        self.interval = interval
        self.claim_ttl = claim_ttl
        self.marker = root / "fires.log"
        self.settings = (
            f"  interval: {interval}\n"
            f"  claim_ttl: {claim_ttl}\n"
            f"  max_parallel_jobs: {max_parallel}\n"
            "  timezone: UTC\n" + extra_config
        )
        self.nodes = {name: self._make_node(name) for name in names}
        self.admin_home = root / "operator"
        self._write_home(self.admin_home)

    def config_text(self, store_url: str) -> str:
        return f"cron:\n  store: {json.dumps(store_url)}\n" + self.settings

    def use_store_url(self, name: str, url: str) -> None:
        """Point one node at the shared store by another address (e.g. across a veth)."""
        (self[name].home / "config.yaml").write_text(self.config_text(url), encoding="utf-8")

    def _write_home(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        (home / "config.yaml").write_text(self.config_text(self.store.url), encoding="utf-8")

    def _make_node(self, name: str) -> Node:
        home = self.root / f"node-{name}"
        self._write_home(home)
        return Node(name, home, self)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def live(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.alive]

    def start_all(self, **kwargs: Any) -> None:
        """Start every node at once (each pays its own interpreter start-up), then wait."""
        for node in self.nodes.values():
            node.start(wait=False, **kwargs)
        for node in self.nodes.values():
            node.wait_ready()

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.alive and node.proc is not None:
                node.proc.send_signal(signal.SIGTERM)
        problems = []
        for node in self.nodes.values():
            try:
                node.stop()
            except AssertionError as exc:
                problems.append(str(exc))
        assert not problems, problems

    def owners(self) -> dict[str, tuple[str, Started]]:
        """Owner id -> (node name, process) of every process any node ran."""
        return {r.owner: (n.name, r) for n in self.nodes.values() for r in n.runs if r.owner}

    def tagged_pids(self) -> list[int]:
        """Every live process carrying this cluster's tag (gateways and their job runs)."""
        want = f"{TAG_ENV}={self.root}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if want in fh.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        return found

    def close(self) -> None:
        """Kill every node and every process it left (job runs orphaned by a kill -9)."""
        for node in self.nodes.values():
            if node.alive and node.proc is not None:
                with contextlib.suppress(OSError):
                    node.proc.kill()
        own = os.getpgid(0)
        for _ in range(3):
            pids = self.tagged_pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    group = os.getpgid(pid)
                    if group != own:
                        os.killpg(group, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        for node in self.nodes.values():
            if node.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(5)

    def logs(self) -> str:
        return "\n".join(f"--- node {n.name}:\n{n.log_tail()}" for n in self.nodes.values())


# -- jobs ------------------------------------------------------------------------------


def marker_command(marker: Path, sleep: float) -> str:
    """Append ``job slot pid`` (one ``write`` to an O_APPEND file), then maybe sleep."""
    line = f'printf "%s %s %s\\n" "$CRONKIT_JOB_ID" "$CRONKIT_SCHEDULED_AT" "$$" >> {marker}'
    return f"{line}; sleep {sleep:g}" if sleep > 0 else line


@dataclass(frozen=True)
class JobPlan:
    schedule: str
    period: float
    sleep: float
    name: str


def chaos_jobs(rng: random.Random, count: int) -> list[JobPlan]:
    """``count`` jobs firing every 1–3 s, half as six-field cron, half as ``every Ns``;
    a third run long enough (up to 2.5 s) that kills land mid-run and slots overlap."""
    plans = []
    for i in range(count):
        period = rng.choice([1, 2, 2, 3])
        if i % 2:
            schedule = f"* * * * * */{period}" if period > 1 else "* * * * * *"
        else:
            schedule = f"every {period}s"
        sleep = rng.choice([0, 0, 0.2, 0.5, 1.0, 2.5])
        plans.append(JobPlan(schedule, float(period), sleep, f"chaos-{i:02d}"))
    return plans


# -- the kill schedule -------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float
    """Seconds after the chaos began."""
    action: str
    """``kill`` or ``start``."""
    node: str

    def __str__(self) -> str:
        return f"t={self.at:5.1f}s {self.action:5s} {self.node}"


def kill_schedule(
    rng: random.Random,
    names: Sequence[str],
    duration: float,
    *,
    gap: tuple[float, float] = (1.5, 4.0),
) -> list[Event]:
    """SIGKILLs and restarts at random moments over ``duration`` seconds.

    Simulated as it is generated, so it never kills the last live node (every node is
    up at t=0); a dead node is restarted with probability 1/2 at each event, so kills
    keep coming while one or two nodes are down at a time.
    """
    alive = set(names)
    events: list[Event] = []
    t = rng.uniform(*gap)
    while t < duration:
        dead = sorted(set(names) - alive)
        if dead and (len(alive) < 2 or rng.random() < 0.5):
            node = rng.choice(dead)
            alive.add(node)
            events.append(Event(round(t, 2), "start", node))
        else:
            node = rng.choice(sorted(alive))
            alive.discard(node)
            events.append(Event(round(t, 2), "kill", node))
        t += rng.uniform(*gap)
    return events


@dataclass
class Kill:
    node: str
    owner: str
    at: float
    live_rows: list[dict[str, Any]] = field(default_factory=list)
    """The victim's ledger rows that were claimed or running when it died."""


def run_schedule(
    cluster: Cluster, events: Sequence[Event], *, skews: dict[str, str] | None = None
) -> list[Kill]:
    """Play ``events`` against the cluster, in real time from now; returns the kills.

    Right after each kill the victim's live ledger rows are read: the victim can no
    longer write, so those rows are exactly the runs it was killed in the middle of
    (a survivor may already have settled some ``unknown``: they count too).
    """
    began = time.monotonic()
    kills: list[Kill] = []
    for ev in events:
        delay = began + ev.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        node = cluster[ev.node]
        if ev.action == "kill":
            run = node.kill()
            rows = [
                r
                for r in ledger_rows()
                if r["owner"] == run.owner and r["status"] in ("claimed", "running", "unknown")
            ]
            kills.append(Kill(ev.node, run.owner, run.ended or time.time(), rows))
        else:
            node.start(skew=(skews or {}).get(ev.node))
    return kills


# -- what happened -----------------------------------------------------------------------


def ledger_rows() -> list[dict[str, Any]]:
    """Every ledger row of the shared store (read through ``cron.executions``)."""
    from cron import executions

    return executions.list_executions(limit=None, attempts=True)


def fire_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of runs (claimed, whatever became of them), not ``missed``/``skipped`` notes."""
    return [
        r
        for r in rows
        if r["status"] not in NOT_RUN
        and r.get("job_id")
        and (r.get("attempt") in (None, 1))
        and r.get("scheduled_at")
    ]


def doubles(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """(job, slot) claimed by more than one first attempt, per the ledger."""
    count = Counter((r["job_id"], slot_key(r["scheduled_at"])) for r in fire_rows(rows))
    return {k: n for k, n in count.items() if n > 1}


@dataclass(frozen=True)
class Fire:
    job_id: str
    slot: str
    pid: int


class Fires:
    """The marker file: one line per run that really started, written by the job itself."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[Fire]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            parts = line.split()
            assert len(parts) == 3, f"torn or malformed marker line {line!r}"
            out.append(Fire(parts[0], slot_key(parts[1]), int(parts[2])))
        return out

    def doubles(self) -> dict[tuple[str, str], int]:
        count = Counter((f.job_id, f.slot) for f in self.read())
        return {k: n for k, n in count.items() if n > 1}


def lateness(rows: Iterable[dict[str, Any]], at: str = "started_at") -> list[float]:
    """``started_at − scheduled_at`` (seconds) of every run that started.

    ``started_at`` is stamped by the running node's clock, ``claimed_at`` by the store's
    (:meth:`cron.stores.JobStore.clock`): pass ``at="claimed_at"`` where node clocks are
    skewed.
    """
    out = []
    for r in fire_rows(rows):
        start, slot = parse_ts(r.get(at)), parse_ts(r.get("scheduled_at"))
        if start is not None and slot is not None:
            out.append((start - slot).total_seconds())
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def gaps(
    rows: Iterable[dict[str, Any]],
    job_ids: Iterable[str],
    since: float,
    until: float,
    at: str = "started_at",
) -> dict[str, float]:
    """Per job, the longest stretch in ``[since, until]`` (epoch s) with no run starting.

    Measured on the ledger's ``started_at``; the stretch from ``since`` to the first
    start and from the last start to ``until`` count too, so a job that stopped (or
    never started) firing shows the whole silence.
    """
    starts: dict[str, list[float]] = {j: [] for j in job_ids}
    for r in fire_rows(rows):
        start = parse_ts(r.get(at))
        if r["job_id"] in starts and start is not None and since <= start.timestamp() <= until:
            starts[r["job_id"]].append(start.timestamp())
    out = {}
    for job_id, times in starts.items():
        points = [since, *sorted(times), until]
        out[job_id] = max(b - a for a, b in zip(points, points[1:], strict=False))
    return out


def status_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(r["status"] for r in rows))


def summary_line(label: str, **figures: Any) -> str:
    parts = []
    for k, v in figures.items():
        parts.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
    return f"[cluster] {label}: " + " ".join(parts)


# -- a network partition -------------------------------------------------------------


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``, a restricted kernel)."""


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise NetnsUnavailable(f"{shlex.join(cmd)}: {done.stderr.strip() or done.returncode}")


class Netns:
    """A network namespace joined to the host by a veth pair (host side ``host_addr``).

    :meth:`cut` sets the host end down — every packet between the namespace and the
    host is dropped, no connection is reset — and :meth:`heal` brings it back.
    :meth:`wrap` is the command prefix that runs a program inside the namespace, in a
    UTS namespace of its own named ``hostname`` (so it is "another host" to the
    nodes outside: its ledger rows are judged by claim age, never by pid).
    """

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000:05d}{random.randrange(16**3):03x}"
        self.name = f"ckpart{tag}"
        self.host_if = f"ckh{tag}"
        self.ns_if = f"ckn{tag}"
        octet = random.randrange(1, 255)
        self.host_addr = f"10.213.{octet}.1"
        self.ns_addr = f"10.213.{octet}.2"
        self.made = False

    def __enter__(self) -> Netns:
        if shutil_which("ip") is None or shutil_which("unshare") is None:
            raise NetnsUnavailable("no 'ip' or 'unshare' binary on PATH")
        _ip("netns", "add", self.name)
        self.made = True
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("addr", "add", f"{self.ns_addr}/30", "dev", self.ns_if, netns=self.name)
            _ip("link", "set", self.ns_if, "up", netns=self.name)
            _ip("link", "set", "lo", "up", netns=self.name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.made:
            return
        for cmd in (["ip", "link", "del", self.host_if], ["ip", "netns", "del", self.name]):
            subprocess.run(cmd, capture_output=True, timeout=30, check=False)
        self.made = False

    def wrap(self, hostname: str) -> list[str]:
        # Each step execs the next, so the process started is the gateway itself.
        return [
            "ip",
            "netns",
            "exec",
            self.name,
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            hostname,
        ]

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up")


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


class Forwarder:
    """A TCP relay from ``listen_host`` (the veth's host address) to ``target``.

    The test's PostgreSQL server listens on 127.0.0.1 only (and trusts only it): the
    relay is the server's address on the link the partition cuts. It never resets
    a connection: a cut link stalls the relayed ones as it would a direct one.
    """

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        import threading

        self.target = target
        self.server = socket.create_server((listen_host, 0))
        self.port = int(self.server.getsockname()[1])
        self.socks: list[socket.socket] = []
        self.closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import threading

        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.server.close()
        with self._lock:
            for s in self.socks:
                with contextlib.suppress(OSError):
                    s.close()
