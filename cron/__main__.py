"""``python -m cron`` is the same as the ``cronkit`` command."""

from cron.cli import main

main()
