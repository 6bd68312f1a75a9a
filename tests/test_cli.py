"""Tests of the `tinygpt` command line (nbs/13_cli.ipynb): train, stop-at + resume, generate, export, and the user
mistakes that must give one line `tinygpt: error: ...` and a non-zero exit (never a traceback, never a lost run).
The `eval`, `serve` and `grade` subcommands are tested for their wiring, with stand-ins for the functions they call."""
import importlib.abc, json, os, signal, subprocess, sys, time, types
from pathlib import Path
import pytest, torch
from tinygpt import cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--preset", "tiny", "--data", "sample", "--batch-size", "2", "--block-size", "32", "--max-steps", "6",
         "--eval-every", "3", "--eval-batches", "1", "--dtype", "fp32", "--device", "cpu", "--seed", "0", "--quiet"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
CMD = [sys.executable, "-m", "tinygpt.cli"]

def tinygpt(*argv, cwd=None):
    "Run `python -m tinygpt.cli ARGV` -> CompletedProcess (text)."
    return subprocess.run([*CMD, *map(str, argv)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)

def shell(script, cwd):
    "Run a bash `script` in which $TINYGPT is the command line -> CompletedProcess."
    return subprocess.run(["bash", "-c", script], cwd=cwd, env={**ENV, "TINYGPT": " ".join(CMD)}, capture_output=True,
                          text=True, timeout=600)

def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r

def one_line_error(r, *words):
    "A user mistake: non-zero exit, exactly one line on stderr naming the problem, no traceback."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0, f"expected a failure, got exit 0:\n{r.stdout}"
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    assert lines[0].startswith("tinygpt: "), lines[0]
    for w in words: assert w.lower() in lines[0].lower(), f"{w!r} not in {lines[0]!r}"
    return lines[0]

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "Two runs of the same 6 steps: straight, and stopped at 3 then resumed (settings and data from the run folder)."
    d = tmp_path_factory.mktemp("runs")
    ok(tinygpt("train", *SMALL, "--out", d / "straight"))
    ok(tinygpt("train", *SMALL, "--out", d / "resumed", "--stop-at", "3"))
    ok(tinygpt("train", "--out", d / "resumed", "--resume", "--quiet"))
    return d

def _ck(path): return torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)
def _metrics(path): return [json.loads(l) for l in (path / "metrics.jsonl").read_text().splitlines()]
def _snapshot(run): return {n: (run / n).read_bytes() for n in ("checkpoint.pt", "metrics.jsonl", "cli.json") if (run / n).exists()}

def test_stop_at_then_resume_equals_straight_run(runs):
    a, b = _ck(runs / "straight"), _ck(runs / "resumed")
    assert a["step"] == b["step"] == 6
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]: assert torch.equal(a["model"][k], b["model"][k]), k
    ma, mb = _metrics(runs / "straight"), _metrics(runs / "resumed")
    assert [m["step"] for m in mb] == list(range(1, 7))
    assert [m["loss"] for m in ma] == [m["loss"] for m in mb]
    assert ma[-1]["val_loss"] == mb[-1]["val_loss"]
    assert json.loads((runs / "resumed" / "cli.json").read_text())["data"] == "sample"

def test_stop_at_stops_with_a_checkpoint(tmp_path):
    ok(tinygpt("train", *SMALL, "--out", tmp_path, "--stop-at", "2"))
    assert _ck(tmp_path)["step"] == 2
    assert len(_metrics(tmp_path)) == 2

def test_generate_streams_and_seed_repeats(runs):
    argv = ["generate", "--checkpoint", runs / "straight", "--prompt", "Once upon a time", "--max-new-tokens", "8", "--seed", "3"]
    r1, r2 = ok(tinygpt(*argv)), ok(tinygpt(*argv))
    assert r1.stdout.startswith("Once upon a time") and len(r1.stdout) > len("Once upon a time\n")
    assert r1.stdout == r2.stdout

def test_generate_from_the_bundled_model():
    if not (ROOT / "tinygpt" / "assets" / "default" / "model.safetensors").exists(): pytest.skip("no bundled model")
    r = ok(tinygpt("generate", "--prompt", "Once upon a time", "--max-new-tokens", "20", "--seed", "0"))
    assert r.stdout.startswith("Once upon a time") and len(r.stdout.split()) > 4

