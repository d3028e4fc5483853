"""Warm start, client side: hand a `come` command to a warm server instead of importing torch.

A local workflow runs ~120 short `come` processes; each used to import torch, torch._dynamo,
timm and the detector before doing any work (4-11 s of CPU on the 2-core reference machine,
about a quarter of the demo's work; docs/workflow.md, "Warm start"). A warm server
(`come warm start`, come/workflow/warm_server.py) imports all of that once and forks one child
per command; the child runs `come.cli.main(argv)` with the client's working directory,
environment and stdin/stdout/stderr file descriptors, and reports the exit status back.

Only the standard library is imported here: the client must stay cheap.

Protocol (one Unix stream socket per request, the socket file in a 0700 folder of the user):
  client -> server: MAGIC with fds 0, 1, 2 attached (SCM_RIGHTS), then an 8-byte big-endian
                    length and a JSON header: {"op": "run", "argv", "cwd", "env", "fingerprint"},
                    or {"op": "ping"|"stop"}
  server -> client: JSON lines: {"status": "refused", "reason"} | {"status": "started", "pid"},
                    then {"status": "exit", "code"}; ping -> {"status": "ok", "pid",
                    "fingerprint"}; stop -> {"status": "stopping"}.
A refused or unreachable server makes the client return None: the caller then runs the command
in its own process, so warm start can change how long a job takes, never what it computes.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import struct
import sys
import tempfile
from pathlib import Path

from come.utils.errors import ComeError

ENV_SOCKET = "COME_WARM_SOCKET"      # set by the workflow (Snakefile onstart) for local jobs
MAGIC = b"COMEWRM1"
# Read by a library when it is imported (so fixed in the server at its start), not when used:
# a request whose values differ from the server's is refused and runs in a fresh interpreter.
IMPORT_TIME_PREFIXES = ("PYTHON", "LD_", "TORCH", "PYTORCH", "KMP_", "MPLBACKEND", "TIMM_",
                        "HF_", "TRANSFORMERS_", "CUDA_", "CUBLAS_")
# (Thread counts such as OMP_NUM_THREADS, which Snakemake sets per job, may differ: the child
# applies them to torch, warm_server._apply_threads.)
# torchrun / torch.distributed workers must be their own processes
DISTRIBUTED_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")
NO_WARM_COMMANDS = ("warm",)


class WarmError(ComeError, RuntimeError):
    """The warm server cannot be used as asked (the message says which file and why)."""


def package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def fingerprint() -> str:
    """sha256 over the interpreter and every file of the imported `come` package (path, size,
    mtime): a server started before an edit of come/ refuses the edited code's requests."""
    h = hashlib.sha256(f"{sys.executable}\0{sys.version}\0{package_dir()}\0".encode())
    for root, dirs, files in os.walk(package_dir()):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            st = os.stat(os.path.join(root, name))
            h.update(f"{os.path.join(root, name)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    """The variables a request must share with the server (see IMPORT_TIME_PREFIXES)."""
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_PREFIXES)}


def default_socket(results: str | os.PathLike) -> str:
    """<tmp>/come-warm-<uid>/<hash of the results folder>.sock: short enough for AF_UNIX (108
    bytes), one server per results folder, in a folder only the user can enter."""
    key = hashlib.sha256(str(Path(results).resolve()).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"come-warm-{os.getuid()}", f"{key}.sock")


def private_dir(sock_path: str) -> None:
    """Create the socket's folder 0700, or refuse one that other users could write into."""
    folder = os.path.dirname(os.path.abspath(sock_path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.stat(folder)
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise WarmError(f"{folder}: the warm-start socket folder must belong to you and not be "
                        "group/other-writable (anyone who can connect runs commands as you)")


def send_request(conn: socket.socket, header: dict, fds: list[int]) -> None:
    socket.send_fds(conn, [MAGIC], fds)
    body = json.dumps(header).encode()
    conn.sendall(struct.pack(">Q", len(body)) + body)


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        out += chunk
    return out


def recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    msg, fds, _flags, _addr = socket.recv_fds(conn, len(MAGIC), 3)
    if msg != MAGIC:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("not a come warm-start request")
    (size,) = struct.unpack(">Q", _recv_exact(conn, 8))
    return json.loads(_recv_exact(conn, size)), list(fds)


def connect(sock_path: str, timeout: float = 5.0) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(sock_path)
    except OSError:
        conn.close()
        return None
    conn.settimeout(None)
    return conn


def request(sock_path: str, op: str, timeout: float = 5.0) -> dict | None:
    """A control request (ping / stop); None when no server answers."""
    conn = connect(sock_path, timeout)
    if conn is None:
        return None
    with conn:
        conn.settimeout(timeout)
        try:
            send_request(conn, {"op": op}, [])
            line = conn.makefile("rb").readline()
        except OSError:
            return None
    return json.loads(line) if line else None


def run_warm(argv: list[str]) -> int | None:
    """Run `come <argv>` in the warm server named by $COME_WARM_SOCKET; its exit status, or
    None when this process should run the command itself (no server, refused, not eligible)."""
    sock_path = os.environ.get(ENV_SOCKET)
    if not sock_path or any(v in os.environ for v in DISTRIBUTED_VARS):
        return None
    if not argv or next((a for a in argv if not a.startswith("-")), "") in NO_WARM_COMMANDS:
        return None
    conn = connect(sock_path)
    if conn is None:
        print(f"come: no warm server answers at {sock_path} (not ready yet, or stopped); starting "
              "a fresh interpreter", file=sys.stderr)
        return None
    with conn:
        header = {"op": "run", "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                  "fingerprint": fingerprint()}
        try:
            send_request(conn, header, [0, 1, 2])
            replies = conn.makefile("rb")
            first = json.loads(replies.readline() or b"{}")
        except (OSError, ValueError):
            return None
        if first.get("status") != "started":
            print(f"come: warm server refused ({first.get('reason', 'no answer')}); starting a "
                  "fresh interpreter", file=sys.stderr)
            return None
        return _wait(replies, int(first["pid"]))


def _wait(replies, pid: int) -> int:
    """Wait for the child's exit status; signals to this client are passed on to the child."""
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            line = replies.readline()
            break
        except InterruptedError:
            continue
    if line:
        return int(json.loads(line).get("code", 1))
    if received:
        return 128 + received[-1]
    print(f"come: warm child {pid} ended without an exit status (killed?)", file=sys.stderr)
    return 1
