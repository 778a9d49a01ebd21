"""Load held, short version: bench/load.py with 10 clients for 5 s while the real worker scans.

Asserts no failed request and every scanned message stored exactly once (no
timings: speed lives in the benchmark). The full run (50 clients, 60 s) is
``.venv/bin/python bench/load.py``, run by hand; docs/security.md gives its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_pages_and_hand_off_under_load_while_a_worker_scans(tmp_path, dovecot, redis_url):
    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--clients", "10", "--seconds", "5",
                           "--messages", "200", "--users", "5", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.exists(), done.stderr[-3000:]
    summary = json.loads(out.read_text())
    print(f"load: {summary['requests']} requests, {summary['errors']} errors, p50 {summary['p50_ms']} ms, "
          f"p95 {summary['p95_ms']} ms; scan {summary['scan']}")
    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["by_kind"]["hand-off"]["requests"] > 0 and summary["by_kind"]["e-mail list"]["requests"] > 0
    scan = summary["scan"]
    assert scan["status"] == "done" and scan["stored"] == scan["appended"] == scan["distinct_uids"] == 200
    assert done.returncode == 0, done.stderr[-3000:]