def test_export_round_trip(runs, tmp_path):
    ok(tinygpt("export", runs / "straight", tmp_path / "model", "--dtype", "fp16"))
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in (tmp_path / "model").iterdir()}
    r = ok(tinygpt("generate", "--checkpoint", tmp_path / "model", "--prompt", "Hi", "--max-new-tokens", "3", "--seed", "0"))
    assert r.stdout.startswith("Hi")

# ---- runs are never lost or poisoned

def test_refused_resume_leaves_the_run_untouched(tmp_path):
    run = tmp_path / "run"
    ok(tinygpt("train", *SMALL, "--out", run, "--stop-at", "2"))
    before = _snapshot(run)
    one_line_error(tinygpt("train", "--out", run, "--resume", "--preset", "tiny-moe"), "--preset tiny-moe", "resume without --preset")
    one_line_error(tinygpt("train", "--out", run, "--resume", "--max-steps", "2"), "already at step 2")
    one_line_error(tinygpt("train", "--out", run, "--resume", "--overwrite"), "--resume", "--overwrite")
    assert _snapshot(run) == before                              # cli.json, checkpoint and metrics as they were
    ok(tinygpt("train", "--out", run, "--resume", "--quiet"))   # and a plain resume still works
    assert _ck(run)["step"] == 6 and [m["step"] for m in _metrics(run)] == list(range(1, 7))

def test_existing_run_needs_resume_or_overwrite(runs, tmp_path):
    run = tmp_path / "run"
    ok(tinygpt("train", *SMALL, "--out", run, "--stop-at", "3"))
    before = _snapshot(run)
    one_line_error(tinygpt("train", *SMALL, "--out", run), "already holds a training run", "--resume", "--overwrite")
    assert _snapshot(run) == before
    ok(tinygpt("train", *SMALL, "--out", run, "--max-steps", "2", "--overwrite"))   # explicitly: start again
    assert _ck(run)["step"] == 2 and [m["step"] for m in _metrics(run)] == [1, 2]

def test_out_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(tinygpt("train", *SMALL, "--out", tmp_path / "afile"), "afile", "not a folder")
    one_line_error(tinygpt("train", *SMALL, "--out", tmp_path / "afile" / "sub"), "afile", "not a folder")
    assert (tmp_path / "afile").read_text() == "x"

@pytest.mark.parametrize("content", ["", "{bad", "[1, 2]", '{"data": 5}'])
def test_bad_cli_json_is_named(tmp_path, content):
    run = tmp_path / "run"
    ok(tinygpt("train", *SMALL, "--out", run, "--stop-at", "2"))
    (run / "cli.json").write_text(content)
    before = _snapshot(run)
    one_line_error(tinygpt("train", "--out", run, "--resume"), "cli.json")
    assert _snapshot(run) == before

