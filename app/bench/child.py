"""Running a measurement in a fresh Python process, optionally with another checkout of this project first on the
path: that checkout's code, measured by this build's harness file. The function's JSON result comes back.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import importlib.util, json, sys
checkout, bench_file, function, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if checkout:
    sys.path.insert(0, checkout)
spec = importlib.util.spec_from_file_location("pocketkb_bench_child", bench_file)
bench = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
print(json.dumps(getattr(bench, function)(**args)))
"""


def run_child(bench_file: str | Path, function: str, args: dict, checkout: str | Path | None = None,
              env: dict[str, str] | None = None) -> dict:
    """`function(**args)` of the module file `bench_file`, in a child process; RuntimeError with its error if it fails."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(Path(checkout).resolve()) if checkout else "",
                           str(bench_file), function, json.dumps(args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-600:])
    return json.loads(done.stdout.strip().splitlines()[-1])
