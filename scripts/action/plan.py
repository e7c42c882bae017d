#!/usr/bin/env python3
"""Reads a chart's keda-conformance config file and writes the action's plan.

The config file (default: <chart>/ci/keda-conformance.yaml) is a small YAML document:

    values:                 # required: values files, relative to the chart directory;
      - ci/keda-values.yaml #   each one is rendered and qualified on its own
    expectHeaders:          # optional: headers every prometheus trigger must send (Name=Value)
      - X-Scope-OrgID=tenant-a
    suites: [ci/keda-suites]  # optional: scenario files or directories, relative to the chart
    helm: [3, 4]            # optional: the Helm majors the chart supports (default: both)

Only this subset of YAML is accepted: a top-level mapping of those four keys, each a list
written as a block (`- item` lines) or on one line (`[a, b]`), of plain or quoted scalars,
with comments and blank lines anywhere. Anything else (nested mappings, anchors, tags,
multi-line scalars, tabs) is refused with the file and line, rather than read in a way the
maintainer did not mean. The parser is the standard library only, so it behaves the same on
every runner whatever Python packages it has.

Usage:
    plan.py --chart DIR --config FILE --out DIR [--helm "3 4"] [--provider local]
            [--workspace DIR]

Writes, in --out, one item a line (paths relative to the workspace, the directory that
GitHub's annotations are relative to):
    chart     the chart directory
    config    the config file
    values    the values files
    headers   the expected headers, Name=Value
    suites    the suites
    helm      the Helm majors to run: the --helm input's that the config allows
Exit codes: 0 planned, 2 the config file or an input is wrong (the message names the file and
line, or the input, and says how to fix it). Under GitHub Actions (GITHUB_ACTIONS=true) each
error is also printed as an `::error file=...,line=...::` annotation.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

KEYS = ("values", "expectHeaders", "suites", "helm")
HELM_MAJORS = ("3", "4")
PROVIDERS = ("local", "kind")
# RFC 9110 token characters: what an HTTP header name may contain.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_CONFIG_BYTES = 64 * 1024


class PlanError(Exception):
    """A problem with the config file or an input: exit code 2."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        return where + self.message


@dataclass
class Item:
    """A scalar of the config file and the line it is on."""

    value: str
    line: int
    quoted: bool = False


