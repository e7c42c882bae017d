#!/usr/bin/env python3
"""Self-test of plan.py, the action's config reader. Run: python3 scripts/action/plan_test.py

Standard library only. When PyYAML happens to be importable, every accepted document is also
loaded with it and must mean the same lists (the subset is real YAML, read the same way).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plan  # noqa: E402

try:
    import yaml  # type: ignore
except ImportError:  # the cross-check is optional
    yaml = None

HERE = Path(__file__).resolve().parent


class Workspace:
    """A temporary repository checkout with one chart in charts/app."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.chart = self.root / "charts" / "app"
        (self.chart / "ci").mkdir(parents=True)
        (self.chart / "Chart.yaml").write_text("apiVersion: v2\nname: app\nversion: 1.0.0\n")
        for name in ("keda-values.yaml", "keda-tenant-b.yaml"):
            (self.chart / "ci" / name).write_text("autoscaling: {}\n")
        (self.chart / "ci" / "suites").mkdir()
        (self.root / "shared").mkdir()
        (self.root / "shared" / "common.yaml").write_text("{}\n")

    def config(self, text: str | bytes, name: str = "ci/keda-conformance.yaml") -> Path:
        path = self.chart / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def plan(self, helm: str = "3 4", provider: str = "local", config: str = "", chart: str = "charts/app"):
        return plan.make_plan(chart, config, helm, provider, str(self.root))

    def close(self) -> None:
        self._tmp.cleanup()


