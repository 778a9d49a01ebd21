"""A second, private Dovecot for tests that stop and restart it mid-scan.

It is made from the shared instance's configuration (written by
``scripts/services.sh``) with its own instance name, port, base_dir, state,
log, users file and mail folder, so stopping it never disturbs the tests that
use the shared one. The handle is a ``tests.services.Dovecot`` (add_user,
new_user, append_many, connect) pointed at it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from app.scanning.liveness import pid_alive
from tests.faults.redis_server import free_port
from tests.scan_helpers import imap_alive
from tests.services import STATE, Dovecot, nobody_group

SHARED_DIR = STATE / "dovecot"
SHARED_CONF = SHARED_DIR / "dovecot.conf"
MAIL_ROOT = STATE / "mail"


class PrivateDovecot:
    """Start, stop and restart a private Dovecot; ``handle`` is the usual test helper for it."""

    def __init__(self, extra: str = "") -> None:
        """``extra``: settings appended to the configuration (e.g. ``imap_capability``)."""
        if not SHARED_CONF.exists():
            raise RuntimeError(f"{SHARED_CONF} is missing: start the shared Dovecot first (scripts/services.sh)")
        self.port = free_port()
        # Under .state (mode 755), not pytest's tmp_path (mode 700): the mail processes run as nobody.
        self.dir = STATE / "faults" / f"dovecot-{uuid.uuid4().hex[:8]}"
        self.mail = self.dir / "mail"
        self.conf = self.dir / "dovecot.conf"
        for path in (self.dir.parent, self.dir, self.dir / "run", self.dir / "state", self.dir / "users.d", self.mail):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.mail, "nobody", nobody_group())
        text = SHARED_CONF.read_text()
        text = text.replace(str(SHARED_DIR), str(self.dir)).replace(str(MAIL_ROOT), str(self.mail))
        self.instance_name = f"cm-fault-{self.dir.name}"
        text = re.sub(r"^instance_name = .*$", f"instance_name = {self.instance_name}", text, flags=re.M)
        text = re.sub(r"(inet_listener imap \{[^}]*?port = )\d+", rf"\g<1>{self.port}", text, flags=re.S)
        self.conf.write_text(text + extra)
        (self.dir / "users").touch()
        (self.dir / "users").chmod(0o644)
        self.handle = Dovecot(host="127.0.0.1", port=self.port, users_file=self.dir / "users")

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / "master.pid"

    def start(self) -> None:
        """Start the master and wait for the greeting."""
        self.pid_file.unlink(missing_ok=True)
        # No pipes: the master daemonizes and would keep them open, so run() would wait for ever.
        proc = subprocess.run(["dovecot", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=(self.dir / "start.log").open("ab"), timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"dovecot -c {self.conf} failed; see {self.dir}/start.log and dovecot.log")
        deadline = time.monotonic() + 15
        while not imap_alive("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"private Dovecot did not greet on {self.port}; see {self.dir}/dovecot.log")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the master (its IMAP processes, and so every connection, end with it) and wait until gone."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        subprocess.run(["dovecot", "-c", str(self.conf), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def restart(self, *, crash: bool = False) -> None:
        """Stop and start again.

        ``dovecot stop`` leaves the IMAP processes of open sessions running (they
        serve their client to the end). ``crash`` instead kills every process of
        the instance, by pid, as a crash or ``systemctl restart dovecot`` (which
        ends the service's whole cgroup) does: open sessions die with it.
        """
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the master and every process of this instance (found by process title)."""
        try:
            os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass
        self.end_sessions()
        self.pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + 10
        while imap_alive("127.0.0.1", self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def end_sessions(self) -> int:
        """SIGKILL the processes this instance left behind (found by their process title); returns how many."""
        prefix = f"dovecot-{self.instance_name}/".encode()
        ended = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(prefix):
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                    ended += 1
                except ProcessLookupError:
                    pass
        return ended

    def remove(self) -> None:
        """Kill it and delete its folder."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


