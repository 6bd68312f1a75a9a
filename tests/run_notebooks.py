"""Execute notebooks the way JupyterLab's Run All does: a real ipykernel, the normal inline plotting backend,
no nbdev test flags, no network.

    python tests/run_notebooks.py nbs/00_tokenizer.ipynb ...        # run, report errors and time per notebook
    python tests/run_notebooks.py --save nbs/*.ipynb                # also write the outputs back (then nbdev-clean)

"No network" means: the Hugging Face libraries are put in offline mode and every proxy variable points at a closed
port on 127.0.0.1, so any download attempt fails fast instead of reaching the internet.
Used by tests/test_run_all.py and by contributors to commit executed outputs."""
import argparse, os, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
from tinygpt.exercises.grade import OFFLINE_ENV, DROP_ENV   # the one definition of "no network", shared with `tinygpt grade`

def run_notebook(path, timeout=600, save=False):
    "Execute `path` top to bottom in its own folder; return (seconds, error or None)."
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in set(OFFLINE_ENV) | set(DROP_ENV)}
    for k in DROP_ENV: os.environ.pop(k, None)
    os.environ.update(OFFLINE_ENV)                        # the kernel inherits this process's environment
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False, resources={"metadata": {"path": str(path.parent)}})
        t0, err = time.time(), None
        try: client.execute()
        except CellExecutionError as e: err = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        except Exception as e: err = f"{type(e).__name__}: {e}"
        secs = time.time() - t0
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    if save and err is None: nbformat.write(nb, path)
    return secs, err

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--save", action="store_true", help="write the executed outputs back into each notebook")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    a = p.parse_args(argv)
    failed = 0
    for nb in a.notebooks:
        secs, err = run_notebook(nb, a.timeout, a.save)
        print(f"{'FAIL' if err else 'ok  '} {secs:6.1f}s  {nb}" + (f"\n      {err}" if err else ""), flush=True)
        failed += err is not None
    return 1 if failed else 0

if __name__ == "__main__": sys.exit(main())