class ParseTest(unittest.TestCase):
    """The YAML subset: what it accepts and what each accepted document means."""

    VALID = {
        "block": (
            "values:\n  - ci/keda-values.yaml\n  - ci/keda-tenant-b.yaml\n"
            "expectHeaders:\n  - X-Scope-OrgID=tenant-a\nsuites:\n  - ci/suites\nhelm:\n  - 3\n  - 4\n",
            {
                "values": ["ci/keda-values.yaml", "ci/keda-tenant-b.yaml"],
                "expectHeaders": ["X-Scope-OrgID=tenant-a"],
                "suites": ["ci/suites"],
                "helm": ["3", "4"],
            },
        ),
        "flow": (
            "values: [ci/keda-values.yaml, 'ci/keda-tenant-b.yaml']\nhelm: [4]\nexpectHeaders: [\"X-Scope-OrgID=a,b\"]\n",
            {
                "values": ["ci/keda-values.yaml", "ci/keda-tenant-b.yaml"],
                "helm": ["4"],
                "expectHeaders": ["X-Scope-OrgID=a,b"],
            },
        ),
        "comments, blank lines, a document marker, items at column 0": (
            "# keda-conformance config\n---\n\nvalues:   # the values files\n- ci/keda-values.yaml  # one\n\n"
            "# between keys\nsuites: []\n",
            {"values": ["ci/keda-values.yaml"], "suites": []},
        ),
        "a hash inside quotes and inside a word": (
            "values:\n  - 'ci/keda-values.yaml'\nexpectHeaders:\n  - \"X-A=a # not a comment\"\n  - X-B=b#c\n",
            {"values": ["ci/keda-values.yaml"], "expectHeaders": ["X-A=a # not a comment", "X-B=b#c"]},
        ),
        "single scalar for a one-item list, CRLF line ends": (
            "values: ci/keda-values.yaml\r\nhelm: 4\r\n",
            {"values": ["ci/keda-values.yaml"], "helm": ["4"]},
        ),
        "quotes escaped": (
            "expectHeaders:\n  - 'X-A=it''s'\n  - \"X-B=say \\\"hi\\\"\"\nvalues: [a]\n",
            {"expectHeaders": ["X-A=it's", 'X-B=say "hi"'], "values": ["a"]},
        ),
        "trailing comma in a flow list, an apostrophe in a plain word": (
            "values: [a, b,]\nsuites:\n  - it's\n",
            {"values": ["a", "b"], "suites": ["it's"]},
        ),
    }

    def test_valid_documents(self) -> None:
        for name, (text, want) in self.VALID.items():
            with self.subTest(name):
                got = plan.parse_config(text, "c.yaml")
                self.assertEqual({k: [i.value for i in v] for k, v in got.entries.items()}, want)
                if yaml is not None:
                    loaded = yaml.safe_load(text)
                    as_lists = {
                        k: [str(x) for x in (v if isinstance(v, list) else [v])]
                        for k, v in loaded.items()
                    }
                    self.assertEqual(as_lists, want, "PyYAML reads this document differently")

    def test_item_lines(self) -> None:
        got = plan.parse_config("# c\nvalues:\n  - a\n\n  - b\nhelm: [3]\n", "c.yaml")
        self.assertEqual([i.line for i in got.entries["values"]], [3, 5])
        self.assertEqual(got.lines, {"values": 2, "helm": 6})

    INVALID = {
        "unknown key": ("values: [a]\nexpectHeader: [X=a]\n", 2, "did you mean expectHeaders"),
        "duplicate key": ("values: [a]\nhelm: [3]\nvalues: [b]\n", 3, "first on line 1"),
        "tab indentation": ("values:\n\t- a\n", 2, "tab"),
        "nested mapping": ("values:\n  file: a\n", 2, "indentation"),
        "mapping item": ("values:\n  - file: a\n", 2, "mapping"),
        "anchor": ("values: &v [a]\n", 1, "anchor"),
        "alias": ("values:\n  - *v\n", 2, "alias"),
        "tag": ("values:\n  - !!str a\n", 2, "tag"),
        "block scalar": ("values: |\n  a\n", 1, "block scalar"),
        "multi-line flow list": ("values: [a,\n  b]\n", 1, "same line"),
        "nested flow list": ("values: [[a]]\n", 1, "nested"),
        "flow mapping": ("values: {a: b}\n", 1, "mapping"),
        "unclosed quote": ("values:\n  - 'a\n", 2, "unclosed"),
        "stray quote": ("values:\n  - 'a'b'\n", 2, "doubled"),
        "bad escape": ('values:\n  - "a\\q"\n', 2, "escape"),
        "empty item": ("values:\n  -\n", 2, "empty list item"),
        "item outside a key": ("- a\n", 1, "outside a key"),
        "uneven items": ("values:\n  - a\n    - b\n", 3, "indented by 4"),
        "two documents": ("values: [a]\n---\nvalues: [b]\n", 2, "second YAML document"),
        "top-level list item after a flow list": ("values: [a]\n- b\n", 2, "outside a key"),
        "no colon": ("values\n", 1, "expected `key:`"),
        "continuation line": ("values:\n  - a\n    b\n", 3, "indentation"),
    }

    def test_invalid_documents(self) -> None:
        for name, (text, line, fragment) in self.INVALID.items():
            with self.subTest(name):
                with self.assertRaises(plan.PlanError) as caught:
                    plan.parse_config(text, "c.yaml")
                self.assertEqual(caught.exception.file, "c.yaml")
                self.assertEqual(caught.exception.line, line, str(caught.exception))
                self.assertIn(fragment, caught.exception.message)


