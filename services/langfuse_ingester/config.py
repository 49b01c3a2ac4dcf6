"""langfuse-ingester settings (``INFERWATCH_LANGFUSE_*``, or several projects from ``INFERWATCH_CONFIG``)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, get_args

from inferwatch.contracts.langfuse import IngestMode
from inferwatch.services.langfuse_ingester.core import MAX_TRACE_NAMES
from inferwatch.shared.extras import missing
from inferwatch.shared.settings import Env, Secret, SettingsError


@dataclass(frozen=True)
class LangfuseProject:
    """One Langfuse project (one key pair).

    Attributes:
        label: the ``project`` label on every series.
        url: Langfuse host (``http://langfuse-web:3000``), API mode.
        public_key: ``pk-lf-…`` (basic-auth user).
        secret_key: ``sk-lf-…`` (basic-auth password).
        dsn: database DSN for DB mode: ``postgresql://…`` (v2) or ``clickhouse://…`` (v3, v4; v4 read from
            ``events_core`` when it holds rows for the project).
        project_id: the Langfuse project id, DB mode (the DB holds every project).
    """

    label: str
    url: str = ""
    public_key: str = ""
    secret_key: Secret | None = None
    dsn: Secret | None = None
    project_id: str = ""


@dataclass(frozen=True)
class LangfuseIngesterConfig:
    """Attributes:
    projects: the projects to ingest.
    mode: ``api`` (default) or ``db``.
    interval_s: cycle interval.
    bucket_s: bucket size (seconds of event time).
    settle_s: settling delay before a bucket is read (default 15 min).
    recheck_s: how far back closed buckets are re-read to catch late rows and corrections.
    backfill_s: how far back the first run starts (bounded by the project's retention).
    max_new_buckets: buckets read per cycle at most (catch-up pace).
    top_n_users: users kept by name, the rest is ``other``.
    max_trace_names: trace names kept by name in the per-name counters and latency, the rest is ``other``.
    segment_tag_prefix: trace tag prefix that names a user segment (``tier:`` → ``tier:gold`` → ``gold``).
    segment_metadata_key: trace metadata key that names a user segment.
    kv_bucket: JetStream key-value bucket holding the ledgers.
    timeout_s: per-request timeout.
    page_limit: page size for offset pages (max 100) and cursors.
    tls_ca_file / insecure: TLS verification (on by default).
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_LANGFUSE_"

    projects: tuple[LangfuseProject, ...] = ()
    mode: IngestMode = "api"
    interval_s: float = 60.0
    bucket_s: float = 300.0
    settle_s: float = 900.0
    recheck_s: float = 3600.0
    backfill_s: float = 86400.0
    max_new_buckets: int = 48
    top_n_users: int = 20
    max_trace_names: int = MAX_TRACE_NAMES
    segment_tag_prefix: str = ""
    segment_metadata_key: str = ""
    kv_bucket: str = "inferwatch_langfuse"
    timeout_s: float = 30.0
    page_limit: int = 100
    tls_ca_file: str = ""
    insecure: bool = False

    @classmethod
    def from_env(cls, env: Env) -> LangfuseIngesterConfig:
        """Read ``INFERWATCH_LANGFUSE_*`` and, when set, the projects of ``INFERWATCH_CONFIG``."""
        p = cls.ENV_PREFIX
        modes: dict[str, IngestMode] = {m: m for m in get_args(IngestMode)}
        mode = modes.get(env.get(p + "MODE", "api").lower())
        if mode is None:
            raise SettingsError(f"{p}MODE must be api or db, got {env.get(p + 'MODE', '')!r}")
        projects: list[LangfuseProject] = []
        url = env.get(p + "URL").rstrip("/")
        dsn = env.secret(p + "DSN")
        if url or dsn:
            projects.append(
                LangfuseProject(
                    label=env.get(p + "PROJECT", "default"),
                    url=url,
                    public_key=env.get(p + "PUBLIC_KEY"),
                    secret_key=env.secret(p + "SECRET_KEY"),
                    dsn=dsn,
                    project_id=env.get(p + "PROJECT_ID"),
                )
            )
        if path := env.get("INFERWATCH_CONFIG"):
            projects.extend(projects_from_file(path))
        labels = [pr.label for pr in projects]
        if len(set(labels)) != len(labels):
            raise SettingsError("Langfuse project labels must be unique")
        config = cls(
            projects=tuple(projects),
            mode=mode,
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            bucket_s=env.float(p + "BUCKET_S", cls.bucket_s),
            settle_s=env.float(p + "SETTLE_S", cls.settle_s),
            recheck_s=env.float(p + "RECHECK_S", cls.recheck_s),
            backfill_s=env.float(p + "BACKFILL_S", cls.backfill_s),
            max_new_buckets=env.int(p + "MAX_NEW_BUCKETS", cls.max_new_buckets),
            top_n_users=env.int(p + "TOP_N_USERS", cls.top_n_users),
            max_trace_names=env.int(p + "MAX_TRACE_NAMES", cls.max_trace_names),
            segment_tag_prefix=env.get(p + "SEGMENT_TAG_PREFIX"),
            segment_metadata_key=env.get(p + "SEGMENT_METADATA_KEY"),
            kv_bucket=env.get(p + "KV_BUCKET", cls.kv_bucket),
            timeout_s=env.float(p + "TIMEOUT_S", cls.timeout_s),
            page_limit=env.int(p + "PAGE_LIMIT", cls.page_limit),
            tls_ca_file=env.get(p + "TLS_CA_FILE"),
            insecure=env.bool(p + "TLS_INSECURE", False),
        )
        if mode == "db":
            for project in config.projects:
                driver = db_driver(project.dsn.reveal() if project.dsn else "")
                if driver and (problem := missing(driver)):
                    raise SettingsError(f"{p}MODE=db, project {project.label}: {problem}")
        if config.bucket_s <= 0 or config.settle_s < 0 or config.recheck_s < 0:
            raise SettingsError(f"{p}BUCKET_S must be > 0, SETTLE_S and RECHECK_S >= 0")
        if not 1 <= config.page_limit <= 100:
            raise SettingsError(f"{p}PAGE_LIMIT must be within 1..100")
        return config


def db_driver(dsn: str) -> str | None:
    """The driver module DB mode uses for ``dsn`` (``psycopg`` for PostgreSQL, ``clickhouse_connect`` for
    ClickHouse, both from the ``langfuse-db`` extra), or None for a scheme DB mode does not read."""
    if dsn.startswith(("postgres://", "postgresql://")) or "dbname=" in dsn:
        return "psycopg"
    if dsn.startswith(("clickhouse://", "clickhouses://", "http://", "https://")):
        return "clickhouse_connect"
    return None


def projects_from_file(path: str) -> list[LangfuseProject]:
    """``[[langfuse]]`` entries of a TOML file (or ``langfuse:`` list in YAML/JSON).

    Each entry: ``project`` (label), ``url``, ``public_key``, ``secret_key`` or ``secret_key_file``, ``dsn`` or
    ``dsn_file``, ``project_id``.
    """
    text = _read(path)
    doc: Any
    if path.endswith(".toml"):
        doc = tomllib.loads(text)
    elif path.endswith(".json"):
        doc = json.loads(text)
    else:
        import yaml  # type: ignore[import-untyped]

        doc = yaml.safe_load(text)
    entries = doc.get("langfuse", []) if isinstance(doc, dict) else []
    if not isinstance(entries, list):
        raise SettingsError(f"INFERWATCH_CONFIG {path}: 'langfuse' must be a list of projects")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SettingsError(f"INFERWATCH_CONFIG {path}: langfuse[{i}] must be a table")
        out.append(
            LangfuseProject(
                label=str(entry.get("project", f"project{i}")),
                url=str(entry.get("url", "")).rstrip("/"),
                public_key=str(entry.get("public_key", "")),
                secret_key=_secret(entry, "secret_key", path),
                dsn=_secret(entry, "dsn", path),
                project_id=str(entry.get("project_id", "")),
            )
        )
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"INFERWATCH_CONFIG: cannot read {path}: {exc.strerror}") from None


def _secret(entry: dict[str, Any], name: str, path: str) -> Secret | None:
    if entry.get(name) and entry.get(name + "_file"):
        raise SettingsError(f"INFERWATCH_CONFIG {path}: set {name} or {name}_file, not both")
    if entry.get(name + "_file"):
        return Secret(_read(str(entry[name + "_file"])).rstrip("\r\n"))
    return Secret(str(entry[name])) if entry.get(name) else None
