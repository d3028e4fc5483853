"""Warm start, server side: import the heavy libraries once, fork one child per `come` command.

    python -m come.workflow.warm_server --socket PATH [--owner-pid PID] [--idle-timeout S]

Started and stopped by `come warm start|stop` (the Snakefile's onstart / onsuccess / onerror on
local runs). The server stays single-threaded and never runs a torch operation, so each forked
child starts as a fresh interpreter would after the same imports (no thread pool, no CUDA
context, the default RNG seeds); the child then takes the client's cwd, environment, argv and
stdin/stdout/stderr, applies the per-job thread count to torch, and runs `come.cli.main`.
The client side and the protocol: come/utils/warm.py.

The server exits on `come warm stop` (SIGTERM), when the owner process (Snakemake) is gone, or
after --idle-timeout seconds without a request or a running child. Running children finish.
"""
from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback

from come.utils import warm

# What the jobs of a local workflow import before their first step (benchmarks/bench_demo_time.py)
PRELOAD = ("torch", "torch._dynamo", "timm", "numpy", "PIL.Image", "pycocotools.cocoeval",
           "come.cli", "come.config", "come.commands.train", "come.commands.evaluate",
           "come.engine.train", "come.engine.evaluate", "come.model.detector",
           "come.workflow.grid", "come.experts.bank")


def _reply(conn: socket.socket, **msg) -> None:
    conn.sendall(json.dumps(msg).encode() + b"\n")


def _refusal(header: dict, own_fp: str, own_env: dict[str, str]) -> str | None:
    """Why this server must not run the request, or None (`own_env`: the server's environment
    before its imports)."""
    if header.get("fingerprint") != own_fp:
        return "the come package or interpreter differs from the server's (edited since it started?)"
    env = header.get("env") or {}
    theirs, ours = warm.import_time_env(env), warm.import_time_env(own_env)
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        return "import-time environment differs: " + ", ".join(diff)
    return None


def _apply_threads(env: dict[str, str]) -> None:
    """Snakemake sets OMP_NUM_THREADS per job; a fresh torch would read it at start-up."""
    value = env.get("OMP_NUM_THREADS") or env.get("MKL_NUM_THREADS")
    if value and value.isdigit() and int(value) > 0 and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(value))


def _watch_client(conn: socket.socket) -> None:
    """In the child: the client went away (killed) -> end this job as its own process would."""
    try:
        while conn.recv(64):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _child(conn: socket.socket, own_fp: str, own_env: dict[str, str],
           added: dict[str, str], info: dict) -> None:
    """Runs in the forked child; never returns. `info`: the server's owner and requests so far."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        header, fds = warm.recv_request(conn)
        op = header.get("op")
        if op == "ping":
            _reply(conn, status="ok", pid=os.getppid(), fingerprint=own_fp, **info)
            os._exit(0)
        if op == "stop":
            _reply(conn, status="stopping")
            os.kill(os.getppid(), signal.SIGTERM)
            os._exit(0)
        reason = _refusal(header, own_fp, own_env) if op == "run" else f"unknown op {op!r}"
        if reason or len(fds) != 3:
            _reply(conn, status="refused", reason=reason or "stdin/stdout/stderr not passed")
            os._exit(0)
        sys.stdout.flush()
        sys.stderr.flush()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=os.isatty(stream.fileno()))
        os.chdir(header["cwd"])
        os.environ.clear()
        os.environ.update({**added, **header["env"]})
        sys.argv = ["come", *header["argv"]]
        _apply_threads(header["env"])
        _reply(conn, status="started", pid=os.getpid())
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        from come.cli import main
        try:
            code = int(main(list(header["argv"])) or 0)
        except SystemExit as exc:  # argparse errors, --help, commands that exit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int) and exc.code is not None:
                print(exc.code, file=sys.stderr)
        except BaseException:  # a bug: the traceback a fresh interpreter would print
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            _reply(conn, status="exit", code=code)
        except BaseException:
            pass
        os._exit(code)


def serve(sock_path: str, owner_pid: int = 0, idle_timeout: float = 600.0,
          preload: tuple[str, ...] = PRELOAD) -> int:
    """Import `preload`, listen on `sock_path`, fork per request until stopped."""
    t0 = time.perf_counter()
    start_env = dict(os.environ)
    for name in preload:
        importlib.import_module(name)
    own_fp = warm.fingerprint()
    # variables the imports set (torch sets TORCHINDUCTOR_CACHE_DIR): a fresh interpreter would
    # set them too, so the child keeps them unless the client's environment has its own value
    added = {k: v for k, v in os.environ.items() if k not in start_env}
    if threading.active_count() != 1:
        raise RuntimeError("warm server: an import started a thread; forking would be unsafe")
    warm.private_dir(sock_path)
    if os.path.exists(sock_path):
        if warm.request(sock_path, "ping", timeout=2.0):
            print(f"warm server: another server answers at {sock_path}; not starting", flush=True)
            return 1
        os.unlink(sock_path)          # a stale socket of ours (its server was killed)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(sock_path)
    finally:
        os.umask(old_umask)
    listener.listen(64)
    listener.settimeout(1.0)
    ident = os.stat(sock_path).st_ino
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: stopping.append(signum))
    print(f"warm server {os.getpid()}: {len(preload)} modules imported in "
          f"{time.perf_counter() - t0:.1f} s; listening on {sock_path}", flush=True)
    children: set[int] = set()
    served, last = 0, time.monotonic()
    try:
        while not stopping:
            while children:
                pid, _status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                children.discard(pid)
            if owner_pid and not _alive(owner_pid):
                print(f"warm server: owner {owner_pid} is gone; stopping", flush=True)
                break
            if not children and time.monotonic() - last > idle_timeout:
                print(f"warm server: idle for {idle_timeout:.0f} s; stopping", flush=True)
                break
            try:
                conn, _addr = listener.accept()
            except (TimeoutError, socket.timeout, InterruptedError):
                continue
            last = time.monotonic()
            pid = os.fork()
            if pid == 0:
                listener.close()
                _child(conn, own_fp, start_env, added, {"owner": owner_pid, "served": served})
            children.add(pid)
            served += 1
            conn.close()
    finally:
        listener.close()
        try:
            if os.stat(sock_path).st_ino == ident:
                os.unlink(sock_path)
        except OSError:
            pass
    print(f"warm server {os.getpid()}: stopped after {served} requests", flush=True)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m come.workflow.warm_server")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--owner-pid", type=int, default=0)
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    return serve(args.socket, args.owner_pid, args.idle_timeout)


if __name__ == "__main__":
    raise SystemExit(main())