class PlanTest(unittest.TestCase):
    """The plan: paths relative to the workspace, checks against the checkout, the Helm majors."""

    def setUp(self) -> None:
        self.ws = Workspace()

    def tearDown(self) -> None:
        self.ws.close()

    def test_default_config_location_and_paths(self) -> None:
        self.ws.config(
            "values: [ci/keda-values.yaml, ../../shared/common.yaml]\n"
            "expectHeaders: [X-Scope-OrgID=tenant-a]\nsuites: [ci/suites]\n"
        )
        p = self.ws.plan()
        self.assertEqual(p.chart, "charts/app")
        self.assertEqual(p.config, "charts/app/ci/keda-conformance.yaml")
        self.assertEqual(p.values, ["charts/app/ci/keda-values.yaml", "shared/common.yaml"])
        self.assertEqual(p.headers, ["X-Scope-OrgID=tenant-a"])
        self.assertEqual(p.suites, ["charts/app/ci/suites"])
        self.assertEqual(p.helm, ["3", "4"])

    def test_chart_given_with_dot_and_slash(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml]\n")
        p = self.ws.plan(chart="./charts/app/")
        self.assertEqual(p.chart, "charts/app")
        self.assertEqual(p.values, ["charts/app/ci/keda-values.yaml"])

    def test_explicit_config_relative_to_workspace(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml]\n", name="ci/other.yaml")
        p = self.ws.plan(config="charts/app/ci/other.yaml")
        self.assertEqual(p.config, "charts/app/ci/other.yaml")

    def test_helm_is_the_inputs_majors_the_config_allows(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml]\nhelm: [4]\n")
        self.assertEqual(self.ws.plan(helm="3 4").helm, ["4"])
        self.assertEqual(self.ws.plan(helm="3").helm, [])
        self.assertEqual(self.ws.plan(helm="4,3,4").helm, ["4"])

    def test_helm_input_order_is_kept(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml]\n")
        self.assertEqual(self.ws.plan(helm="4 3").helm, ["4", "3"])

    def assertPlanError(self, fragment: str, line: int | None = None, file: str | None = None, **kwargs) -> None:
        with self.assertRaises(plan.PlanError) as caught:
            self.ws.plan(**kwargs)
        self.assertIn(fragment, caught.exception.message)
        if line is not None:
            self.assertEqual(caught.exception.line, line, str(caught.exception))
        if file is not None:
            self.assertEqual(caught.exception.file, file)

    def test_errors_name_the_file_and_line(self) -> None:
        cfg = "charts/app/ci/keda-conformance.yaml"
        cases = [
            ("values: [ci/keda-values.yaml]\nhelm: [3, 5]\n", "'5'", 2),
            ("values:\n  - ci/missing.yaml\n", "does not exist", 2),
            ("values:\n  - /etc/passwd\n", "absolute", 2),
            ("values:\n  - ../../../outside.yaml\n", "outside the repository", 2),
            ("values: [ci/keda-values.yaml, ci/keda-values.yaml]\n", "listed twice", 1),
            ("values: []\n", "values is empty", 1),
            ("helm: [3]\n", "values is required", 1),
            ("values: [ci/keda-values.yaml]\nexpectHeaders:\n  - X-Scope-OrgID\n", "Name=Value", 3),
            ("values: [ci/keda-values.yaml]\nexpectHeaders:\n  - 'X Scope=a'\n", "Name=Value", 3),
            ("values: [ci/keda-values.yaml]\nexpectHeaders:\n  - X-Scope-OrgID=\n", "empty", 3),
            ("values: [ci/keda-values.yaml]\nexpectHeaders:\n  - \"X-A=a\\nb\"\n", "control", 3),
            ("values: [ci/keda-values.yaml]\nsuites:\n  - ci/nope\n", "does not exist", 3),
            ("values: [ci/keda-values.yaml]\nhelm: []\n", "helm is empty", 2),
        ]
        for text, fragment, line in cases:
            with self.subTest(text):
                self.ws.config(text)
                self.assertPlanError(fragment, line=line, file=cfg)

    def test_file_level_errors(self) -> None:
        cfg = "charts/app/ci/keda-conformance.yaml"
        self.assertPlanError("no config file", file=cfg)
        self.ws.config(b"values: [a]\n\xff\n")
        self.assertPlanError("not UTF-8", line=2, file=cfg)
        self.ws.config(b"values: [a]\0\n")
        self.assertPlanError("NUL", file=cfg)
        self.ws.config("# " + "x" * (plan.MAX_CONFIG_BYTES + 1) + "\n")
        self.assertPlanError("larger than", file=cfg)
        self.ws.config("\ufeffvalues: [ci/keda-values.yaml]\n")
        self.assertEqual(self.ws.plan().values, ["charts/app/ci/keda-values.yaml"])

    def test_a_values_named_config_is_refused(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml]\n", name="ci/keda-conformance-values.yaml")
        self.assertPlanError("chart-testing", config="charts/app/ci/keda-conformance-values.yaml")

    def test_input_errors(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml]\n")
        self.assertIsNotNone(self.ws.plan(provider="kind"))
        self.assertPlanError("not one of", provider="docker")
        self.assertPlanError("'2'", helm="2 3")
        self.assertPlanError("empty", helm=" ")
        self.assertPlanError("no Chart.yaml", chart="charts")
        self.assertPlanError("outside the repository", chart="../elsewhere")
        self.assertPlanError("input chart is empty", chart="")


