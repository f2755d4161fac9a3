#!/usr/bin/env bash
# Make sure the system crontab binary and cron daemon exist and run (tox: integration).
# Installs Debian's `cron` package when missing (needs root, as on CI).
set -euo pipefail
if ! command -v crontab >/dev/null 2>&1 || ! command -v cron >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "ensure_cron: the cron package is missing and we are not root; install it with: sudo apt-get install cron" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends cron >/dev/null
fi
if ! pgrep -x cron >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        cron
    else
        echo "ensure_cron: the cron daemon is not running; start it with: sudo service cron start" >&2
        exit 1
    fi
fi
echo "ensure_cron: crontab at $(command -v crontab), cron daemon pid $(pgrep -x cron | head -1)"
