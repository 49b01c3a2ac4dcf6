"""Settings from the environment: ``<ENV_PREFIX><SETTING>`` (each service config's prefix, e.g.
``INFERWATCH_VLLM_TIMEOUT_S``), secrets also as ``..._FILE``.

Every secret read here is registered with the log redactor, so its value can never reach a log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from inferwatch.shared.log import register_secret


class SettingsError(ValueError):
    """A setting is present but unusable; the message names the variable, never a secret value."""


class Secret:
    """A secret value that does not print itself (``repr``/``str`` show ``***``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The value, for the one place that must send it (an auth header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Env:
    """Typed access to environment variables (a mapping, so tests pass their own)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def get(self, name: str, default: str = "") -> str:
        """A string; empty values count as unset."""
        value = self._environ.get(name, "").strip()
        return value if value else default

    def int(self, name: str, default: int) -> int:
        """An integer."""
        raw = self.get(name)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None

    def float(self, name: str, default: float) -> float:
        """A float (seconds, ratios)."""
        raw = self.get(name)
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None

    def bool(self, name: str, default: bool) -> bool:
        """``1/true/yes/on`` or ``0/false/no/off``."""
        raw = self.get(name).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A comma-separated list; blanks dropped."""
        raw = self.get(name)
        if not raw:
            return default
        return tuple(item.strip() for item in raw.split(",") if item.strip())

    def secret(self, name: str) -> Secret | None:
        """``NAME`` or the contents of the file named by ``NAME_FILE`` (trailing newline stripped)."""
        value = self._environ.get(name, "")
        file_name = self._environ.get(f"{name}_FILE", "")
        if value and file_name:
            raise SettingsError(f"set {name} or {name}_FILE, not both")
        if file_name:
            try:
                value = Path(file_name).read_text().rstrip("\r\n")
            except OSError as exc:
                raise SettingsError(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from None
        return Secret(value) if value else None
