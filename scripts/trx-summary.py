#!/usr/bin/env python3
"""Prints 'N passed, N failed, N skipped' summed over the .trx files in a folder (the last line of test.sh)."""
import glob, sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
passed = failed = skipped = 0
files = glob.glob(f"{sys.argv[1]}/**/*.trx", recursive=True)
for f in files:
    c = ET.parse(f).getroot().find("t:ResultSummary/t:Counters", ns)
    if c is None:
        continue
    passed += int(c.get("passed", 0))
    failed += int(c.get("failed", 0)) + int(c.get("error", 0)) + int(c.get("timeout", 0)) + int(c.get("aborted", 0))
    # xunit.v3 reports a skipped test as not executed without counting it under notExecuted.
    skipped += max(int(c.get("total", 0)) - int(c.get("executed", 0)), int(c.get("notExecuted", 0))) + int(c.get("inconclusive", 0))
if not files:
    print("no test results found", file=sys.stderr)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
