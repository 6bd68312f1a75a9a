"""The docs site: sidebar lists every lesson, nbdev's notebook processing succeeds, Quarto renders (when installed),
and README.md is the course overview of nbs/index.ipynb.

nbdev makes README.md with Quarto (`nbdev-readme`), which CI does not have, so README.md is made from
nbs/index.ipynb by `index_to_readme` below: run `python tests/test_docs.py` after editing the overview."""
import fnmatch, json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
BIN = Path(sys.executable).parent
LESSONS = ["00_tokenizer", "01_data", "02_attention", "03_layers", "04_model", "05_generate", "06_moe", "07_kernels",
           "08_training", "09_hub", "10_widgets", "11_evaluate", "12_serve", "13_cli"]
README_HEADER = "<!-- Made from nbs/index.ipynb by `python tests/test_docs.py`: edit that notebook, not this file. -->\n\n"

def index_to_readme(nb_path=NBS / "index.ipynb"):
    "README.md text: the markdown cells of the overview notebook, with lesson links pointing into nbs/."
    nb = json.loads(Path(nb_path).read_text())
    if any(c["cell_type"] == "code" for c in nb["cells"]): raise ValueError("index.ipynb must hold only markdown cells")
    text = "\n\n".join("".join(c["source"]).strip() for c in nb["cells"]) + "\n"
    return README_HEADER + re.sub(r"\]\((?!https?://|#|/)([^)\s]+\.ipynb)\)", r"](nbs/\1)", text)

def _sidebar_entries(items):
    "Flatten Quarto sidebar contents into (kind, value) pairs: ('file', path) and ('auto', glob)."
    for it in items:
        if isinstance(it, str): yield "file", it
        elif "auto" in it: yield "auto", it["auto"]
        elif "href" in it: yield "file", it["href"]
        elif "contents" in it:
            c = it["contents"]
            yield from _sidebar_entries([c] if isinstance(c, str) else c)

def _sidebar(): return yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]

def _commands(markdown): return [c.strip() for c in re.findall(r"```(?:sh|bash)\n(.+?)\n```", markdown, flags=re.S)]

# --- sidebar and README, no tools needed ---------------------------------------------------------------------
def test_sidebar_lists_every_lesson_in_order():
    sb = _sidebar()
    lessons = next(s for s in sb["contents"] if isinstance(s, dict) and s.get("section") == "Lessons")["contents"]
    assert lessons == [f"{n}.ipynb" for n in LESSONS], "the Lessons section must list lessons 00-13 in order"
    on_disk = sorted(p.name for p in NBS.glob("[0-9][0-9]_*.ipynb"))
    listed = {v for k, v in _sidebar_entries(sb["contents"]) if k == "file"}
    assert not [n for n in on_disk if n not in listed], "a lesson notebook is missing from nbs/sidebar.yml"
    missing = [f for f in listed if not (NBS / f).exists()]
    assert not missing, f"nbs/sidebar.yml lists notebooks that do not exist: {missing}"
    assert "index.ipynb" in listed

def test_sidebar_covers_the_solutions():
    globs = [v for k, v in _sidebar_entries(_sidebar()["contents"]) if k == "auto"]
    assert any(g.startswith("solutions/") for g in globs), "the sidebar needs a Solutions section"
    for p in sorted((NBS / "solutions").glob("*.ipynb")):
        rel = p.relative_to(NBS).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not in the sidebar"

def test_readme_is_made_from_index():
    assert (ROOT / "README.md").read_text() == index_to_readme(), "README.md is stale: run `python tests/test_docs.py`"

def test_two_commands_agree_in_index_readme_and_ci():
    nb = json.loads((NBS / "index.ipynb").read_text())
    index_cmds = _commands("\n\n".join("".join(c["source"]) for c in nb["cells"]))
    readme_cmds = _commands((ROOT / "README.md").read_text())
    assert len(index_cmds) == 2 and index_cmds == readme_cmds, (index_cmds, readme_cmds)
    ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert index_cmds[1] in ci_lines, "the test command of the overview must be a line of .ci/run"
    assert "nbdev-test" in index_cmds[1] and "pytest" in index_cmds[1] and "tinygpt generate" in index_cmds[0]

