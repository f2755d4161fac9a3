"""``cronkit``: the operator's command line (SPEC §9). ``python -m cron`` is the same.

Every verb goes through :class:`~cron.cli._errors.CronkitGroup`, the one place
errors are turned into output: bad input of any kind (an unknown id, a bad
schedule, a bad flag combination, an unreadable config, a corrupt ``jobs.json``)
is one line on stderr, ``cronkit: error: <what> [; <fix>]``, and exit status 2 —
never a traceback. Verbs validate everything before they write, and the job API
validates before it takes the store lock, so a failed command writes nothing.

Exit codes: 0 success; 1 the thing ran and failed (a job's run, ``status``
stalled/failing, an internal error); 2 bad input (``status``: stopped);
3 ``status`` unknown; 130 interrupted.

Human output shows instants in the configured zone with their UTC offset and
a relative time (``2026-11-25 09:00:00 +01:00 (in 4m)``). ``--json`` output is
stable and documented in ``docs/CLI.md``; stored timestamps stay UTC there.

Layout: :mod:`._app` is the group, :mod:`._errors` the exit codes, error lines
and logging, :mod:`._format` the shared output helpers, :mod:`._common` and
:mod:`._options` what several verbs parse or look up; each other module adds
one family of verbs to the group when it is imported (below).
"""

from __future__ import annotations

# Imported for their side effect: each module adds its verbs to ``main``.
from cron.cli import apply, audit, jobs, runs, service, status, store  # noqa: F401
from cron.cli._app import main

__all__ = ["main"]
