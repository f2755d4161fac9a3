"""Store URLs as they may be shown: every message and listing masks the password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_PASSWORD_RE = re.compile(r"(?i)(password=)[^&\s]*")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for every message and listing)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _PASSWORD_RE.sub(r"\1***", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        # Rebuilt only when there is a password to hide: urlunsplit drops an empty "//".
        url = urlunsplit(
            (parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment)
        )
    return _PASSWORD_RE.sub(r"\1***", url)
