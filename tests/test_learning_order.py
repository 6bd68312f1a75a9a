"""Learning order holds in the code: lesson N's module never imports (lazily included) a module of a later lesson,
and nothing in the library or the lessons reaches outside the repository for `shared/` data."""
import ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB, NBS = ROOT / "tinygpt", ROOT / "nbs"
APPENDIX = 99   # tinygpt.exercises.*: after every lesson

def lesson_of_module():
    "Module name (as `tinygpt.x` / `tinygpt.exercises.y`) -> lesson number, read from nbdev's 'File to edit' header."
    out = {}
    for py in LIB.rglob("*.py"):
        m = re.search(r"File to edit: (?:\.\./)+nbs/(.+?\.ipynb)", py.read_text()[:800])
        if not m: continue
        mod = "tinygpt." + ".".join(py.relative_to(LIB).with_suffix("").parts)
        lesson = re.match(r"(\d\d)_", Path(m.group(1)).name)
        out[mod] = APPENDIX if m.group(1).startswith("exercises/") or not lesson else int(lesson.group(1))
    return out

def imported_modules(py):
    "Every `tinygpt.*` module imported anywhere in `py` (top level and inside functions), relative imports resolved."
    pkg = ["tinygpt", *py.relative_to(LIB).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(py.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tinygpt")}
        elif isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            if not mod.startswith("tinygpt"): continue
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}   # `from . import x` / `from tinygpt import hub`
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("tinygpt"):
                found.add(node.args[0].value)
    return found

def test_no_module_imports_a_later_lesson():
    lessons = lesson_of_module()
    assert len(lessons) >= 12, f"expected the lesson modules, found {sorted(lessons)}"
    bad = []
    for mod, n in lessons.items():
        py = LIB.joinpath(*mod.split(".")[1:]).with_suffix(".py")
        for dep in imported_modules(py):
            m = lessons.get(dep)
            if m is None or n == APPENDIX: continue
            if m > n and not (m == APPENDIX and n == max(v for v in lessons.values() if v != APPENDIX)):
                bad.append(f"{mod} (lesson {n:02d}) imports {dep} (lesson {m:02d})")
    assert not bad, "a lesson's module imports a later lesson's module:\n" + "\n".join(sorted(bad))

def test_import_checker_sees_lazy_imports(tmp_path):
    "The checker itself: a lazy import inside a function and importlib are both found."
    (tmp_path / "x.py").write_text("def f():\n    from tinygpt.hub import load_default\n    import importlib\n"
                                   "    return importlib.import_module('tinygpt.cli')\n")
    global LIB
    old, LIB = LIB, tmp_path
    try: assert {"tinygpt.hub", "tinygpt.cli"} <= imported_modules(tmp_path / "x.py")
    finally: LIB = old

def test_nothing_reaches_for_shared_outside_the_repository():
    "Lessons and library never look for ../shared or a shared/ folder: a learner does not have it."
    pat = re.compile(r"""\.\./shared|['"/]shared/|["']shared["']|shared_data_dir""")
    hits = [f"{p.relative_to(ROOT)}" for p in LIB.rglob("*.py") if pat.search(p.read_text())]
    for nb in NBS.rglob("*.ipynb"):
        if ".ipynb_checkpoints" in nb.parts: continue
        src = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        if pat.search(src): hits.append(str(nb.relative_to(ROOT)))
    assert not hits, f"these files look for a shared/ folder outside the repository: {hits}"
