"""`tinygpt grade` on a folder of made-up submissions: every kind of hand-in gets the exact row it should.

The lesson, its exercises and its checkers are discovered (`lessons`, `lesson_exercises`, `lesson_checkers`); the
"all correct" hand-in is the lesson's worked-solutions notebook; the expected failure messages come from calling the
same checkers here on the same wrong functions. Nothing depends on today's exercise names."""
import csv, json, os, re, shutil, contextlib, io
from pathlib import Path
import nbformat, pytest
from tinygpt.exercises.core import lessons, lesson_exercises, lesson_checkers
from tinygpt.exercises.grade import grade_command

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 30   # seconds per cell: the infinite loop waits this long; importing torch in a busy kernel must fit

def _pick_lesson():
    "The first lesson with at least two exercises and a worked-solutions notebook."
    for lesson in lessons():
        sols = sorted((ROOT / "nbs" / "solutions").glob(f"{lesson}_*_solutions.ipynb"))
        if len(lesson_exercises(lesson)) >= 2 and sols: return lesson, sols[0]
    pytest.skip("no lesson has two checked exercises and a solutions notebook")

LESSON, SOLUTIONS = _pick_lesson()
EX = lesson_exercises(LESSON)
CHK = {}
for name, ex in lesson_checkers(LESSON).items(): CHK.setdefault(ex, name)
MOD = lessons()[LESSON][0]
IMPORTS = f"from {MOD} import " + ", ".join(CHK[e] for e in EX)

def _nb(sources): return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
def _solution_cells(): return [c.source for c in nbformat.read(SOLUTIONS, as_version=4).cells if c.cell_type == "code"]
def _check_cells(sources, e): return [i for i, s in enumerate(sources) if re.search(rf"\b{CHK[e]}\s*\(", s)]
def _one_line(s): s = " ".join(s.split()); return s if len(s) <= 500 else s[:497] + "..."

def _wrong(*args, **kwargs): raise RuntimeError("wrong answer")
WRONG_SRC = 'def wrong_{e}(*args, **kwargs): raise RuntimeError("wrong answer")\n{chk}(wrong_{e})'
def _failed(e):
    "The row detail of `_wrong` for exercise `e`, from the checker itself."
    import importlib
    r = getattr(importlib.import_module(MOD), CHK[e])(_wrong)
    assert r.status == "failed"
    return _one_line(f"{r.message} Hint: {r.hint}")

def _syntax_error(src):
    try: compile(src, "cell", "exec")
    except SyntaxError as e: return f"SyntaxError: {e.msg} (line {e.lineno})"
    raise AssertionError("the source compiles")

