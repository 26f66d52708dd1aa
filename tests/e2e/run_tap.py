#!/usr/bin/python3
"""Runs one unittest module and reports each test case in TAP, so meson (and
CI's summary) count end-to-end cases one by one.

    run_tap.py tests/e2e/test_dataplane.py
"""
import importlib.util
import sys
import time
import unittest
from pathlib import Path


class TapResult(unittest.TestResult):
    """Prints "ok N name" / "not ok N name" as each case ends, details as comments."""

    def __init__(self):
        super().__init__()
        self.n = 0
        self.started = 0.0

    def startTest(self, test):
        super().startTest(test)
        self.started = time.monotonic()
        print(f"# {test.id()} ...", flush=True)

    def _line(self, ok, test, note=""):
        self.n += 1
        took = time.monotonic() - self.started
        print(f"{'ok' if ok else 'not ok'} {self.n} {test.id()} ({took:.1f}s){note}", flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def _fail(self, test, err, kind):
        text = self._exc_info_to_string(err, test)
        for line in text.rstrip().splitlines():
            print(f"# {line}")
        self._line(False, test, f" # {kind}")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err, "failure")

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, f" # SKIP {reason}")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._line(True, test, " # TODO expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line(False, test, " # unexpected success")


def main(path):
    path = Path(path).resolve()
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    print("TAP version 13", flush=True)
    print(f"1..{suite.countTestCases()}", flush=True)
    result = TapResult()
    suite.run(result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
