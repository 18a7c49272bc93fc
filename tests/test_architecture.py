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
def test_no_module_over_300_lines_and_no_class_over_200():
    too_long = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 300:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 200:
                too_long.append(f"{path.relative_to(ROOT)}: class {node.name}, {node.end_lineno - node.lineno + 1}")
    assert not too_long, too_long


def test_one_registry_of_update_modes():
    assert _assignments("REGISTRY") == ["app/learning/modes.py"]
    assert _assignments("MODES") == ["app/learning/modes.py"]
    # no other module names a mode's learning rate or builds a scheme by a mode's name
    assert not [p for p in _modules() if "builtin_scheme" in p.read_text() or "BUILTIN_SCHEMES" in p.read_text()]


def test_no_module_of_the_typing_package_imports_itself_back():
    """No import cycle inside `app.typing` (imports made only for type checking count too)."""
    import grimp

    graph = grimp.build_graph("app", cache_dir=None)
    modules = sorted(m for m in graph.modules if m.startswith("app.typing."))
    cycles = [(a, b) for a in modules for b in modules if a < b
              and graph.chain_exists(a, b, as_packages=False) and graph.chain_exists(b, a, as_packages=False)]
    assert not cycles, cycles
