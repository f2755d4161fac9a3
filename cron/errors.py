"""Every error cronkit raises on purpose.

Each subclasses the builtin a caller would already catch for that kind of
problem (``ValueError`` for bad input, ``KeyError`` for a missing id, ...), and
builds its one-line message from the offending value, so the CLI can print
``str(exc)`` and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from cron.urls import mask_url

ACCEPTED_SCHEDULES = (
    "5- or 6-field cron ('0 9 * * 1-5', '*/10 * * * * 30'), "
    "@hourly/@daily/@weekly/@monthly/@yearly, 'every 30m', '30m', 'in 2h', "
    "or an ISO-8601 timestamp ('2026-12-01T09:00')"
)


class CronkitError(Exception):
    """Marker base: every deliberate cronkit error also inherits from this."""


class ScheduleError(CronkitError, ValueError):
    """A schedule text or dict that cronkit cannot fire on."""

    def __init__(self, text: object, reason: str | None = None) -> None:
        self.text = text
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"invalid schedule {text!r}{detail}; accepted forms: {ACCEPTED_SCHEDULES}")


class TimeZoneError(ScheduleError):
    """A time zone given on its own (``--tz``, a job's ``tz``) that is not an IANA zone.

    ``text`` is the zone as given. A zone inside a schedule dict stays a plain
    :class:`ScheduleError`: there the schedule is what is wrong.
    """


class JobNotFoundError(CronkitError, KeyError):
    """No job with this id exists in the store."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(job_id)

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the whole args tuple; keep one clear line.
        return f"no job with id {self.job_id!r} (see 'cronkit list --all')"


class StoreCorruptError(CronkitError, ValueError):
    """The store file exists but cannot be parsed; it is left untouched."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = Path(path)
        self.detail = detail
        super().__init__(
            f"cannot parse job store {str(self.path)!r}: {detail}; the file was left "
            "untouched - fix or move it aside, nothing will be written until then"
        )


class StoreConfigError(CronkitError, ValueError):
    """A store URL that cannot be opened: unknown scheme, malformed, unreachable, too new.

    The URL in the message has its password masked. Never a reason to fall back
    to another store: that would split the jobs in two.
    """

    def __init__(self, url: str, detail: str) -> None:
        self.url = mask_url(url)
        self.detail = detail
        super().__init__(f"job store {self.url!r}: {detail}")


class SchemaVersionError(StoreConfigError):
    """The database was written by a newer cronkit; this one refuses to touch it."""

    def __init__(self, url: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            url,
            f"schema version {found} is newer than this cronkit supports ({supported}); "
            "upgrade cronkit or point cron.store elsewhere",
        )


class StoreUnavailableError(CronkitError, ConnectionError):
    """The store's database was reached before and cannot be now (connection lost, server
    down). Raised by the operation that could not complete; it names the store.

    Transient by nature: the same call may succeed once the database is back. A
    write that failed this way may or may not have committed (the connection can
    break during ``COMMIT``); for a claim that means at most a lost run, never a
    second one.
    """

    def __init__(self, url: str, detail: str) -> None:
        self.url = mask_url(url)
        self.detail = detail
        super().__init__(f"job store {self.url!r}: the database is unavailable: {detail}")

    def __str__(self) -> str:
        # OSError.__str__ would format (errno, strerror); keep the one line built above.
        return str(self.args[0])


class DuplicateJobError(CronkitError, ValueError):
    """An insert named a job id (or key) that is already stored; nothing was overwritten."""

    def __init__(self, field: str, value: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"a job with {field} {value!r} already exists in the store")


class StoreLockTimeout(CronkitError, TimeoutError):
    """Another process held the store lock longer than the bounded wait."""

    def __init__(self, path: Path | str, waited: float) -> None:
        self.path = Path(path)
        self.waited = waited
        super().__init__(
            f"timed out after {waited:.1f}s waiting for the lock on {str(self.path)!r}; "
            "another cronkit process or thread is holding it"
        )


class ConfigError(CronkitError, ValueError):
    """config.yaml is unreadable, malformed, or a key has the wrong type."""

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        self.detail = detail
        super().__init__(f"config error in {where}: {detail}")


class ActionError(CronkitError, ValueError):
    """A job action that cannot be run (bad shape, unknown kind, bad target)."""

    def __init__(self, action: object, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"invalid action {action!r}: {reason}")


class JobValueError(CronkitError, ValueError):
    """A job field given a value it cannot hold."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"invalid {field} {value!r}: {reason}")


class AuditWindowError(CronkitError, ValueError):
    """An audit window that cannot be checked (its start is after its end)."""

    def __init__(self, since: object, until: object) -> None:
        self.since = since
        self.until = until
        super().__init__(
            f"the audit window starts after it ends: --since {since!s} is later "
            f"than --until {until!s}"
        )


class GatewayRunningError(CronkitError, RuntimeError):
    """A second gateway was started on a home that already has a live one."""

    def __init__(self, pid: int, home: Path | str) -> None:
        self.pid = pid
        self.home = Path(home)
        super().__init__(
            f"a cronkit gateway is already running on {str(self.home)!r} (pid {pid}); "
            "stop it first or use another CRONKIT_HOME"
        )


class ScheduleTooLongError(ScheduleError):
    """Schedule text longer than the limit; the message quotes only its start.

    ``text`` keeps the whole input; the message stays one short line however
    long it is (repr escapes newlines).
    """

    PREVIEW = 40

    def __init__(self, text: str, limit: int) -> None:
        self.text = text
        self.limit = limit
        self.reason = f"{len(text)} characters, more than the {limit} allowed"
        # Not ScheduleError.__init__: that would quote the whole input.
        CronkitError.__init__(
            self,
            f"invalid schedule {text[: self.PREVIEW]!r}... ({self.reason}); "
            f"accepted forms: {ACCEPTED_SCHEDULES}",
        )


class ServiceUnitExistsError(CronkitError, FileExistsError):
    """A different systemd unit is already installed where ``install-service`` would write."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(
            f"a different unit already exists at {str(self.path)!r}; compare it with what "
            "--print shows, then rerun with --force to replace it"
        )

    def __str__(self) -> str:
        # OSError.__str__ would format (errno, strerror); keep the one line built above.
        return str(self.args[0])
