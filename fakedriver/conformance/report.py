"""A report as CI reads it: one JSON document (`as_json()`), or JUnit XML (`as_junit()`)."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from .kit import Report


def as_json(report: Report) -> dict[str, Any]:
    """The report as one JSON document: the target, the rules, each check with its
    outcome, reason and calls, the summary and what could not be cleaned."""
    return {
        "target": report.target,
        "dockerd": report.dockerd,
        "ok": report.ok,
        "seconds": round(report.seconds, 3),
        "summary": report.summary(),
        "not_cleaned": report.not_cleaned,
        "checks": [
            {
                "name": r.name,
                "outcome": r.outcome,
                "reason": r.reason,
                "seconds": round(r.seconds, 3),
                "calls": [
                    {
                        "method": c.method,
                        "request": c.request,
                        "status": c.status,
                        "answer": c.body.decode("utf-8", "replace"),
                        "error": c.error,
                        "seconds": round(c.seconds, 4),
                    }
                    for c in r.calls
                ],
            }
            for r in report.results
        ],
    }


def as_junit(report: Report) -> str:
    """The report as JUnit XML: one test case per check (classname its group), a failure
    with its reason and calls, a skip with why."""
    suite = ElementTree.Element(
        "testsuite",
        name="fakedriver check",
        tests=str(len(report.results)),
        failures=str(len(report.failed)),
        skipped=str(sum(r.outcome == "skip" for r in report.results)),
        time=f"{report.seconds:.3f}",
    )
    for result in report.results:
        group, _, name = result.name.partition("/")
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"conformance.{group}",
            name=name,
            time=f"{result.seconds:.3f}",
        )
        if result.outcome == "fail":
            failure = ElementTree.SubElement(case, "failure", message=result.reason)
            failure.text = "\n".join(c.brief() for c in result.calls)
        elif result.outcome == "skip":
            ElementTree.SubElement(case, "skipped", message=result.reason)
    if report.not_cleaned:
        err = ElementTree.SubElement(suite, "system-err")
        err.text = "could not clean:\n" + "\n".join(report.not_cleaned)
    root = ElementTree.Element("testsuites")
    root.append(suite)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
