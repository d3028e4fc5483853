"""Warm start (come/utils/warm.py, come/workflow/warm_server.py): a command run through the warm
server computes, prints and exits exactly as in a fresh interpreter; signals and a killed client
reach the job; a server refuses requests it cannot serve faithfully."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from come.utils import warm
from come.workflow import warm_server
from tests.engine.conftest import make_benchmark, tiny_run_config

from .helpers import REPO, tool_env


def _env(sock: str | None = None) -> dict[str, str]:
    env = dict(tool_env(), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop(warm.ENV_SOCKET, None)
    if sock:
        env[warm.ENV_SOCKET] = sock
    return env


def _come(args: list[str], sock: str | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "come", *args], env=_env(sock), capture_output=True,
                          text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm")
    sock, log = str(folder / "s.sock"), folder / "server.log"
    res = _come(["warm", "start", "--socket", sock, "--log", str(log), "--idle-timeout", "600"])
    assert res.returncode == 0, res.stderr + log.read_text()
    yield sock
    _come(["warm", "stop", "--socket", sock])


def _served(sock: str) -> int:
    answer = warm.request(sock, "ping")
    assert answer and answer["status"] == "ok"
    return int(answer["served"])


def _config(tmp_path: Path, steps: int, epochs: int = 1) -> Path:
    data_root, splits_root = make_benchmark(tmp_path / "bench", n_train=4, n_test=2)
    cfg = tiny_run_config(data_root, splits_root, ffn="moe", steps=steps, epochs=epochs)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _log(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_a_warm_training_equals_a_fresh_one(server, tmp_path):
    """Fails if the forked child differs from a fresh interpreter in anything the run computes
    (RNG state, threads, environment, working directory) or if the job never reached the server."""
    cfg = _config(tmp_path, steps=2)
    before = _served(server)
    cold = _come(["train", "--config", str(cfg), "--out", str(tmp_path / "cold")])
    hot = _come(["train", "--config", str(cfg), "--out", "warm"], sock=server, cwd=tmp_path)
    assert cold.returncode == 0, cold.stderr[-3000:]
    assert hot.returncode == 0, hot.stderr[-3000:]
    assert "fresh interpreter" not in hot.stderr, hot.stderr[-2000:]
    assert _served(server) == before + 2            # the train request and our ping before it
    a, b = tmp_path / "cold", tmp_path / "warm"
    assert _log(a) == _log(b) and len(_log(a)) == 2
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["datasets"] == mb["datasets"]
    sa, sb = (torch.load(d / "checkpoints" / "last.pt", weights_only=True)["model"] for d in (a, b))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (b / "routing.png").is_file() and (b / "predictions" / "DDTI.json").is_file()


def test_exit_status_and_output_pass_through(server, tmp_path):
    """Fails if the client loses the child's exit status, stdout or stderr."""
    for args in (["train", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")],
                 ["grid", "bogus"], ["train", "--help"], ["grid", "list", "--config", "config/tiny.yaml"]):
        cold, hot = _come(args, cwd=REPO), _come(args, sock=server, cwd=REPO)
        assert (hot.returncode, hot.stdout, hot.stderr) == (cold.returncode, cold.stdout, cold.stderr), args
    assert _come(["grid", "bogus"], sock=server).returncode == 2


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_signals_and_a_killed_client_reach_the_job(server, tmp_path, how):
    """Ctrl-C of the client interrupts the job (exit 130, as in a fresh interpreter); a client
    killed outright ends its job instead of leaving it running in the server."""
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the server's children")
    cfg = _config(tmp_path, steps=1000, epochs=50)          # hours: it must not end by itself
    spid = warm.request(server, "ping")["pid"]
    before = _children(spid)
    proc = subprocess.Popen([sys.executable, "-m", "come", "train", "--config", str(cfg), "--out",
                             str(tmp_path / "run")], env=_env(server), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "train_log.jsonl"
    deadline = time.time() + 300
    while not (log.exists() and log.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    job = _children(spid) - before
    assert len(job) == 1
    (child,) = job
    if how == "sigint":
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "interrupted" in err, err[-2000:]
    else:
        proc.kill()
        proc.wait(timeout=30)
    try:
        deadline = time.time() + 30
        while child in _children(spid) or Path(f"/proc/{child}").exists():
            assert time.time() < deadline, f"job {child} still running after its client ended"
            time.sleep(0.2)
    finally:
        if Path(f"/proc/{child}").exists():
            os.kill(child, signal.SIGKILL)


def test_the_job_takes_the_thread_count_of_its_client():
    """Snakemake sets OMP_NUM_THREADS per job; the forked child applies it to torch."""
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        warm_server._apply_threads({"OMP_NUM_THREADS": "2"})
        assert torch.get_num_threads() == 2
        warm_server._apply_threads({"PATH": "/bin"})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_refusals_and_fallbacks(tmp_path, monkeypatch):
    """A server refuses other code and other import-time settings (the client then runs the
    command itself); per-job thread counts are not a reason to refuse."""
    env = {"PATH": "/bin", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    ok = {"op": "run", "fingerprint": "f", "env": dict(env, OMP_NUM_THREADS="2", COME_WARM_SOCKET="x")}
    assert warm_server._refusal(ok, "f", env) is None
    assert "differs" in warm_server._refusal(dict(ok, fingerprint="g"), "f", env)
    bad = dict(ok, env=dict(env, PYTHONHASHSEED="1"))
    assert "PYTHONHASHSEED" in warm_server._refusal(bad, "f", env)
    extra = dict(ok, env=dict(env, TORCH_HOME="/x"))
    assert "TORCH_HOME" in warm_server._refusal(extra, "f", env)

    monkeypatch.setenv(warm.ENV_SOCKET, str(tmp_path / "nobody.sock"))
    assert warm.run_warm(["grid", "list"]) is None              # nobody listening
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert warm.run_warm(["train"]) is None                     # torchrun workers stay themselves


def test_fingerprint_follows_every_file_of_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "come"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 1\n")
    monkeypatch.setattr(warm, "package_dir", lambda: pkg)
    first = warm.fingerprint()
    assert warm.fingerprint() == first
    (pkg / "sub" / "b.py").write_text("y = 22\n")
    assert warm.fingerprint() != first


def test_socket_folder_must_be_private(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    with pytest.raises(warm.WarmError, match="group/other-writable"):
        warm.private_dir(str(folder / "s.sock"))
    warm.private_dir(str(tmp_path / "mine" / "s.sock"))
    assert (os.stat(tmp_path / "mine").st_mode & 0o777) == 0o700