@dataclass
class Config:
    """The parsed config: each key's items (absent keys are not in `entries`)."""

    entries: dict[str, list[Item]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The YAML subset.


def _strip_comment(text: str, file: str, line: int) -> str:
    """The line without its comment; quotes are respected, an unclosed one is an error."""
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                quote = None
        elif quote == '"':
            if c == "\\":
                i += 2
                continue
            if c == '"':
                quote = None
        elif c in "'\"":
            # A quote opens a quoted scalar only where a scalar starts.
            before = text[:i].rstrip()
            at_token_start = i == 0 or text[i - 1] in " \t[,"
            if at_token_start and (before == "" or before.endswith((":", "-", "[", ","))):
                quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    if quote is not None:
        raise PlanError(
            f"unclosed {quote} quote (a quoted string must end on the line it starts)",
            file,
            line,
        )
    return text.rstrip()


def _scalar(text: str, file: str, line: int) -> Item:
    """One scalar: plain, 'single-quoted' or "double-quoted"."""
    text = text.strip()
    if text == "":
        raise PlanError("empty list item (write a value after the dash, or remove the line)", file, line)
    if text[0] == "'":
        if len(text) < 2 or text[-1] != "'":
            raise PlanError("a single-quoted string must end with ' and nothing after it", file, line)
        body = text[1:-1]
        if "'" in body.replace("''", ""):
            raise PlanError("a ' inside a single-quoted string must be doubled ('')", file, line)
        return Item(body.replace("''", "'"), line, quoted=True)
    if text[0] == '"':
        if len(text) < 2 or text[-1] != '"':
            raise PlanError('a double-quoted string must end with " and nothing after it', file, line)
        out = []
        body = text[1:-1]
        i = 0
        escapes = {'"': '"', "\\": "\\", "/": "/", "t": "\t", "n": "\n", "r": "\r", "0": "\0"}
        while i < len(body):
            c = body[i]
            if c == "\\":
                if i + 1 >= len(body) or body[i + 1] not in escapes:
                    raise PlanError(
                        "unsupported escape in a double-quoted string (use \\\\, \\\" or a single-quoted string)",
                        file,
                        line,
                    )
                out.append(escapes[body[i + 1]])
                i += 2
                continue
            if c == '"':
                raise PlanError('a " inside a double-quoted string must be written \\"', file, line)
            out.append(c)
            i += 1
        return Item("".join(out), line, quoted=True)
    if text[0] in "&*!|>%@`{":
        what = {
            "&": "an anchor",
            "*": "an alias",
            "!": "a tag",
            "|": "a block scalar",
            ">": "a block scalar",
            "%": "a directive",
            "@": "a reserved character",
            "`": "a reserved character",
            "{": "a mapping",
        }[text[0]]
        raise PlanError(
            f"{what} is not supported in this file; write a plain or quoted string", file, line
        )
    if text[0] == "[":
        raise PlanError("a nested list is not supported; each item is one string", file, line)
    if text.startswith("- ") or text == "-":
        raise PlanError("a nested list is not supported; each item is one string", file, line)
    if ": " in text or text.endswith(":"):
        raise PlanError(
            "a mapping is not supported here; each item is one string (quote it if it contains ': ')",
            file,
            line,
        )
    return Item(text, line)


def _flow_list(text: str, file: str, line: int) -> list[Item]:
    """A one-line flow sequence, `[a, "b", 'c']`."""
    if not text.endswith("]"):
        raise PlanError(
            "a list in brackets must close on the same line (or write it as `- item` lines)",
            file,
            line,
        )
    body = text[1:-1]
    items: list[Item] = []
    current = ""
    quote = None
    i = 0
    while i < len(body):
        c = body[i]
        if quote:
            current += c
            if quote == "'" and c == "'" and i + 1 < len(body) and body[i + 1] == "'":
                current += "'"
                i += 2
                continue
            if quote == '"' and c == "\\" and i + 1 < len(body):
                current += body[i + 1]
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"" and current.strip() == "":
            quote = c
            current += c
        elif c == ",":
            items.append(current)
            current = ""
        elif c in "[]{}":
            raise PlanError("nested brackets are not supported; each item is one string", file, line)
        else:
            current += c
        i += 1
    items.append(current)
    if len(items) == 1 and items[0].strip() == "":
        return []
    if items[-1].strip() == "":
        items.pop()  # a trailing comma, as YAML allows
    return [_scalar(part, file, line) for part in items]


def parse_config(text: str, file: str) -> Config:
    """Parses the config subset; raises PlanError naming the file and line."""
    config = Config()
    current: str | None = None  # the key whose block list is being read
    block_indent: int | None = None
    seen_content = False
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        indent_part = raw[: len(raw) - len(raw.lstrip(" \t"))]
        if "\t" in indent_part:
            raise PlanError("a tab in the indentation (YAML indents with spaces only)", file, number)
        stripped = _strip_comment(raw, file, number)
        if stripped.strip() == "":
            continue
        indent = len(stripped) - len(stripped.lstrip(" "))
        body = stripped.strip()
        if body == "---" and indent == 0:
            if seen_content:
                raise PlanError("a second YAML document; the file must hold one", file, number)
            continue
        if body == "..." and indent == 0:
            continue
        seen_content = True
        if body.startswith("- ") or body == "-":
            if current is None:
                raise PlanError(
                    "a list item outside a key (the file is a mapping: values:, expectHeaders:, suites:, helm:)",
                    file,
                    number,
                )
            if block_indent is None:
                block_indent = indent
            elif indent != block_indent:
                raise PlanError(
                    f"list item indented by {indent} spaces where the list's first item has {block_indent}",
                    file,
                    number,
                )
            config.entries[current].append(_scalar(body[1:], file, number))
            continue
        if indent != 0:
            raise PlanError(
                "unexpected indentation (only `- item` lines go under a key; nested mappings are not supported)",
                file,
                number,
            )
        match = re.match(r"^([^\s:#'\"\[\]{}-][^:]*?|'[^']*'|\"[^\"]*\"):(?:\s+(.*))?$", body)
        if not match:
            raise PlanError(
                "expected `key:` followed by a list (values:, expectHeaders:, suites:, helm:)",
                file,
                number,
            )
        key = match.group(1).strip("'\"")
        rest = (match.group(2) or "").strip()
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise PlanError(
                f"unknown key {key!r}{hint}; the keys are {', '.join(KEYS)}", file, number
            )
        if key in config.entries:
            raise PlanError(
                f"{key} is given twice (first on line {config.lines[key]}); merge the lists",
                file,
                number,
            )
        config.lines[key] = number
        current = None
        block_indent = None
        if rest == "":
            config.entries[key] = []
            current = key
        elif rest.startswith("["):
            config.entries[key] = _flow_list(rest, file, number)
        else:
            # A single scalar where a list belongs: accepted as a one-item list, since
            # `helm: 4` or `values: ci/keda-values.yaml` can only mean that.
            config.entries[key] = [_scalar(rest, file, number)]
    return config


# ---------------------------------------------------------------------------------------------
# Validation against the checkout.


def _relative_inside(base: Path, workspace: Path, item: Item, file: str, what: str) -> str:
    """`item` (relative to `base`) as a path relative to the workspace; it must stay inside."""
    value = item.value
    if value == "" or "\n" in value or "\r" in value or "\0" in value:
        raise PlanError(f"{what} {value!r} is not a usable path", file, item.line)
    if os.path.isabs(value):
        raise PlanError(
            f"{what} {value} is absolute; give it relative to the chart directory", file, item.line
        )
    resolved = Path(os.path.normpath(base / value))
    try:
        relative = resolved.relative_to(workspace)
    except ValueError:
        raise PlanError(
            f"{what} {value} is outside the repository checkout ({workspace})", file, item.line
        ) from None
    return relative.as_posix() or "."


def _majors(text: str, source: str) -> list[str]:
    """Helm majors from an input such as "3 4" or "3,4"."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not parts:
        raise PlanError(f"{source} is empty; give 3, 4 or \"3 4\"")
    for p in parts:
        if p not in HELM_MAJORS:
            raise PlanError(f"{source}: {p!r} is not a Helm major this action runs (3 or 4)")
    return list(dict.fromkeys(parts))


@dataclass
class Plan:
    chart: str
    config: str
    values: list[str]
    headers: list[str]
    suites: list[str]
    helm: list[str]


def make_plan(
    chart: str,
    config_path: str,
    helm_input: str,
    provider: str,
    workspace: str,
) -> Plan:
    """Reads and checks everything; raises PlanError."""
    ws = Path(os.path.normpath(os.path.abspath(workspace)))
    if provider not in PROVIDERS:
        raise PlanError(f"input provider: {provider!r} is not one of {', '.join(PROVIDERS)}")
    if chart.strip() == "":
        raise PlanError("input chart is empty; give the chart directory, e.g. charts/tempo-distributed")
    chart_abs = Path(os.path.normpath(ws / chart))
    try:
        chart_rel = chart_abs.relative_to(ws).as_posix() or "."
    except ValueError:
        raise PlanError(f"input chart: {chart} is outside the repository checkout ({ws})") from None
    if not (chart_abs / "Chart.yaml").is_file():
        raise PlanError(f"input chart: {chart_rel} has no Chart.yaml; give the chart's directory")
    config_abs = Path(os.path.normpath(ws / config_path)) if config_path else chart_abs / "ci" / "keda-conformance.yaml"
    try:
        config_rel = config_abs.relative_to(ws).as_posix()
    except ValueError:
        raise PlanError(f"input config: {config_path} is outside the repository checkout ({ws})") from None
    if re.search(r"-values\.ya?ml$", config_abs.name):
        raise PlanError(
            f"the config file is named {config_abs.name}: chart-testing installs every "
            "ci/*-values.yaml as values; name it e.g. ci/keda-conformance.yaml",
            config_rel,
        )
    if not config_abs.is_file():
        raise PlanError(
            "no config file here; add one naming the values files to qualify "
            "(values: [ci/keda-values.yaml]), or point the config input at it",
            config_rel,
        )
    data = config_abs.read_bytes()
    if len(data) > MAX_CONFIG_BYTES:
        raise PlanError(f"the config file is larger than {MAX_CONFIG_BYTES} bytes", config_rel)
    if b"\0" in data:
        raise PlanError("the config file contains a NUL byte; it must be YAML text", config_rel)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PlanError("the config file is not UTF-8 text", config_rel, line) from None
    text = text.lstrip("\ufeff")
    config = parse_config(text, config_rel)

    if "values" not in config.entries:
        raise PlanError("values is required: the values files to qualify, e.g. values: [ci/keda-values.yaml]", config_rel, 1)
    values_items = config.entries["values"]
    if not values_items:
        raise PlanError("values is empty; list at least one values file", config_rel, config.lines["values"])
    values: list[str] = []
    for item in values_items:
        rel = _relative_inside(chart_abs, ws, item, config_rel, "values file")
        if not (ws / rel).is_file():
            raise PlanError(f"values file {item.value} does not exist (looked for {rel})", config_rel, item.line)
        if rel in values:
            raise PlanError(f"values file {item.value} is listed twice", config_rel, item.line)
        values.append(rel)

    headers: list[str] = []
    for item in config.entries.get("expectHeaders", []):
        name, sep, value = item.value.partition("=")
        if not sep or not HEADER_NAME.match(name):
            raise PlanError(
                f"expected header {item.value!r} is not Name=Value with an HTTP header name, e.g. X-Scope-OrgID=tenant-a",
                config_rel,
                item.line,
            )
        if value == "" or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value if c != "\t"):
            raise PlanError(
                f"expected header {name}: the value is empty or has control characters",
                config_rel,
                item.line,
            )
        headers.append(item.value)

    suites: list[str] = []
    for item in config.entries.get("suites", []):
        rel = _relative_inside(chart_abs, ws, item, config_rel, "suite")
        if not (ws / rel).exists():
            raise PlanError(f"suite {item.value} does not exist (looked for {rel})", config_rel, item.line)
        if rel not in suites:
            suites.append(rel)

    allowed = list(HELM_MAJORS)
    if "helm" in config.entries:
        items = config.entries["helm"]
        if not items:
            raise PlanError("helm is empty; give the majors the chart supports, e.g. helm: [3, 4]", config_rel, config.lines["helm"])
        allowed = []
        for item in items:
            if item.value not in HELM_MAJORS:
                raise PlanError(f"helm: {item.value!r} is not a Helm major this action runs (3 or 4)", config_rel, item.line)
            if item.value not in allowed:
                allowed.append(item.value)
    requested = _majors(helm_input, "input helm")
    helm = [h for h in requested if h in allowed]
    return Plan(chart_rel, config_rel, values, headers, suites, helm)


# ---------------------------------------------------------------------------------------------
# Output.


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as the runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (file=, title=), escaped."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(error: PlanError) -> str:
    props = []
    if error.file is not None:
        props.append("file=" + escape_property(error.file))
        if error.line is not None:
            props.append("line=" + str(error.line))
    props.append("title=" + escape_property("keda-conformance config"))
    return f"::error {','.join(props)}::{escape_data(error.message)}"


def write_plan(plan: Plan, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lists = {
        "chart": [plan.chart],
        "config": [plan.config],
        "values": plan.values,
        "headers": plan.headers,
        "suites": plan.suites,
        "helm": plan.helm,
    }
    for name, items in lists.items():
        (out / name).write_text("".join(item + "\n" for item in items), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chart", required=True, help="chart directory, relative to the workspace")
    parser.add_argument("--config", default="", help="config file (default <chart>/ci/keda-conformance.yaml)")
    parser.add_argument("--helm", default="3 4", help='Helm majors asked for, e.g. "3 4"')
    parser.add_argument("--provider", default="local", help="cluster provider (local)")
    parser.add_argument("--workspace", default=os.environ.get("GITHUB_WORKSPACE") or ".", help="repository checkout")
    parser.add_argument("--out", required=True, help="directory to write the plan into")
    args = parser.parse_args(argv)
    try:
        plan = make_plan(args.chart, args.config, args.helm, args.provider, args.workspace)
        write_plan(plan, Path(args.out))
    except PlanError as e:
        print(f"plan: {e}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(annotation(e), flush=True)
        return 2
    except OSError as e:
        print(f"plan: {e}", file=sys.stderr)
        return 2
    print(
        f"plan: {plan.chart}: {len(plan.values)} values file(s), {len(plan.headers)} expected header(s), "
        f"{len(plan.suites)} suite(s), Helm {' '.join(plan.helm) or '(none of the asked majors)'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
