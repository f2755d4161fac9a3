"""Who may fire through the webhook (SPEC §7): the wire constants, the shared secret,
the request signature, and the replay record.

A request is signed with ``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``
under the secret in ``<home>/webhook_secret``; :func:`verify` compares in constant
time, and :func:`remember_signature` lets one signed request through once, across
threads and processes. Used by the server (:mod:`cron.webhook`) and the client
(:mod:`cron.webhook_client`); callers import these names from :mod:`cron.webhook`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from cron import paths
from cron.config import cfg_get, read_config
from cron.errors import ConfigError
from cron.ledgerdb import SqliteLedger

# Logged under the webhook's name: the gateway's log lines name it.
log = logging.getLogger("cron.webhook")

TIMESTAMP_HEADER = "X-Cronkit-Timestamp"
SIGNATURE_HEADER = "X-Cronkit-Signature"
SIGNATURE_PREFIX = "sha256="
FIRE_PATH = "/cron/fire"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
MAX_BODY = 64 * 1024
"""Largest accepted request body, in bytes."""
MIN_SECRET_LENGTH = 32
"""A shorter secret could be brute-forced offline from one captured request."""

_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
_SIGNATURE_RE = re.compile(r"^sha256=[0-9a-f]{64}$")


# -- the secret and the signature ----------------------------------------------


def _read_secret(path: os.PathLike[str] | str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except FileNotFoundError:
        return None
    if len(text) < MIN_SECRET_LENGTH:
        raise ConfigError(
            str(path),
            f"the webhook secret is {len(text)} characters long (at least "
            f"{MIN_SECRET_LENGTH} needed); delete the file to have a new one generated",
        )
    return text


_secret_cache: tuple[tuple[str, int, int, int, int], str] | None = None


def _cached_secret(path: Path) -> str | None:
    """:func:`_read_secret`, skipped while the file's stat is unchanged (every fire asks)."""
    global _secret_cache
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    key = (str(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _secret_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    text = _read_secret(path)
    if text is not None:
        _secret_cache = (key, text)
    return text


def load_or_create_secret() -> str:
    """The webhook secret from ``<home>/webhook_secret``, creating it (0600) if missing.

    A new secret is ``secrets.token_hex(32)``. It is written to a private temp
    file and hard-linked into place, which fails if the name exists — the
    ``O_EXCL`` guarantee with the content already complete — so two processes
    racing here agree on one secret and no reader ever sees a half-written
    file. Returns the stripped text (the HMAC key, UTF-8 encoded).
    """
    path = paths.webhook_secret_path()
    existing = _cached_secret(path)
    if existing is not None:
        return existing
    paths.ensure_dir(path.parent)
    fresh = secrets.token_hex(32)
    fd, tmp = tempfile.mkstemp(prefix=".webhook_secret.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), paths.FILE_MODE)
            fh.write(fresh + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its secret
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            _create_exclusive(path, fresh)  # a file system without hard links
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    winner = _read_secret(path)
    if winner is None:  # pragma: no cover - removed between link and read
        raise ConfigError(str(path), "the webhook secret vanished while being created")
    if winner == fresh:
        log.info("created the webhook secret %s", path)
    return winner


def _create_exclusive(path: os.PathLike[str] | str, secret: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, paths.FILE_MODE)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    key = secret.strip().encode("utf-8")
    message = timestamp.encode("utf-8") + b"." + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``"sha256=<hex HMAC-SHA256(secret, '<timestamp>.<body>')>"`` — the signature header."""
    return SIGNATURE_PREFIX + _digest(secret, timestamp, body)


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """True if ``signature`` is the signature of ``timestamp`` and ``body``; constant time."""
    expected = sign(secret, timestamp, body).encode("ascii")
    given = signature.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def _parse_timestamp(raw: str | None) -> float | None:
    if raw is None or not _TIMESTAMP_RE.match(raw.strip()):
        return None
    return float(raw.strip())


def _max_skew() -> float:
    return float(cfg_get(read_config(), "cron", "webhook", "max_skew", default=300))


# -- replay protection ----------------------------------------------------------


def nonces_path() -> Path:
    """Where signatures of accepted requests are kept, for replay refusal (a SQLite file).

    ``<home>/cron/webhook_nonces.db`` beside ``jobs.json``; the database file of
    a SQLite store. A store whose replay record is not a file raises
    ``NotImplementedError`` (PostgreSQL keeps it in its database).
    """
    from cron.store import get_store

    db = get_store().replay_db()
    if not isinstance(db, SqliteLedger):
        raise NotImplementedError(f"the replay record is in {db.location}, not a file")
    return db.path


def remember_signature(digest: str, *, ttl: float, now: float | None = None) -> bool:
    """Record an accepted request's signature; False if it was already recorded (a replay).

    Recording is a compare-and-set in one SQLite transaction, so of any number
    of requests — threads or processes — carrying the same signature exactly
    one gets True. Entries expire after ``ttl`` seconds (``2 × max_skew``: by
    then the timestamp check alone refuses it). Concurrent calls in this
    process share one transaction (group commit). The webhook itself records
    the signature together with its claim (:func:`cron.jobs.claim_signed_fire`).
    """
    from cron.store import get_store
    from cron.stores import Replay

    at = time.time() if now is None else now
    return get_store().swap_many_unless_replayed(Replay(digest, at, ttl), []) is not None


__all__ = [
    "FIRE_PATH",
    "HEALTH_PATH",
    "MAX_BODY",
    "METRICS_PATH",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "load_or_create_secret",
    "nonces_path",
    "remember_signature",
    "sign",
    "verify",
]