def _build(d):
    "Write the submissions into `d`; return the expected rows (student, notebook, exercise, status, detail)."
    exp, sol = [], _solution_cells()
    def add(student, rel, outcomes): exp.extend((student, rel, e, *outcomes[e]) for e in EX)
    # all correct: the worked solutions as they are
    nbformat.write(_nb(sol), d / "correct.ipynb")
    add("correct", "correct.ipynb", {e: ("passed", "") for e in EX})
    # cells deleted, in a folder of the student's own: every check of the last exercise is gone
    (d / "dana").mkdir(); (d / "dana" / "notes.txt").write_text("my notes")
    gone = set(_check_cells(sol, EX[-1]))
    nbformat.write(_nb([s for i, s in enumerate(sol) if i not in gone]), d / "dana" / "lesson.ipynb")
    assert all(not gone & set(_check_cells(sol, e)) for e in EX[:-1]), "a solutions cell checks two exercises at once"
    add("dana", "dana/lesson.ipynb", {e: ("not attempted", "no check cell") if e == EX[-1] else ("passed", "") for e in EX})
    # a file that is gone (a dangling link)
    (d / "ghost.ipynb").symlink_to(d / "nowhere.ipynb")
    add("ghost", "ghost.ipynb", {e: ("error", "the file is missing") for e in EX})
    # an infinite loop in the first exercise; the kernel is interrupted and the others still run
    loop = [IMPORTS, f"def slow_{EX[0]}(*args, **kwargs):\n    while True: pass\n{CHK[EX[0]]}(slow_{EX[0]})"] + \
           [WRONG_SRC.format(e=e, chk=CHK[e]) for e in EX[1:]]
    nbformat.write(_nb(loop), d / "loop.ipynb")
    add("loop", "loop.ipynb", {e: ("timed out", f"cell 2: over {CELL_TIMEOUT} s") if e == EX[0] else ("failed", _failed(e)) for e in EX})
    # not a notebook at all
    (d / "notjson.ipynb").write_text("{ this is not JSON")
    add("notjson", "notjson.ipynb", {e: ("error", "the file is not a notebook (not valid JSON)") for e in EX})
    # the stubs as handed out, plus a huge output and Colab's install line; the last exercise's check comes before its function
    stubs = ["!pip install -q tinygpt", IMPORTS, 'print("x" * 5_000_000)'] + \
            [f"def todo_{e}(*args, **kwargs): ...  # your code\n{CHK[e]}(todo_{e})" for e in EX[:-1]] + \
            [f"{CHK[EX[-1]]}(late_{EX[-1]})", f"def late_{EX[-1]}(*args, **kwargs): return None"]
    nbformat.write(_nb(stubs), d / "stubs.ipynb")
    add("stubs", "stubs.ipynb", {e: ("not attempted", "still a stub") if e != EX[-1] else
                                 ("error", f"cell {len(stubs) - 1}: NameError: name 'late_{e}' is not defined") for e in EX})
    # a syntax error in the first exercise's cell; the others are wrong
    bad = f"def broken_{EX[0]}(*args:\n    return None\n{CHK[EX[0]]}(broken_{EX[0]})"
    nbformat.write(_nb([IMPORTS, bad] + [WRONG_SRC.format(e=e, chk=CHK[e]) for e in EX[1:]]), d / "syntax.ipynb")
    add("syntax", "syntax.ipynb", {e: ("error", f"cell 2: {_syntax_error(bad)}") if e == EX[0] else ("failed", _failed(e)) for e in EX})
    # sys.exit() in every check cell of the first exercise; the cells after it still run
    hit = set(_check_cells(sol, EX[0]))
    nbformat.write(_nb([f'import sys; sys.exit("bye")\n{s}' if i in hit else s for i, s in enumerate(sol)]), d / "sysexit.ipynb")
    add("sysexit", "sysexit.ipynb", {e: ("error", f"cell {max(hit) + 1}: SystemExit: bye") if e == EX[0] else ("passed", "") for e in EX})
    # all wrong, from a notebook that writes files and leaves its folder
    wrong = [IMPORTS, 'import os\nos.makedirs("out", exist_ok=True)\nopen("out/x.txt", "w").write("x")\nos.chdir("..")\nopen("y.txt", "w").write("y")'] + \
            [WRONG_SRC.format(e=e, chk=CHK[e]) for e in EX]
    nbformat.write(_nb(wrong), d / "wrong.ipynb")
    add("wrong", "wrong.ipynb", {e: ("failed", _failed(e)) for e in EX})
    return exp

def _snapshot(d): return sorted((p.relative_to(d).as_posix(), p.read_bytes() if p.is_file() else None) for p in d.rglob("*"))

def test_grade_a_folder_of_submissions(tmp_path):
    subs = tmp_path / "submissions"; subs.mkdir()
    expected = _build(subs)
    before = _snapshot(subs)
    out = tmp_path / "report" / "grades.csv"; out.parent.mkdir()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert grade_command(subs, jobs=2, timeout=240, out=out, cell_timeout=CELL_TIMEOUT) == 0
    with open(out, newline="", encoding="utf-8") as f: rows = list(csv.reader(f))
    assert rows[0] == ["student", "notebook", "exercise", "status", "detail"]
    assert [tuple(r) for r in rows[1:]] == expected
    assert _snapshot(subs) == before, "grading changed the submissions folder"
    printed = buf.getvalue()
    assert f"Lesson {LESSON}: 9 submissions" in printed and all(e in printed for e in EX)
    page = out.with_suffix(".html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<script" not in page and all(s in page for s in ("correct", "wrong", "timed out"))
    assert not list(out.parent.glob(".*.tmp")), "a temp file was left beside the report"

def test_user_mistakes(tmp_path):
    with pytest.raises(FileNotFoundError, match="no submissions folder"): grade_command(tmp_path / "nowhere", out=tmp_path / "g.csv")
    with pytest.raises(ValueError, match="no notebooks"): grade_command(tmp_path, out=tmp_path / "g.csv")
    nbformat.write(_nb(["print('hello')"]), tmp_path / "a.ipynb")
    with pytest.raises(ValueError, match="cannot tell the lesson"): grade_command(tmp_path, out=tmp_path / "g.csv")
    with pytest.raises(ValueError, match="no exercises for lesson"): grade_command(tmp_path, lesson="99", out=tmp_path / "g.csv")
    with pytest.raises(ValueError, match="--jobs"): grade_command(tmp_path, lesson=LESSON, jobs=0, out=tmp_path / "g.csv")
    with pytest.raises(ValueError, match=r"\.csv"): grade_command(tmp_path, lesson=LESSON, out=tmp_path / "g.txt")
    with pytest.raises(FileNotFoundError, match="for the report"): grade_command(tmp_path, lesson=LESSON, out=tmp_path / "no" / "g.csv")
    assert not list(tmp_path.glob("g.*")), "a failed command wrote a report"