def test_ctrl_c_saves_and_exits_130(tmp_path):
    run = tmp_path / "run"
    argv = [*SMALL, "--max-steps", "100000", "--ckpt-every", "0", "--eval-every", "0"]
    p = subprocess.Popen([*CMD, "train", *argv, "--out", str(run)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not ((run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 2):
            assert p.poll() is None and time.time() < deadline, "training did not start"
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    assert r.returncode == 130, r
    one_line_error(r, "interrupted", "--resume")
    assert _ck(run)["step"] >= 2                                   # the trainer saved on the way out

# ---- tracebacks for user mistakes

def test_missing_checkpoint(tmp_path):
    one_line_error(tinygpt("generate", "--checkpoint", tmp_path / "nope", "--prompt", "Hi"), "no checkpoint")

def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"; bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    one_line_error(tinygpt("generate", "--checkpoint", bad, "--prompt", "Hi"), "bad.pt")
    folder = tmp_path / "model"; folder.mkdir()
    (folder / "config.json").write_text("{}"); (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    one_line_error(tinygpt("generate", "--checkpoint", folder, "--prompt", "Hi"))

def test_resume_without_a_checkpoint(tmp_path):
    one_line_error(tinygpt("train", *SMALL, "--out", tmp_path / "empty", "--resume"), "checkpoint")

def test_corrupt_training_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    one_line_error(tinygpt("train", *SMALL, "--out", tmp_path, "--resume"), "checkpoint")
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"garbage"

def test_unknown_preset(tmp_path):
    one_line_error(tinygpt("train", "--preset", "huge", "--data", "sample", "--out", tmp_path), "unknown preset", "tiny")

def test_empty_data(tmp_path):
    empty = tmp_path / "empty.txt"; empty.write_text("\n \n")
    one_line_error(tinygpt("train", "--data", empty, "--out", tmp_path / "run"), "empty")
    one_line_error(tinygpt("train", "--data", tmp_path / "missing.txt", "--out", tmp_path / "run"), "no such file")

@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "sample", "--out", "x", "--lr", "abc"], ["--lr", "not a number"]),
    (["train", "--data", "sample", "--out", "x", "--lr=-1e-3"], ["--lr", "greater than 0"]),
    (["train", "--data", "sample", "--out", "x", "--max-steps", "0"], ["--max-steps"]),
    (["train", "--data", "sample", "--out", "x", "--batch-size", "2.5"], ["--batch-size", "whole number"]),
    (["train", "--data", "sample", "--out", "x", "--batch-size", "1000000000"], ["--batch-size", "1..65536"]),
    (["train", "--data", "sample", "--out", "x", "--max-steps", "10", "--stop-at", "11"], ["stop-at", "1..10"]),
    (["train", "--data", "sample", "--out", "x", "--seed", str(2**70)], ["--seed", f"0..{2**63 - 1}"]),
    (["train", "--data", "sample", "--out", "x", "--seed", "-1"], ["--seed", "0.."]),
    (["generate", "--prompt", "Hi", "--seed", str(2**70)], ["--seed", f"0..{2**63 - 1}"]),
    (["generate", "--prompt", "Hi", "--top-p", "1.5"], ["--top-p"]),
    (["generate", "--prompt", "Hi", "--temperature", "-1"], ["--temperature"]),
    (["generate", "--prompt", "Hi", "--temperature", "1e-40"], ["--temperature", "0.01"]),
    (["generate", "--prompt", "Hi", "--max-new-tokens", "many"], ["--max-new-tokens"]),
    (["generate", "--prompt", "Hi", "--max-new-tokens", "1000000000000"], ["--max-new-tokens", "1..100000"]),
    (["generate", "--prompt", "Hi", "--repetition-penalty", "1e-40"], ["--repetition-penalty", "0.01"]),
    (["generate", "--prompt", "Hi", "--repetition-penalty", "1e40"], ["--repetition-penalty", "100"]),
    (["export", "run", "out", "--card", "{bad"], ["--card", "not valid JSON"]),
    (["export", "run", "out", "--card", "[1]"], ["--card", "JSON object"]),
    (["serve", "--port", "70000"], ["--port", "1..65535"]),
    (["grade", "subs", "--jobs", "0"], ["--jobs"]),
    (["grade", "subs", "--timeout", "-1"], ["--timeout"]),
    (["grade", "subs", "--lesson", "x"], ["--lesson"]),
    (["eval", "--samples", "-1"], ["--samples"]),
])
def test_bad_values(tmp_path, argv, words):
    r = tinygpt(*argv, cwd=tmp_path)
    assert r.returncode == 2
    one_line_error(r, *words)

def test_resume_a_finished_run(runs):
    one_line_error(tinygpt("train", "--out", runs / "straight", "--resume", "--quiet"), "already at step 6")

def test_divergence_is_one_line(tmp_path):
    one_line_error(tinygpt("train", *SMALL, "--out", tmp_path / "run", "--lr", "1e6"), "loss is", "learning rate")

