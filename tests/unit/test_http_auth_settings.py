"""HTTP security settings: validation errors name the fix and never print a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.shared.service import HttpSecurity
from inferwatch.shared.settings import Env, SettingsError
from tests.support.auth import PASSWORD, TOKEN, USER


def test_settings_validation_and_secrets_not_printed(tmp_path: Path) -> None:
    security = HttpSecurity.from_env(
        Env(
            {
                "INFERWATCH_HTTP_AUTH_BASIC_USER": USER,
                "INFERWATCH_HTTP_AUTH_BASIC_PASSWORD": PASSWORD,
                "INFERWATCH_HTTP_AUTH_BEARER_TOKEN": TOKEN,
            }
        )
    )
    assert security.auth_required
    assert not security.protect_probes
    assert TOKEN not in repr(security)
    assert PASSWORD not in repr(security)
    assert not HttpSecurity.from_env(Env({})).auth_required
    assert HttpSecurity.from_env(Env({})).ssl_context() is None
    for half in (
        {"INFERWATCH_HTTP_AUTH_BASIC_USER": USER},
        {"INFERWATCH_HTTP_AUTH_BASIC_PASSWORD": PASSWORD},
        {"INFERWATCH_HTTP_TLS_KEY_FILE": "/k.pem"},
    ):
        with pytest.raises(SettingsError):
            HttpSecurity.from_env(Env(half))
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    with pytest.raises(SettingsError, match="cannot load"):
        HttpSecurity.from_env(Env({"INFERWATCH_HTTP_TLS_CERT_FILE": str(broken)})).ssl_context()
