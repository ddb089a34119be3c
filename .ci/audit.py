"""The dependency audit CI runs (`make audit`): `pip-audit` over the project's environment, failing
on any known vulnerability that has a fix -- and on an audit that could not look at the packages
at all, so that a machine without access to the vulnerability database does not pass silently.

    python .ci/audit.py                      # run pip-audit on this interpreter's environment
    python .ci/audit.py --report FILE.json   # judge a report pip-audit already wrote (-f json)

Exit codes: 0 nothing fixable found; 1 a known vulnerability with a fixed version; 2 the audit
could not run, or skipped more than --max-skipped of the packages (unless SELFLEARN_AUDIT=offline,
which says so loudly and exits 0). A vulnerability with no fixed version yet is listed, not failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def judge(report: dict[str, Any], max_skipped: float) -> tuple[int, list[str]]:
    """The exit code for a pip-audit JSON report, and the lines to print."""
    deps = report.get("dependencies", [])
    lines: list[str] = []
    fixable = 0
    for dep in deps:
        for vuln in dep.get("vulns") or []:
            fixes = vuln.get("fix_versions") or []
            ident = vuln.get("id", "?")
            if fixes:
                fixable += 1
                lines.append(
                    f"FIX  {dep['name']} {dep.get('version', '?')}: {ident} fixed in {', '.join(fixes)}"
                )
            else:
                lines.append(f"open {dep['name']} {dep.get('version', '?')}: {ident} (no fixed version yet)")
    skipped = [dep for dep in deps if dep.get("skip_reason")]
    share = len(skipped) / len(deps) if deps else 1.0
    lines.append(
        f"{len(deps)} packages, {len(skipped)} not audited ({share:.0%}), {fixable} fixable vulnerabilities"
    )
    if fixable:
        return 1, lines
    if share > max_skipped:
        reason = skipped[0]["skip_reason"] if skipped else "no packages in the report"
        lines.append(f"the audit could not look at the packages (e.g. {reason}): no network or index?")
        return 2, lines
    return 0, lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--report", type=Path, help="judge this pip-audit JSON report instead of running it")
    parser.add_argument(
        "--max-skipped", type=float, default=0.2, help="largest share of packages not audited"
    )
    args = parser.parse_args()
    if args.report is not None:
        report = json.loads(args.report.read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "audit.json"
            cmd = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--skip-editable"]
            done = subprocess.run([*cmd, "-f", "json", "-o", str(out)], capture_output=True, text=True)
            if not out.exists():
                print(done.stderr.strip() or done.stdout.strip(), file=sys.stderr)
                code, lines = 2, ["pip-audit did not run"]
                report = None
            else:
                report = json.loads(out.read_text())
    if report is not None:
        code, lines = judge(report, args.max_skipped)
    for line in lines:
        print(f"audit: {line}")
    if code == 2 and os.environ.get("SELFLEARN_AUDIT", "") == "offline":
        print("audit: SELFLEARN_AUDIT=offline: NOT AUDITED -- passing without an audit", file=sys.stderr)
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