def test_export_into_a_file_path(runs, tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(tinygpt("export", runs / "straight", tmp_path / "afile" / "sub"), "afile", "not a folder")
    one_line_error(tinygpt("export", runs / "straight", tmp_path / "afile"), "afile", "not a folder")
    assert (tmp_path / "afile").read_text() == "x"

def test_export_into_the_run_folder(runs):
    before = sorted(p.name for p in (runs / "straight").iterdir())
    one_line_error(tinygpt("export", runs / "straight", runs / "straight"), "training run folder")
    one_line_error(tinygpt("export", runs / "straight" / "checkpoint.pt", runs / "straight"), "training run folder")
    assert sorted(p.name for p in (runs / "straight").iterdir()) == before

def test_export_eval_data_plain_text(runs, tmp_path):
    text = tmp_path / "held_out.txt"
    text.write_text("Once upon a time there was a little cat. The cat liked milk.\n\n" * 20)
    ok(tinygpt("export", runs / "straight", tmp_path / "model", "--eval-data", text, "--card", '{"data": "test"}'))
    card = (tmp_path / "model" / "README.md").read_text()
    line = next(l for l in card.splitlines() if "Held-out loss" in l)
    assert any(ch.isdigit() for ch in line), line

def test_generate_with_stdout_closed(runs, tmp_path):
    r = shell(f"$TINYGPT generate --checkpoint {runs / 'straight'} --prompt Hi --max-new-tokens 3 >&-", tmp_path)
    one_line_error(r, "standard output is closed")

def test_generate_into_a_closed_pipe(runs, tmp_path):
    r = shell(f"$TINYGPT generate --checkpoint {runs / 'straight'} --prompt Once --max-new-tokens 300 --seed 0 2>err.txt "
              "| head -c 5; exit ${PIPESTATUS[0]}", tmp_path)
    assert r.returncode == 0, (r.returncode, (tmp_path / "err.txt").read_text())
    assert r.stdout == "Once "[:5] or len(r.stdout) == 5
    assert (tmp_path / "err.txt").read_text() == ""

# ---- the module runs as a script, but never inside a notebook kernel

def test_main_guard_does_not_run_in_a_kernel():
    "A kernel runs cells as __main__ without a __file__: the module's last line must not call main() there."
    src = Path(cli.__file__).read_text()
    ns = {"__name__": "__main__", "__package__": "tinygpt"}                 # no __file__, as in a kernel
    exec(compile(src, "<kernel cell>", "exec"), ns)                        # would raise SystemExit if main() ran
    assert callable(ns["main"])

def test_python_dash_m_runs_main():
    r = tinygpt("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("train", "generate", "export", "eval", "serve", "grade"))

# ---- eval / serve / grade: the wiring, with stand-ins for the functions they call

@pytest.fixture
def standin(monkeypatch):
    "Replace module `name` by a stand-in whose function `fn` records its arguments and returns `result` (or raises it)."
    calls = []
    def make(name, fn, result=0):
        def f(*a, **kw):
            calls.append((a, kw))
            if isinstance(result, BaseException): raise result
            return result
        mod = types.ModuleType(name); setattr(mod, fn, f)
        monkeypatch.setitem(sys.modules, name, mod)
        return calls
    return make

def run_main(argv, capsys):
    "cli.main(argv) in this process -> (status, stdout, stderr); argparse's exits give their status."
    try: status = cli.main([str(a) for a in argv])
    except SystemExit as e: status = e.code
    out = capsys.readouterr()
    return status, out.out, out.err

def test_eval_wiring(standin, capsys):
    calls = standin("tinygpt.evaluate", "eval_command")
    assert run_main(["eval"], capsys)[0] == 0
    assert calls[-1] == ((), dict(checkpoint=None, data=None, out=None, n_samples=16, seed=0, max_new_tokens=128))
    argv = ["eval", "--checkpoint", "m", "--data", "d.txt", "--out", "r.json", "--samples", "4", "--seed", "3", "--max-new-tokens", "9"]
    assert run_main(argv, capsys)[0] == 0
    assert calls[-1] == ((), dict(checkpoint="m", data="d.txt", out="r.json", n_samples=4, seed=3, max_new_tokens=9))

def test_eval_status_and_errors(standin, capsys):
    standin("tinygpt.evaluate", "eval_command", result=1)
    assert run_main(["eval"], capsys)[0] == 1
    standin("tinygpt.evaluate", "eval_command", result=FileNotFoundError("no checkpoint at m"))
    status, _, err = run_main(["eval", "--checkpoint", "m"], capsys)
    assert status == 2 and err == "tinygpt: error: no checkpoint at m\n"

def test_serve_wiring(standin, capsys):
    calls = standin("tinygpt.serve", "run_server", result=None)
    assert run_main(["serve"], capsys)[0] == 0
    assert calls[-1] == ((), dict(checkpoints=(), host="127.0.0.1", port=8000, max_prompt_tokens=1024, max_new_tokens=512,
                                  fast_decoding=False))
    argv = ["serve", "--checkpoint", "a", "--checkpoint", "b", "--host", "0.0.0.0", "--port", "9000",
            "--max-prompt-tokens", "64", "--max-new-tokens", "32", "--fast-decoding"]
    assert run_main(argv, capsys)[0] == 0
    assert calls[-1] == ((), dict(checkpoints=("a", "b"), host="0.0.0.0", port=9000, max_prompt_tokens=64, max_new_tokens=32,
                                  fast_decoding=True))

@pytest.mark.parametrize("missing", ["fastapi", "uvicorn"])
def test_serve_without_its_extra(standin, capsys, missing):
    standin("tinygpt.serve", "run_server", result=ModuleNotFoundError(f"No module named '{missing}'", name=missing))
    status, _, err = run_main(["serve"], capsys)
    assert status == 1 and err == 'tinygpt: error: tinygpt serve needs FastAPI and uvicorn: pip install "tinygpt[serve]"\n'

def test_serve_module_that_cannot_import_fastapi(monkeypatch, capsys):
    "tinygpt.serve importing fastapi at its top: the import of the module itself fails."
    class NoFastAPI(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tinygpt.serve": raise ModuleNotFoundError("No module named 'fastapi'", name="fastapi")
    monkeypatch.delitem(sys.modules, "tinygpt.serve", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoFastAPI(), *sys.meta_path])
    status, _, err = run_main(["serve"], capsys)
    assert status == 1 and 'pip install "tinygpt[serve]"' in err and err.count("\n") == 1

def test_serve_other_errors(standin, capsys):
    standin("tinygpt.serve", "run_server", result=ValueError("no checkpoint at x"))
    assert run_main(["serve", "--checkpoint", "x"], capsys)[:3:2] == (2, "tinygpt: error: no checkpoint at x\n")
    standin("tinygpt.serve", "run_server", result=KeyboardInterrupt())
    assert run_main(["serve"], capsys)[0] == 130
    standin("tinygpt.serve", "run_server", result=ModuleNotFoundError("No module named 'numpyy'", name="numpyy"))
    with pytest.raises(ModuleNotFoundError): cli.main(["serve"])     # not the serve extra: a bug, keeps its traceback

def test_grade_wiring(standin, capsys):
    calls = standin("tinygpt.exercises.grade", "grade_command")
    assert run_main(["grade", "subs"], capsys)[0] == 0
    assert calls[-1] == (("subs",), dict(lesson=None, jobs=1, timeout=120, out=None))
    assert run_main(["grade", "subs", "--lesson", "5", "--jobs", "2", "--timeout", "30", "--out", "r.csv"], capsys)[0] == 0
    assert calls[-1] == (("subs",), dict(lesson="05", jobs=2, timeout=30.0, out="r.csv"))
    standin("tinygpt.exercises.grade", "grade_command", result=FileNotFoundError("no notebooks in subs"))
    assert run_main(["grade", "subs"], capsys)[:3:2] == (2, "tinygpt: error: no notebooks in subs\n")

def test_report_files_under_a_file(standin, capsys, tmp_path):
    standin("tinygpt.exercises.grade", "grade_command"); standin("tinygpt.evaluate", "eval_command")
    (tmp_path / "afile").write_text("x")
    for argv in (["grade", "subs", "--out", tmp_path / "afile" / "r.csv"], ["eval", "--out", tmp_path / "afile" / "r.json"]):
        status, _, err = run_main(argv, capsys)
        assert status == 2 and "not a folder" in err and err.count("\n") == 1
