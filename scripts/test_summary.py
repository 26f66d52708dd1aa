#!/usr/bin/env python3
"""Counts individual test cases in meson's JUnit logs and prints the one
line CI reads: "N passed, N failed". Missing logs (a build that failed)
count as one failure each, so a broken build never reads as green."""
import json
import os
import sys
import xml.etree.ElementTree as ET


def count(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        print(f"test_summary: no results in {path}")
        return 0, 1
    passed = failed = 0
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            print(f"FAILED: {case.get('classname')}.{case.get('name')}")
        else:
            passed += 1
    # A binary that crashed may leave no case marked failed in the JUnit
    # file; meson's own per-test log still says so.
    failed_tests = 0
    try:
        with open(os.path.join(os.path.dirname(path), "testlog.json")) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("result") in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"):
                    failed_tests += 1
                    print(f"FAILED (meson test): {entry.get('name')}")
    except OSError:
        pass
    return passed, max(failed, failed_tests)


def main(paths):
    passed = failed = 0
    for p in paths:
        a, b = count(p)
        passed += a
        failed += b
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
