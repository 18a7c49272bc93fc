"""The layers as contracts: import-linter checks pyproject.toml's contracts over the import graph, and the rules
no linter checks (module and class sizes, one definition of a word and of each update mode) are checked here."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "engine", "models")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert done.stdout.count("KEPT") == 4


def test_every_module_opens_with_a_docstring():
    missing = [str(p.relative_to(ROOT)) for p in _modules() if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, missing


def _assignments(name: str) -> list[str]:
    pattern = re.compile(rf"^\s*{name}\s*[:=]", re.M)
    return [str(p.relative_to(ROOT)) for p in _modules() if pattern.search(p.read_text(encoding="utf-8"))]


def test_one_definition_of_a_word():
    assert _assignments("SEPARATORS") == ["app/typing/words.py"]
    assert _assignments("WORD_CHAR") == ["app/typing/words.py"]
    assert [p for p in _modules() if "string.punctuation" in p.read_text()] == [ROOT / "app/typing/words.py"]
