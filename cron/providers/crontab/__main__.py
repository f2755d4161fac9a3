"""``python -m cron.providers.crontab reconcile|check|show|remove`` — operate the block by hand.

- ``reconcile``: converge this home's block with the store (exit 0; 1 on failure);
- ``check``: print the status line; exit 0 in sync, 1 out of sync;
- ``show``: print the block the store asks for;
- ``remove``: delete this home's block (uninstall; other lines untouched).
"""

from __future__ import annotations

import sys

from cron.errors import CronkitError
from cron.providers.crontab import CrontabScheduler

USAGE = "usage: python -m cron.providers.crontab reconcile|check|show|remove\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("reconcile", "check", "show", "remove"):
        sys.stderr.write(USAGE)
        return 2
    provider = CrontabScheduler()
    try:
        if argv[0] == "reconcile":
            changed = provider.sync()
            sys.stdout.write(("crontab updated" if changed else "crontab already in sync") + "\n")
            return 0
        if argv[0] == "check":
            sys.stdout.write(provider.status_detail() + "\n")
            return 0 if provider.in_sync() else 1
        if argv[0] == "show":
            sys.stdout.write("".join(line + "\n" for line in provider.desired_block()))
            return 0
        removed = provider.remove_block()
        sys.stdout.write(("block removed" if removed else "no block to remove") + "\n")
        return 0
    except CronkitError as exc:
        sys.stderr.write(f"cronkit crontab: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