class CommandLineTest(unittest.TestCase):
    """plan.py as the action runs it: files out, exit codes, annotations."""

    def setUp(self) -> None:
        self.ws = Workspace()
        self.out = self.ws.root / "plan-out"

    def tearDown(self) -> None:
        self.ws.close()

    def run_plan(self, *args: str, github: bool = False) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITHUB_WORKSPACE")}
        if github:
            env["GITHUB_ACTIONS"] = "true"
        return subprocess.run(
            [sys.executable, str(HERE / "plan.py"), "--workspace", str(self.ws.root), "--out", str(self.out), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    def test_writes_one_item_a_line(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml, ci/keda-tenant-b.yaml]\nexpectHeaders: [X-Scope-OrgID=tenant-a]\n")
        result = self.run_plan("--chart", "charts/app", "--helm", "4")
        self.assertEqual(result.returncode, 0, result.stderr)
        read = lambda name: (self.out / name).read_text().splitlines()  # noqa: E731
        self.assertEqual(read("values"), ["charts/app/ci/keda-values.yaml", "charts/app/ci/keda-tenant-b.yaml"])
        self.assertEqual(read("headers"), ["X-Scope-OrgID=tenant-a"])
        self.assertEqual(read("suites"), [])
        self.assertEqual(read("helm"), ["4"])
        self.assertEqual(read("chart"), ["charts/app"])
        self.assertEqual(read("config"), ["charts/app/ci/keda-conformance.yaml"])
        self.assertEqual(result.stdout, "")

    def test_error_exit_2_with_an_annotation_under_github(self) -> None:
        self.ws.config("values: [ci/keda-values.yaml]\nhelm: [3, 5]\n")
        result = self.run_plan("--chart", "charts/app", github=True)
        self.assertEqual(result.returncode, 2)
        self.assertIn("charts/app/ci/keda-conformance.yaml:2:", result.stderr)
        self.assertEqual(
            result.stdout.strip(),
            "::error file=charts/app/ci/keda-conformance.yaml,line=2,title=keda-conformance config::"
            "helm: '5' is not a Helm major this action runs (3 or 4)",
        )
        self.assertFalse((self.out / "values").exists())

    def test_no_annotation_outside_github(self) -> None:
        result = self.run_plan("--chart", "charts/app")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stdout, "")
        self.assertIn("no config file", result.stderr)


class AnnotationTest(unittest.TestCase):
    def test_escaping(self) -> None:
        e = plan.PlanError("50% of a\nb", "dir,x/a:b.yaml", 7)
        self.assertEqual(
            plan.annotation(e),
            "::error file=dir%2Cx/a%3Ab.yaml,line=7,title=keda-conformance config::50%25 of a%0Ab",
        )

    def test_input_error_has_no_file(self) -> None:
        self.assertEqual(
            plan.annotation(plan.PlanError("input helm is empty")),
            "::error title=keda-conformance config::input helm is empty",
        )


if __name__ == "__main__":
    result = unittest.main(exit=False).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
    sys.exit(0 if result.wasSuccessful() else 1)
