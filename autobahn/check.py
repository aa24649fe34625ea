#!/usr/bin/env python3
"""Strict verdict on an Autobahn|TestSuite fuzzingserver report (client side).

    autobahn/check.py [--agent NAME] [--expected FILE] [--update] REPORTS_DIR

Reads REPORTS_DIR/index.json (written by the fuzzingserver on /updateReports) and the
case list from REPORTS_DIR/fuzzingserver.log (copied there by run-client-suite.sh), then:

* prints the count of each `behavior` and `behaviorClose` value;
* fails on every selected case whose behavior is not OK or INFORMATIONAL (NON-STRICT,
  UNIMPLEMENTED, FAILED and cases missing from the report are all failures);
* compares the selected cases with the committed expectation FILE (JSON object
  case id -> behavior, default autobahn/expected-client.json): any difference fails;
* with --update, rewrites FILE from this report instead of comparing (entries for cases
  that were not selected in this run are kept), and still fails on non-OK cases.

The last line printed is `autobahn: N passed, M failed`. Exit status 0 only if M == 0.
"""

import argparse
import ast
import fnmatch
import json
import os
import re
import sys
from collections import Counter

PASS = ("OK", "INFORMATIONAL")
HERE = os.path.dirname(os.path.abspath(__file__))


def case_key(cid):
    return tuple(int(p) if p.isdigit() else p for p in cid.split("."))


def compact(ids):
    """['1.1.1', '1.1.2', '1.1.3', '2.1'] -> '1.1.1-3, 2.1'"""
    out, run, prev = [], [], None

    def flush():
        if run:
            last = run[-1].rsplit(".", 1)[-1]
            out.append(run[0] if len(run) == 1 else "%s-%s" % (run[0], last))

    for cid in sorted(ids, key=case_key):
        k = case_key(cid)
        if (prev and k[:-1] == prev[:-1] and isinstance(k[-1], int)
                and isinstance(prev[-1], int) and k[-1] == prev[-1] + 1):
            run.append(cid)
        else:
            flush()
            run = [cid]
        prev = k
    flush()
    return ", ".join(out)


def selected_cases(reports, patterns):
    """Case ids the server ran: from its log, else None."""
    path = os.path.join(reports, "fuzzingserver.log")
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("Cases = ["):
                    return sorted(ast.literal_eval(line[len("Cases = "):].strip()), key=case_key)
    return None


def load_index(reports, agent):
    path = os.path.join(reports, "index.json")
    if not os.path.exists(path):
        print("autobahn: %s was not written (server not started, or the client never "
              "called /updateReports)" % path)
        return {}
    with open(path) as f:
        index = json.load(f)
    if agent is None:
        if len(index) != 1:
            print("autobahn: %d agents in %s (%s); choose one with --agent"
                  % (len(index), path, ", ".join(sorted(index))))
            return {}
        agent = next(iter(index))
    if agent not in index:
        print("autobahn: agent %r not in %s (agents: %s)" % (agent, path, ", ".join(sorted(index)) or "none"))
        return {}
    return index[agent]


def write_expected(path, expected):
    with open(path + ".tmp", "w") as f:
        f.write("{\n")
        items = sorted(expected.items(), key=lambda kv: case_key(kv[0]))
        f.write(",\n".join("  %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in items))
        f.write("\n}\n")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", help="reports directory holding index.json")
    ap.add_argument("--agent", help="agent name in index.json (default: the only one)")
    ap.add_argument("--expected", default=os.path.join(HERE, "expected-client.json"),
                    help="expectation file (default: %(default)s)")
    ap.add_argument("--cases", default="*",
                    help="case patterns, used only when the server log is missing (default: *)")
    ap.add_argument("--update", action="store_true", help="rewrite the expectation file from this report")
    args = ap.parse_args()

    results = load_index(args.reports, args.agent)
    got = {cid: r.get("behavior", "?") for cid, r in results.items()}

    expected = None
    if os.path.exists(args.expected):
        with open(args.expected) as f:
            expected = json.load(f)

    selected = selected_cases(args.reports, args.cases)
    if selected is None:
        pats = [p for p in re.split(r"[,\s]+", args.cases) if p]
        known = set(got) | set(expected or {})
        selected = sorted((c for c in known if any(fnmatch.fnmatchcase(c, p) for p in pats)), key=case_key)
        print("autobahn: no case list in %s/fuzzingserver.log; judging %d known cases matching %r"
              % (args.reports, len(selected), args.cases))
    sel = set(selected)

    counts = Counter(got.get(c, "MISSING") for c in selected)
    close = Counter(results[c].get("behaviorClose", "?") for c in selected if c in results)
    print("autobahn: %d cases selected, %d reported" % (len(selected), len(sel & set(got))))
    print("autobahn: behavior: " + "  ".join("%s=%d" % kv for kv in sorted(counts.items())))
    print("autobahn: behaviorClose: " + "  ".join("%s=%d" % kv for kv in sorted(close.items())))
    extra = sorted(set(got) - sel, key=case_key)
    if extra:
        print("autobahn: ignoring %d reported cases outside the selection: %s" % (len(extra), compact(extra)))

    bad = set()
    by_beh = {}
    for cid in selected:
        beh = got.get(cid, "MISSING")
        if beh not in PASS:
            bad.add(cid)
            by_beh.setdefault(beh, []).append(cid)
    for beh, ids in sorted(by_beh.items()):
        print("autobahn: %s (not OK/INFORMATIONAL): %d cases: %s" % (beh, len(ids), compact(ids)))

    if args.update:
        new = {c: b for c, b in (expected or {}).items() if c not in sel}
        new.update({c: got[c] for c in selected if c in got})
        write_expected(args.expected, new)
        print("autobahn: wrote %s (%d cases, %d from this run)"
              % (os.path.relpath(args.expected), len(new), len(sel & set(got))))
    elif expected is None:
        print("autobahn: expectation file %s is missing; create it with --update" % args.expected)
        bad |= sel
    else:
        diffs = []
        for cid in selected:
            want, have = expected.get(cid, "(not expected)"), got.get(cid, "MISSING")
            if want != have:
                diffs.append((cid, want, have))
        if diffs:
            print("autobahn: %d cases differ from %s (expected -> got):"
                  % (len(diffs), os.path.relpath(args.expected)))
            for cid, want, have in diffs:
                print("    %-10s %s -> %s" % (cid, want, have))
            bad |= {cid for cid, _, _ in diffs}
        else:
            print("autobahn: all %d selected cases match %s" % (len(sel), os.path.relpath(args.expected)))

    if not sel:
        print("autobahn: no case was selected or reported")
        bad.add("<nothing ran>")
    failed = len(bad)
    passed = len(sel - bad)
    print("autobahn: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
