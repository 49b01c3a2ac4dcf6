"""Credentials the HTTP auth tests configure and then look for (they must never be printed)."""

from __future__ import annotations

TOKEN = "s3cret-bearer-token"
USER, PASSWORD = "prometheus", "pa:ss wörd"  # a colon and non-ASCII: split on the first colon, UTF-8
