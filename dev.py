#!/usr/bin/env python3
"""Developer entry point that needs nothing but python3 (with venv and pip).

    python3 dev.py demo    # screen examples/posts.jsonl, events on stdout
    python3 dev.py test    # the whole test suite
    python3 dev.py lint    # ruff and mypy (CI runs them before the tests)
    python3 dev.py bench   # the throughput benchmark (benchmarks/README.md)
    python3 dev.py bench-stream   # end to end through Kafka (benchmarks/README.md)
    python3 dev.py bench-policy   # policy cost and rescan throughput (benchmarks/README.md)
    python3 dev.py bench-encoding # Hyperscan scan time by character numbering (benchmarks/README.md)
    python3 dev.py bench-startup  # start-up time of `screener scan`, cold and cached (benchmarks/README.md)
    python3 dev.py bench-evasion  # recall per evasion, false positives on clean posts (benchmarks/README.md)
    python3 dev.py bench-pinyin   # the pinyin pass: its cost side by side and its recall (benchmarks/README.md)

It creates .venv/ and installs the project into it (again only when
pyproject.toml changes), then runs the command inside it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test,bench,stream]"], check=True)
    STAMP.write_text(wanted)


COMMANDS = {
    "demo": lambda extra: [str(BIN / "screener"), "scan", str(ROOT / "examples" / "posts.jsonl"), *extra],
    "test": lambda extra: [str(BIN / "python"), "-m", "pytest", *(extra or ["-q"])],
    "lint": lambda extra: ["sh", "-c", f'"{BIN / "ruff"}" check "$0" && "{BIN / "mypy"}"', str(ROOT)],
    "bench": lambda extra: [str(BIN / "python"), str(ROOT / "benchmarks" / "throughput.py"), *extra],
    "bench-stream": lambda extra: [str(BIN / "python"), str(ROOT / "benchmarks" / "stream.py"), *extra],
    "bench-policy": lambda extra: [str(BIN / "python"), str(ROOT / "benchmarks" / "policy.py"), *extra],
    "bench-encoding": lambda extra: [str(BIN / "python"), str(ROOT / "benchmarks" / "hs_encoding.py"), *extra],
    "bench-startup": lambda extra: [str(BIN / "python"), str(ROOT / "benchmarks" / "startup.py"), *extra],
    "bench-evasion": lambda extra: [str(BIN / "python"), str(ROOT / "benchmarks" / "evasion.py"), *extra],
    "bench-pinyin": lambda extra: [str(BIN / "python"), str(ROOT / "benchmarks" / "pinyin.py"), *extra],
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    command = COMMANDS[sys.argv[1]](sys.argv[2:])
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