def test_index_links_every_lesson():
    text = (NBS / "index.ipynb").read_text()
    for n in LESSONS: assert f"]({n}.ipynb)" in text, f"the lesson map of index.ipynb does not link {n}"

# --- nbdev's processing and Quarto -----------------------------------------------------------------------------
def _copy_project(dst):
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "_proc", "_docs", "*.egg-info")
    for name in ("pyproject.toml", "README.md"): shutil.copy(ROOT / name, dst / name)
    for name in ("nbs", "tinygpt"): shutil.copytree(ROOT / name, dst / name, ignore=ignore)

# `nbdev-proc-nbs` exactly, except that without Quarto on PATH it would try to download and `sudo dpkg -i` Quarto
# first (nbdev.quarto._ensure_quarto); processing the notebooks does not need Quarto, so that step is skipped.
PROC = ("import shutil, nbdev.quarto as q\n"
        "if not shutil.which('quarto'): q._ensure_quarto = lambda: None\n"
        "q.nbdev_proc_nbs.__wrapped__()\n")

@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    d = tmp_path_factory.mktemp("site")
    _copy_project(d)
    env = {**os.environ, "PYTHONPATH": str(d)}; env.pop("IN_TEST", None)
    r = subprocess.run([sys.executable, "-c", PROC], cwd=d, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (f"nbdev-proc-nbs failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\nNB: for the docs nbdev runs every exported "
                               "cell and every cell holding an import, nothing else: keep imports in cells of their own.")
    return d

def test_proc_nbs_processes_every_lesson(processed):
    proc = processed / "_proc"
    for f in ("_quarto.yml", "sidebar.yml", "nbdev.yml", "index.ipynb", "styles.css"):
        assert (proc / f).exists(), f"_proc/{f} missing after nbdev-proc-nbs"
    assert (proc / "sidebar.yml").read_text() == (NBS / "sidebar.yml").read_text(), "nbdev rewrote the custom sidebar"
    for nb in NBS.glob("[0-9][0-9]_*.ipynb"):
        out = proc / nb.name
        assert out.exists(), f"{nb.name} was not processed"
        cells = json.loads(out.read_text())["cells"]
        assert not any("".join(c["source"]).lstrip().startswith("#| default_exp") for c in cells), f"{nb.name}: directives left in"
    for nb in (NBS / "solutions").glob("*.ipynb"): assert (proc / "solutions" / nb.name).exists(), f"solutions/{nb.name} not processed"

def _images(nb_path):
    return sum("image/png" in o.get("data", {}) for c in json.loads(Path(nb_path).read_text())["cells"] for o in c.get("outputs", []))

def test_processed_pages_keep_their_outputs_and_figures(processed):
    "The site is rendered from the stored outputs: every figure of every page survives nbdev's processing."
    proc, pages = processed / "_proc", [p for p in NBS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    for nb in pages:
        rel = nb.relative_to(NBS)
        assert (proc / rel).exists(), f"{rel} was not processed"
        assert _images(proc / rel) >= _images(nb), f"{rel}: figures lost in processing"
    assert sum(_images(nb) for nb in pages) >= 20, "the lessons should show their figures"

def test_every_sidebar_page_exists():
    for kind, value in _sidebar_entries(_sidebar()["contents"]):
        if kind == "file": assert (NBS / value).exists(), f"the sidebar lists {value}, which does not exist"
        else: assert list(NBS.glob(value)), f"the sidebar's {value!r} matches nothing"

def test_quarto_renders_the_site(request):
    if not shutil.which("quarto"): pytest.skip("Quarto is not installed (https://quarto.org): the site is not rendered here")
    processed = request.getfixturevalue("processed")
    r = subprocess.run(["quarto", "render", str(processed / "_proc"), "--no-execute"], cwd=processed, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    docs = processed / "_docs"
    assert (docs / "index.html").exists()
    for n in LESSONS:
        if (NBS / f"{n}.ipynb").exists(): assert (docs / f"{n}.html").exists() or list(docs.glob(f"{n.split('_', 1)[1]}*.html")), n

if __name__ == "__main__":
    (ROOT / "README.md").write_text(index_to_readme())
    print("wrote", ROOT / "README.md")
