"""`come warm start|stop|status`: the warm server that saves each local job its torch import.

  start   start a server for --socket (or the default one of --results) unless one answers;
          returns once it accepts requests, and prints the socket path
  stop    ask it to stop (running jobs finish); no server is not an error
  status  exit 0 and print its pid when a server answers, exit 1 otherwise

Jobs use it when $COME_WARM_SOCKET names its socket (the Snakefile sets it on local runs);
come/utils/warm.py and come/workflow/warm_server.py hold the protocol and the server, and
docs/workflow.md ("Warm start") what it saves and what it guarantees.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from come.utils import warm


def configure(parser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--socket", default=None,
                        help="socket path (default: one per --results folder under $TMPDIR)")
    parser.add_argument("--results", default="results", help="results folder (default socket)")
    parser.add_argument("--owner-pid", type=int, default=0,
                        help="start: the server stops when this process is gone")
    parser.add_argument("--idle-timeout", type=float, default=600.0,
                        help="start: stop after this many seconds without a request")
    parser.add_argument("--log", default=None, help="start: the server's log file")
    parser.add_argument("--wait", type=float, default=300.0,
                        help="start: seconds to wait for the server's imports (0: return at once;"
                             " jobs that come before it is ready start their own interpreter)")


def run(args) -> int:
    sock = args.socket or warm.default_socket(args.results)
    if args.action == "status":
        answer = warm.request(sock, "ping")
        if not answer:
            print(f"no warm server at {sock}")
            return 1
        same = answer.get("fingerprint") == warm.fingerprint()
        print(f"warm server {answer.get('pid')} at {sock}"
              + ("" if same else " (started from other code: it refuses this code's requests)"))
        return 0
    if args.action == "stop":
        answer = warm.request(sock, "stop")
        print(f"warm server at {sock}: " + ("stopping" if answer else "none running"))
        return 0
    return _start(sock, args)


def _start(sock: str, args) -> int:
    answer = warm.request(sock, "ping")
    if answer and answer.get("fingerprint") == warm.fingerprint() and answer.get("owner") == args.owner_pid:
        print(f"warm server {answer.get('pid')} already running at {sock}")
        return 0
    if answer:  # started from other code, or for another (finished) Snakemake: replace it
        warm.request(sock, "stop")
        _wait_gone(sock, 30.0)
    warm.private_dir(sock)
    if os.path.lexists(sock):
        if not stat.S_ISSOCK(os.lstat(sock).st_mode):
            raise warm.WarmError(f"{sock}: exists and is not a socket; not touching it")
        os.unlink(sock)  # a socket nobody answers on: left by a server that was killed
    log = Path(args.log) if args.log else Path(os.devnull)
    if args.log:
        log.parent.mkdir(parents=True, exist_ok=True)
    # the server imports the `come` this command runs from (`python -m` would put the working
    # directory first on sys.path, and the working directory may hold another copy)
    boot = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from come.workflow.warm_server import main; sys.exit(main())")
    cmd = [sys.executable, "-P", "-c", boot, str(warm.package_dir().parent), "--socket", sock,
           "--owner-pid", str(args.owner_pid), "--idle-timeout", str(args.idle_timeout)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    if args.wait <= 0:
        print(f"warm server {proc.pid} starting at {sock} (log: {log})")
        return 0
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise warm.WarmError(f"the warm server exited with status {proc.returncode} before "
                                 f"accepting requests; see {log}")
        answer = warm.request(sock, "ping", timeout=2.0)
        if answer:
            print(f"warm server {answer.get('pid')} listening at {sock}")
            return 0
        time.sleep(0.2)
    proc.terminate()
    raise warm.WarmError(f"the warm server did not answer at {sock} within {args.wait:.0f} s; "
                         f"see {log}")


def _wait_gone(sock: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and warm.request(sock, "ping", timeout=1.0):
        time.sleep(0.2)
