"""The crontab provider against the real crontab binary and the real cron daemon."""
