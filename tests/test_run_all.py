"""Every notebook works under JupyterLab's Run All (a real kernel, the inline backend, no nbdev flags, no network),
and the committed notebooks carry their executed outputs, figures included, and nothing they should not."""
import json, re
from pathlib import Path
import pytest
from run_notebooks import run_notebook

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
NOTEBOOKS = sorted(p for p in NBS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))
LESSONS = sorted(NBS.glob("[0-9][0-9]_*.ipynb"))
DRAWS = re.compile(r"\bplt\.|\.subplots\(|\bplot_\w+\(|display\(fig")
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:tmp|work|root|home)/[\w.-]+")

def _code_cells(nb): return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]

@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS)))
def test_run_all(nb):
    secs, err = run_notebook(nb, timeout=600)
    assert err is None, f"Run All stops in {nb.name}: {err}"

def _outputs_text(cells):
    for c in cells:
        for o in c.get("outputs", []):
            if o["output_type"] == "stream": yield "".join(o["text"])
            elif o["output_type"] in ("execute_result", "display_data"): yield "".join(o["data"].get("text/plain", ""))
            elif o["output_type"] == "error": yield f"ERROR {o.get('ename')}: {o.get('evalue')}"

@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.name)
def test_lesson_is_committed_with_outputs(nb):
    cells = _code_cells(nb)
    assert any(c.get("outputs") for c in cells), f"{nb.name} is committed without outputs: execute it (tests/run_notebooks.py --save)"
    text = "\n".join(_outputs_text(cells))
    assert "ERROR " not in text and "Traceback" not in text, f"{nb.name} has an error in its committed outputs"
    assert not MACHINE_PATH.search(text), f"{nb.name} shows a machine path in its outputs: {MACHINE_PATH.search(text).group(0)}"
    if any(DRAWS.search("".join(c["source"])) for c in cells):
        assert any("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", [])), \
            f"{nb.name} draws figures but none is stored as an image"

def test_notebooks_stay_small():
    total = sum(p.stat().st_size for p in NOTEBOOKS)
    assert total < 15e6, f"nbs/ notebooks take {total / 1e6:.1f} MB; keep figures at a modest resolution"
