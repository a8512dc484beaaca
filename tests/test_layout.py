"""The house rules: a library package with thin scripts that never import each other, rooms one
can read at once, one list of file suffixes, a README of one page, and the tutorial's calls from a
fresh process in the repository root."""

import ast
import re
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPTS = {"preprocess", "train", "melodygenerator", "evaluate", "app"}
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_SCRIPT_LINES = 200  # a script is flags and one call
SKIPPED = {"tests", "notebooks", "build", ".git", ".venv", "venv", "data", "runs", "deutschl"}


def source_files():
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not SKIPPED & set(path.relative_to(ROOT).parts[:-1])
        and not path.parts[-2].endswith(".egg-info")
    )


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_no_file_and_no_function_is_too_long_to_read_at_once():
    too_long = []
    for path in source_files():
        text = path.read_text()
        name = path.relative_to(ROOT)
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {lines} lines")
    assert too_long == []


def test_scripts_are_thin_and_import_the_library_never_each_other():
    for name in sorted(SCRIPTS):
        path = ROOT / f"{name}.py"
        tree = ast.parse(path.read_text())
        assert not [n for n in tree.body if isinstance(n, ast.ClassDef)], f"{name}.py has a class"
        assert len(path.read_text().splitlines()) <= MAX_SCRIPT_LINES, f"{name}.py is not thin"
        assert not (set(imported_modules(path)) & SCRIPTS), f"{name}.py imports a script"


def test_the_library_and_the_benchmarks_import_no_script():
    for path in source_files():
        if path.parent == ROOT:
            continue
        used = set(imported_modules(path)) & SCRIPTS
        assert not used, f"{path.relative_to(ROOT)} imports {used}"


def test_file_suffixes_are_listed_only_by_the_readers():
    suffix = re.compile(r"""["']\.(mxl|krn|abc|midi)["']""")
    listed = [
        str(path.relative_to(ROOT))
        for path in [*source_files(), *ROOT.glob("web/*")]
        if "readers" not in path.parts and suffix.search(path.read_text())
    ]
    assert listed == []


def test_the_readme_is_one_page_and_its_topics_are_in_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), f"README links to a missing {link}"


@pytest.mark.parametrize(
    "statement",
    [
        "from preprocess import preprocess",
        "from train import train",
        "from melodygenerator import MelodyGenerator",
        "from preprocess import load_songs_in_kern, transpose, encode_song",
    ],
)
def test_the_tutorials_imports_work_in_a_fresh_process(statement):
    result = subprocess.run(
        [sys.executable, "-c", statement], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
