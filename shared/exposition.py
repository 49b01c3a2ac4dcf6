"""A fast, bounded parser for the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0.

`parse_exposition` turns the body of a ``GET /metrics`` response into `MetricFamily` objects,
keyed by family name. It is written for the scrape loop of a monitor, so it is:

* fast: one ``split("\\n")`` over the decoded body, a precompiled regex per labelled sample,
  no per-character Python loops on the common path (roughly 10x faster than
  ``prometheus_client.parser`` on a vLLM ``/metrics`` body);
* selective: with ``families=`` / ``prefixes=`` the sample lines of unwanted families are
  skipped with a single ``str.startswith`` call, without parsing their labels or values;
* bounded: the number of kept samples, the length of a line and the number of label pairs in
  one sample are capped; exceeding a cap raises `ExpositionError`;
* closed: `ExpositionError` is the only exception it raises.

Conventions (the same as ``prometheus_client.parser``):

* A counter's family name is given without the ``_total`` suffix in both formats: text 0.0.4
  declares ``# TYPE foo_total counter`` and OpenMetrics ``# TYPE foo counter``; both yield the
  family ``"foo"`` with samples named ``foo_total`` (and ``foo_created`` in OpenMetrics).
* Sample names are never rewritten (``Sample.name`` is the name on the line).
* ``_created`` samples belong to their counter/histogram/summary only in OpenMetrics; in text
  format prometheus_client writes them as separate ``gauge`` families, and so they are parsed.
* A sample whose name does not belong to the family declared just before it is an *untyped*
  sample: its family is the sample name (type ``"untyped"``, or ``"unknown"`` in OpenMetrics).
* Samples are appended to their family in input order. A family that reappears later in the
  body (a repeated ``# TYPE``, or an untyped sample named like an existing family) is merged
  into the first one. Duplicate series (same name and labels twice) are kept as they come;
  deduplication is the caller's business.
* Timestamps and exemplars are validated loosely and dropped; ``# UNIT`` lines are accepted
  and ignored. Lines of families removed by a filter are not validated.
* Metric and label names must be legacy (``[a-zA-Z_:][a-zA-Z0-9_:]*`` / ``[a-zA-Z_][a-zA-Z0-9_]*``);
  the quoted UTF-8 names of Prometheus 3 are rejected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Hashable, Sequence
from collections.abc import Set as AbstractSet
from typing import TypeVar

import msgspec

from inferwatch.contracts.base import Histogram

__all__ = ["ExpositionError", "MetricFamily", "Sample", "histograms_by", "parse_exposition"]


class ExpositionError(Exception):
    """The exposition body is malformed or exceeds a cap.

    Attributes:
        line: 1-based line number of the offending line, or ``None`` when the error is not
            tied to one line.
        reason: the message without the line prefix.
    """

    line: int | None
    reason: str

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


class Sample(msgspec.Struct, frozen=True, gc=False):
    """One sample line.

    Attributes:
        name: full sample name, e.g. ``vllm:e2e_request_latency_seconds_bucket``.
        labels: label name -> unescaped label value (``{}`` when the line has none).
        value: the sample value; ``NaN`` and ``±Inf`` are kept as floats.
    """

    name: str
    labels: dict[str, str]
    value: float


class MetricFamily(msgspec.Struct, gc=False):
    """The samples of one metric family.

    Attributes:
        name: family name (for counters without the ``_total`` suffix; see the module notes).
        type: ``counter``, ``gauge``, ``histogram``, ``summary``, ``untyped``, ``info``,
            ``stateset``, ``gaugehistogram`` or ``unknown``.
        help: the unescaped ``# HELP`` text, ``""`` when absent.
        samples: the samples in input order.
    """

    name: str
    type: str
    help: str
    samples: list[Sample]


# --------------------------------------------------------------------------------------------
# Grammar pieces

_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_LABEL_VALUE_BODY = r'[^"\\]*(?:\\.[^"\\]*)*'
# The canonical shape of a labelled sample as prometheus_client writes it, without escapes:
# name{a="x",b="y"} value  (value: printable ASCII without '_' and space; float() checks the rest).
# Anything else (escapes, blanks, timestamps, exemplars, errors) takes the general path.
_FAST_PAIR = _LABEL_NAME + r'="[^"\\]*"'
_FAST_LABELLED_LINE = re.compile(
    "(" + _METRIC_NAME + r")\{((?:" + _FAST_PAIR + "(?:," + _FAST_PAIR + r")*,?)?)\} ([\x21-\x5e\x60-\x7e]+)"
)
# Splits a block matched above (no quote or backslash inside values, no '=' in names).
_FAST_PAIRS = re.compile(r'([^=]+)="([^"]*)",?')

_METRIC_NAME_RE = re.compile(_METRIC_NAME)
_LABEL_NAME_RE = re.compile(_LABEL_NAME)
_LABEL_VALUE_BODY_RE = re.compile(_LABEL_VALUE_BODY)
_BLANKS_RE = re.compile(r"[ \t]*")
_FAST_HEADER_RE = re.compile(r"# (HELP|TYPE|UNIT) (" + _METRIC_NAME + r")(?:[ \t]+(.*))?")
_HEADER_RE = re.compile(r"#[ \t]*(HELP|TYPE|UNIT)(?![^ \t\r])(?:[ \t]+([^ \t\r]*)(?:[ \t]+(.*))?)?")

_ESCAPES = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_LABEL_ESCAPE_RE = re.compile(r'\\[\\n"]')
_TEXT_HELP_ESCAPE_RE = re.compile(r"\\[\\n]")

_WS = " \t\r"

_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "untyped", "info", "stateset", "gaugehistogram", "unknown"}
)

# Sample-name suffixes that belong to a family of each type. Text 0.0.4 follows
# prometheus_client.parser (a counter is declared with its _total name, _created is separate).
_TEXT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("",),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
    "summary": ("", "_count", "_sum"),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("", "_info"),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
}
_OM_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created", ""),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum", "_created"),
}
# Suffixes stripped from an untyped sample's name when matching it against `families`.
_STRAY_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info", "_gcount", "_gsum")


def _unescape_label(value: str) -> str:
    return _LABEL_ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], value)


def _unescape_text_help(value: str) -> str:
    return _TEXT_HELP_ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], value)


def _parse_float(token: str, what: str, lineno: int) -> float:
    # float() also takes '_' separators and non-ASCII digits; the format does not.
    if "_" in token or not token.isascii():
        raise ExpositionError(f"invalid {what} {token!r}", lineno)
    try:
        return float(token)
    except ValueError:
        raise ExpositionError(f"invalid {what} {token!r}", lineno) from None


def _sample_name(line: str, lineno: int) -> str:
    """The metric name at the start of a sample line (leading blanks allowed)."""
    s = line.lstrip(_WS)
    m = _METRIC_NAME_RE.match(s)
    if m is None:
        raise ExpositionError(f"invalid metric name in sample line {line[:80]!r}", lineno)
    return m.group()


def _parse_sample_line(line: str, lineno: int, max_label_pairs: int) -> tuple[str, dict[str, str], float]:
    """The general (slow, precise) sample parser: whitespace, escapes, timestamps, exemplars."""
    s = line.strip(_WS)
    n = len(s)
    m = _METRIC_NAME_RE.match(s)
    if m is None:
        raise ExpositionError(f"invalid metric name in sample line {line[:80]!r}", lineno)
    name = m.group()
    pos = m.end()
    blanks = _BLANKS_RE.match
    pos = blanks(s, pos).end()  # type: ignore[union-attr]
    labels: dict[str, str] = {}
    if pos < n and s[pos] == "{":
        pos += 1
        while True:
            pos = blanks(s, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                raise ExpositionError("unterminated label set", lineno)
            if s[pos] == "}":
                pos += 1
                break
            lm = _LABEL_NAME_RE.match(s, pos)
            if lm is None:
                raise ExpositionError(f"invalid label name at column {pos + 1}", lineno)
            lname = lm.group()
            pos = blanks(s, lm.end()).end()  # type: ignore[union-attr]
            if pos >= n or s[pos] != "=":
                raise ExpositionError(f"expected '=' after label name {lname!r}", lineno)
            pos = blanks(s, pos + 1).end()  # type: ignore[union-attr]
            if pos >= n or s[pos] != '"':
                raise ExpositionError(f"label value of {lname!r} is not quoted", lineno)
            end = _LABEL_VALUE_BODY_RE.match(s, pos + 1).end()  # type: ignore[union-attr]
            if end >= n or s[end] != '"':
                raise ExpositionError(f"unterminated label value of {lname!r}", lineno)
            lvalue = s[pos + 1 : end]
            if "\\" in lvalue:
                lvalue = _unescape_label(lvalue)
            if lname in labels:
                raise ExpositionError(f"duplicate label name {lname!r}", lineno)
            labels[lname] = lvalue
            if len(labels) > max_label_pairs:
                raise ExpositionError(f"more than {max_label_pairs} label pairs", lineno)
            pos = blanks(s, end + 1).end()  # type: ignore[union-attr]
            if pos < n and s[pos] == ",":
                pos += 1
            elif pos < n and s[pos] == "}":
                pos += 1
                break
            else:
                raise ExpositionError(f"expected ',' or '}}' after label {lname!r}", lineno)
    elif pos == m.end() and pos < n:
        raise ExpositionError(f"unexpected character {s[pos]!r} after metric name", lineno)
    rest = s[pos:]
    values, hash_sep, exemplar = rest.partition("#")
    tokens = values.split()
    if not tokens:
        raise ExpositionError(f"missing value for {name!r}", lineno)
    if len(tokens) > 2:
        raise ExpositionError(f"unexpected text after value: {rest[:80]!r}", lineno)
    value = _parse_float(tokens[0], "value", lineno)
    if len(tokens) == 2:
        _parse_float(tokens[1], "timestamp", lineno)
    if hash_sep and not exemplar.lstrip(_WS).startswith("{"):
        raise ExpositionError("malformed exemplar", lineno)
    return name, labels, value


def parse_exposition(
    data: bytes | bytearray | memoryview,
    *,
    families: Collection[str] | None = None,
    prefixes: Sequence[str] = (),
    max_samples: int = 200_000,
    max_line_bytes: int = 65_536,
    max_label_pairs: int = 64,
) -> dict[str, MetricFamily]:
    """Parse a Prometheus text (0.0.4) or OpenMetrics (1.0) exposition body.

    OpenMetrics is detected by a final ``# EOF`` line. Timestamps and exemplars are dropped;
    ``# UNIT`` lines are ignored. See the module docstring for naming conventions (counter
    families are named without ``_total``) and for how repeated families and duplicate series
    are handled (merged / kept as they come).

    Args:
        data: the raw body (bytes, or any bytes-like object); it must be valid UTF-8.
        families: keep only these families. A sample belongs to the family whose ``# TYPE``
            (or ``# HELP``) line preceded it; an untyped sample belongs to its own name, or to
            that name with ``_total``/``_bucket``/``_count``/``_sum``/``_created`` stripped when
            that is a kept name. A counter may be asked for as ``foo`` or ``foo_total``.
            ``None`` keeps every family (unless `prefixes` is given).
        prefixes: also keep families whose name starts with one of these (a union with
            `families`). With ``families=None`` and prefixes given, only prefix matches are kept.
            A single ``str`` passed to either is taken as one name / prefix.
        max_samples: the most samples that may be kept.
        max_line_bytes: the longest line allowed, in bytes without the newline.
        max_label_pairs: the most label pairs one sample may carry.

    Returns:
        The kept families keyed by family name, in order of first appearance. A family that
        was declared but has no samples is included with an empty sample list.

    Raises:
        ExpositionError: malformed input (invalid UTF-8, unterminated label value, missing or
            non-numeric value, duplicate label name, bad ``# TYPE`` ...) or a cap exceeded; it is
            the only exception this function raises. ``line`` names the 1-based line.
    """
    try:
        return _parse(data, families, prefixes, max_samples, max_line_bytes, max_label_pairs)
    except ExpositionError:
        raise
    except Exception as exc:  # a bug or resource exhaustion: keep the promise of one error type
        raise ExpositionError(f"internal error: {type(exc).__name__}: {exc}") from exc


def _parse(
    data: bytes | bytearray | memoryview,
    families: Collection[str] | None,
    prefixes: Sequence[str],
    max_samples: int,
    max_line_bytes: int,
    max_label_pairs: int,
) -> dict[str, MetricFamily]:
    if isinstance(data, str):
        raise ExpositionError("expected bytes, got str")
    try:
        text = str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raw = bytes(data)
        raise ExpositionError(f"invalid UTF-8 at byte {exc.start}", raw.count(b"\n", 0, exc.start) + 1) from None
    lines = text.split("\n")

    if len(text) > max_line_bytes:  # (otherwise no line can be too long)
        ascii_only = len(text) == len(data)
        limit = max_line_bytes if ascii_only else max_line_bytes // 4
        if max(map(len, lines)) > limit:
            for i, ln in enumerate(lines, 1):
                if len(ln) > limit and len(ln.encode()) > max_line_bytes:
                    raise ExpositionError(f"line longer than {max_line_bytes} bytes", i)
    # Each kept sample takes a line: the sample cap needs checking only on longer inputs.
    count_samples = len(lines) > max_samples

    # OpenMetrics: the last non-blank line is "# EOF".
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip(_WS):
        last -= 1
    openmetrics = last >= 0 and lines[last].strip(_WS) == "# EOF"
    untyped = "unknown" if openmetrics else "untyped"
    suffixes = _OM_SUFFIXES if openmetrics else _TEXT_SUFFIXES
    unescape_help = _unescape_label if openmetrics else _unescape_text_help

    if isinstance(families, str):  # one name, not an iterable of characters
        families = (families,)
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    keep_all = families is None and not prefixes
    wanted: frozenset[str] = frozenset(families) if families is not None else frozenset()
    prefix_tuple = tuple(prefixes)

    result: dict[str, MetricFamily] = {}
    n_kept = 0

    # The family opened by the last HELP/TYPE/UNIT line.
    decl: str | None = None  # the name on its header line(s)
    cur_help = ""
    cur_typed = False
    fam: MetricFamily | None = None  # None until its TYPE line or first sample
    samples: list[Sample] = []  # fam.samples (a scratch list when the family is not kept)
    kept = False
    allowed: AbstractSet[str] = frozenset()
    skip: tuple[str, ...] = ()

    def register(name: str, typ: str, help_text: str, decl_name: str, lineno: int) -> MetricFamily:
        existing = result.get(name)
        if existing is None:
            new = result[name] = MetricFamily(name, typ, help_text, [])
            return new
        # A family seen before: merge into it.
        if existing.type == typ or typ == untyped:
            if help_text and not existing.help:
                existing.help = help_text
            return existing
        if existing.type == untyped and not existing.samples:
            existing.type = typ
            return existing
        if decl_name != name and decl_name not in result:  # text: counter foo_total vs gauge foo
            new = result[decl_name] = MetricFamily(decl_name, typ, help_text, [])
            return new
        raise ExpositionError(f"conflicting TYPE {typ!r} for {name!r} (was {existing.type!r})", lineno)

    new_sample = Sample
    fast_match = _FAST_LABELLED_LINE.fullmatch
    find_pairs = _FAST_PAIRS.findall
    header_match = _FAST_HEADER_RE.fullmatch

    for lineno, line in enumerate(lines, 1):
        if not line:
            continue
        if line[0] == "#":
            hm = header_match(line)
            if hm is None:
                hm = _HEADER_RE.match(line)
                if hm is None:
                    continue  # a plain comment (or "# EOF")
                if hm.group(2) is None:
                    if hm.group(1) == "TYPE":
                        raise ExpositionError("TYPE line without a metric name", lineno)
                    continue
                if _METRIC_NAME_RE.fullmatch(hm.group(2)) is None:
                    raise ExpositionError(f"invalid metric name {hm.group(2)!r} in {hm.group(1)} line", lineno)
            kind, hname, rest = hm.groups()
            if hname != decl:
                # A new family. One announced by HELP/UNIT alone still appears (untyped, empty).
                if fam is None and kept and decl is not None:
                    register(decl, untyped, cur_help, decl, lineno)
                decl = hname
                cur_help = ""
                cur_typed = False
                fam = None
                samples = []
                kept = keep_all or hname in wanted or hname.startswith(prefix_tuple)
                allowed = {hname}
                if not kept:
                    skip = (hname + "{", hname + " ", hname + "\t")
            if kind == "HELP":
                help_text = rest.rstrip(_WS) if rest else ""
                if "\\" in help_text:
                    help_text = unescape_help(help_text)
                cur_help = help_text
                if fam is not None:
                    fam.help = help_text
            elif kind == "TYPE":
                typ = rest.strip(_WS).lower() if rest else ""
                if typ not in _TYPES:
                    raise ExpositionError(f"unknown metric type {rest!r}", lineno)
                if cur_typed:
                    raise ExpositionError(f"second TYPE line for {hname!r}", lineno)
                if fam is not None:
                    raise ExpositionError(f"TYPE line for {hname!r} after its samples", lineno)
                cur_typed = True
                fam_name = hname[:-6] if typ == "counter" and hname.endswith("_total") and len(hname) > 6 else hname
                if openmetrics:
                    allowed = {hname, *[fam_name + sfx for sfx in suffixes[typ]]}
                else:
                    allowed = {hname + sfx for sfx in suffixes[typ]}
                kept = (
                    keep_all
                    or fam_name in wanted
                    or hname in wanted
                    or (typ == "counter" and fam_name + "_total" in wanted)
                    or fam_name.startswith(prefix_tuple)
                )
                if kept:
                    fam = register(fam_name, typ, cur_help, hname, lineno)
                    samples = fam.samples
                else:
                    skip = tuple(n + sep for n in allowed for sep in ("{", " ", "\t"))
                    samples = []
                    fam = MetricFamily(fam_name, typ, cur_help, samples)  # not registered
            # UNIT lines are accepted and ignored.
            continue

        if kept:
            # Fast paths: canonical sample lines of the current family.
            if "{" in line:
                m = fast_match(line)
                if m is not None:
                    name, block, vs = m.groups()
                    if name in allowed:
                        try:
                            value = float(vs)
                        except ValueError:
                            pass
                        else:
                            pairs = find_pairs(block)
                            labels = dict(pairs)
                            if len(labels) == len(pairs) <= max_label_pairs:
                                if fam is None:
                                    fam = register(name if decl is None else decl, untyped, cur_help, name, lineno)
                                    samples = fam.samples
                                samples.append(new_sample(name, labels, value))
                                if count_samples:
                                    n_kept += 1
                                    if n_kept > max_samples:
                                        raise ExpositionError(f"more than {max_samples} samples", lineno)
                                continue
            else:
                name, _, vs = line.partition(" ")
                if name in allowed and vs.isascii() and "_" not in vs:
                    try:
                        value = float(vs)
                    except ValueError:
                        pass
                    else:
                        if fam is None:
                            fam = register(name if decl is None else decl, untyped, cur_help, name, lineno)
                            samples = fam.samples
                        samples.append(new_sample(name, {}, value))
                        if count_samples:
                            n_kept += 1
                            if n_kept > max_samples:
                                raise ExpositionError(f"more than {max_samples} samples", lineno)
                        continue
        elif line.startswith(skip):
            continue  # a sample of a filtered-out family: not parsed

        # General path: blanks, escapes, timestamps, exemplars, untyped samples, errors.
        if not line.strip(_WS):
            continue
        name = _sample_name(line, lineno)
        if name in allowed:
            if not kept:
                continue
            if fam is None:
                fam = register(name if decl is None else decl, untyped, cur_help, name, lineno)
                samples = fam.samples
            target = samples
        else:
            # An untyped sample outside the current family.
            key: str | None = None
            if keep_all or name in wanted or name.startswith(prefix_tuple):
                key = name
            else:
                for sfx in _STRAY_SUFFIXES:
                    if name.endswith(sfx) and name[: -len(sfx)] in wanted:
                        key = name[: -len(sfx)]
                        break
            if key is None:
                continue
            target = register(key, untyped, "", key, lineno).samples
        name, labels, value = _parse_sample_line(line, lineno, max_label_pairs)
        target.append(new_sample(name, labels, value))
        if count_samples:
            n_kept += 1
            if n_kept > max_samples:
                raise ExpositionError(f"more than {max_samples} samples", lineno)

    if fam is None and kept and decl is not None:
        register(decl, untyped, cur_help, decl, len(lines))
    return result


K = TypeVar("K", bound=Hashable)


def histograms_by(family: MetricFamily | None, key: Callable[[dict[str, str]], K | None]) -> dict[K, Histogram]:
    """Fold a histogram family's ``_bucket``/``_sum``/``_count`` samples into one `Histogram` per key.

    ``key`` maps a sample's labels (``le`` aside) to the group it belongs to, or ``None`` to skip it;
    samples that land on the same key are summed, so labels a caller does not keep are aggregated
    away. Buckets whose ``le`` is not a finite number are skipped (``+Inf`` is the count).
    """
    if family is None:
        return {}
    buckets: dict[K, dict[float, float]] = {}
    sums: dict[K, float] = {}
    counts: dict[K, float] = {}
    base = len(family.name)
    for s in family.samples:
        group = key(s.labels)
        if group is None:
            continue
        suffix = s.name[base:]
        if suffix == "_bucket":
            try:
                le = float(s.labels.get("le", ""))
            except ValueError:
                continue
            if math.isfinite(le):
                per = buckets.setdefault(group, {})
                per[le] = per.get(le, 0.0) + s.value
        elif suffix == "_sum":
            sums[group] = sums.get(group, 0.0) + s.value
        elif suffix == "_count":
            counts[group] = counts.get(group, 0.0) + s.value
    return {
        group: Histogram(buckets=sorted(buckets.get(group, {}).items()), sum=sums.get(group, 0.0), count=count)
        for group, count in counts.items()
    }
