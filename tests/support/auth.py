"""Credentials the HTTP auth tests configure and then look for (they must never be printed), and a certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import require_tool

TOKEN = "s3cret-bearer-token"
USER, PASSWORD = "prometheus", "pa:ss wörd"  # a colon and non-ASCII: split on the first colon, UTF-8


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (its own CA) and its key, made with the openssl CLI."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=inferwatch-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
