"""The runs a runtime has started and not yet recorded, and how they are ended.

:class:`LiveRuns` tracks each run from ``running`` until its result is
recorded; the runtime's shutdown (:meth:`LiveRuns.interrupt`), its exit
(:meth:`LiveRuns.abandon`) and its fence (:meth:`LiveRuns.fence_runs`, SPEC §13)
end them from here.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from cron import executions, jobs, procgroup
from cron.claim_keeper import fence_grace
from cron.output import LiveOutput
from cron.procgroup import ProcessGroup
from cron.runners import RunResult
from cron.store import Job

log = logging.getLogger(__name__)


@dataclass
class LiveRun:
    """A run this process has started and not yet recorded (see ``Runtime.live_runs``)."""

    token: str
    job_id: str
    name: str | None
    source: str
    scheduled_at: str | None
    started: float
    """Wall-clock start (epoch seconds)."""
    timeout: float | None
    group: ProcessGroup | None = None
    interrupted: bool = False
    acted: bool = False
    """The action has returned (whatever its outcome, it was not interrupted after that)."""
    runaway: bool = False
    """Past its timeout and still running (a python callable that cannot be stopped)."""
    kind: str = "command"
    fenced: str | None = None
    """Why this run was fenced (its claim could not be kept live), if it was."""


MAX_FENCED_NOTES = 1024
"""Fencing notes kept for runs not started yet (more would be runs that already ended)."""


class LiveRuns:
    """Every run of this process from ``running`` until its result is recorded.

    The gateway's shutdown ends their process groups from here; the shutdown
    flag (:meth:`close`) cancels runs that have not started their command yet.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, LiveRun] = {}
        self._fenced_queued: dict[str, str] = {}
        self.closing = False
        self.wake = threading.Event()
        """Set by :meth:`close`: retries waiting through their backoff stop waiting."""

    def add(self, run: LiveRun) -> None:
        with self._lock:
            self._runs[run.token] = run

    def get(self, token: str) -> LiveRun | None:
        with self._lock:
            return self._runs.get(token)

    def remove(self, token: str) -> None:
        with self._lock:
            self._runs.pop(token, None)

    def snapshot(self) -> list[LiveRun]:
        with self._lock:
            return list(self._runs.values())

    def spawned(self, token: str, group: ProcessGroup) -> bool:
        """``RunContext.on_spawn`` of one run: record its group; False cancels it."""
        with self._lock:
            run = self._runs.get(token)
            if run is not None:
                run.group = group
                if run.fenced:
                    return False
            if self.closing:
                if run is not None:
                    run.interrupted = True
                return False
        try:
            executions.record_process_group(token, group)
        except Exception:
            # The run is still tracked here; only recovery after a crash loses sight of it.
            log.exception("could not record process group %d on ledger row %s", group.pgid, token)
        return True

    def close(self) -> list[LiveRun]:
        """Stop letting commands start; mark the runs still in their action interrupted."""
        with self._lock:
            self.closing = True
            self.wake.set()
            runs = list(self._runs.values())
            for run in runs:
                if not run.acted:
                    run.interrupted = True
        return runs

    def acted(self, run: LiveRun) -> bool:
        """The action of ``run`` returned; True if it had been interrupted first."""
        with self._lock:
            run.acted = True
            return run.interrupted

    def fence(self, token: str, note: str) -> LiveRun | None:
        """Mark the run of ``token`` fenced (a command not started yet will not start).

        Returns the run if it is live here, else None (it is queued: it is
        cancelled when it starts, see :meth:`fenced_note`).
        """
        with self._lock:
            run = self._runs.get(token)
            if run is None:
                self._fenced_queued[token] = note
                # A note is consumed when its run starts; one whose run ended just
                # before it was fenced is never consumed: keep the oldest bounded.
                while len(self._fenced_queued) > MAX_FENCED_NOTES:
                    del self._fenced_queued[next(iter(self._fenced_queued))]
                return None
            run.fenced = note
            if not run.acted:
                run.interrupted = True
            return run

    def fenced_note(self, token: str) -> str | None:
        """Why the queued run of ``token`` was fenced before it started (consumed)."""
        with self._lock:
            return self._fenced_queued.pop(token, None)

    def stopping(self) -> bool:
        """:attr:`closing`, read afresh (a call, so a loop re-reads it every time)."""
        return self.closing

    def reopen(self) -> None:
        with self._lock:
            self.closing = False
            self.wake.clear()

    def interrupt(self, *, term_grace: float = procgroup.TERM_GRACE) -> int:
        """End this process's running jobs (the gateway's shutdown, after its grace).

        No further command starts here. Each running command's process group gets
        SIGTERM, and SIGKILL ``term_grace`` seconds later if any of it is still
        alive; those runs are recorded ``interrupted``. A python callable cannot
        be stopped: it stays live (see :meth:`abandon`). Returns how many
        process groups were signalled.
        """
        runs = self.close()
        groups = [r.group for r in runs if r.group is not None]
        for group in groups:
            log.warning(
                "ending process group %d (SIGTERM, SIGKILL after %gs)", group.pgid, term_grace
            )
            group.signal(signal.SIGTERM)
        deadline = time.monotonic() + term_grace
        for group in groups:
            if not group.wait_gone(max(0.0, deadline - time.monotonic())):
                group.signal(signal.SIGKILL)
        for group in groups:
            if not group.wait_gone(2.0):
                log.error("process group %d survived SIGKILL", group.pgid)
        return len(groups)

    def fence_runs(self, fenced: list[tuple[str, str, float]], ttl: float) -> None:
        """End the runs whose claims could not be refreshed, before the claims can go stale.

        A ``command`` run's process group gets SIGTERM, then SIGKILL after
        :func:`cron.claim_keeper.fence_grace` (on a thread of its own: the keeper goes on). A run
        not started yet will not start. A ``python`` target (or any runner that
        starts no process group) cannot be fenced: it is logged at ERROR and runs
        on, and another node may start the job's next slot meanwhile.
        """
        for job_id, token, unconfirmed in fenced:
            note = (
                f"fenced: its claim could not be refreshed for {unconfirmed:.1f}s "
                f"(claim_ttl {ttl:g}s; store unreachable?), so the run was ended before "
                "another node could take the claim over"
            )
            run = self.fence(token, note)
            if run is None:
                log.error("job %s: %s; its queued run will not start", job_id, note)
            elif run.acted:
                continue
            elif run.group is not None:
                log.error(
                    "job %s (%s): %s; ending process group %d",
                    job_id,
                    run.name,
                    note,
                    run.group.pgid,
                )
                threading.Thread(
                    target=run.group.terminate,
                    args=(fence_grace(ttl),),
                    name=f"cronkit-fence-{job_id}",
                    daemon=True,
                ).start()
            elif run.kind == "command":
                log.error("job %s (%s): %s; its command will not start", job_id, run.name, note)
            else:
                log.error(
                    "job %s (%s): its claim could not be refreshed for %.1fs and a %s "
                    "target cannot be fenced: it keeps running, and another node may run "
                    "the job meanwhile",
                    job_id,
                    run.name,
                    unconfirmed,
                    run.kind,
                )

    def abandon(self, reason: str) -> int:
        """Record every run still live here as ended because this process exits now.

        For the runs nothing could stop (a python callable past its timeout, or
        one still inside its grace): the process is about to exit, which ends
        them, so their rows are closed (``timeout`` for a run already past its
        timeout, else ``interrupted``) and their claims released. Returns how many.
        """
        runs = self.close()
        for run in runs:
            status = "timeout" if run.runaway else "interrupted"
            error = f"{reason}; the run ended with the process"
            with contextlib.suppress(Exception):
                jobs.mark_job_run(run.job_id, run.token, success=False, error=error, status=status)
            with contextlib.suppress(Exception):
                executions.finish(run.token, status=status, error=error)
            self.remove(run.token)
        return len(runs)


@dataclass
class Ran:
    """A job whose action has run; what is left is bookkeeping."""

    job: Job
    token: str
    result: RunResult
    cfg: dict[str, Any]
    live: LiveRun | None = None
    output: LiveOutput | None = None


__all__ = ["LiveRun", "LiveRuns", "Ran"]
