"""One process holding N idle IMAP connections with one client library: its RSS and CPU.

    .venv/bin/python -m bench.watch_clients --client ours|aioimaplib --port P --users FILE \
        [--connections 1000] [--idle 60]

Each connection logs in as its own user (lines "login password" in FILE), EXAMINEs INBOX and
waits in IDLE. Once all are idling, the process's CPU time (utime + stime) is read at the start
and the end of ``--idle`` seconds, and its RSS at the end. Prints one JSON object. Run by
``bench.watch_cost``; the figures go in ``app/watch/imap.py``'s docstring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (VmRSS)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ours(host: str, port: int, login: str, password: str):
    from app.watch.imap import ImapConnection

    conn = await ImapConnection.open(host, port, "none")
    await conn.login(login, password)
    await conn.examine("INBOX")
    await conn.idle_start()
    return conn


async def _aioimaplib(host: str, port: int, login: str, password: str):
    import aioimaplib

    client = aioimaplib.IMAP4(host=host, port=port, timeout=30)
    await client.wait_hello_from_server()
    await client.login(login, password)
    await client.select("INBOX")  # its EXAMINE leaves the state at AUTH, where it refuses IDLE
    await client.idle_start(timeout=25 * 60)
    return client


async def hold(client: str, host: str, port: int, users: list[tuple[str, str]], idle: float) -> dict:
    """Open every connection, then measure the idle process."""
    if client == "ours":
        import app.watch.imap  # noqa: F401  (the library's own import is not the connections' cost)
    else:
        import aioimaplib  # noqa: F401
    base_rss = rss_mb()
    opener = _ours if client == "ours" else _aioimaplib
    slots = asyncio.Semaphore(50)

    async def one(login: str, password: str):
        async with slots:
            return await opener(host, port, login, password)

    started = time.monotonic()
    conns = await asyncio.gather(*(one(login, pw) for login, pw in users))
    opened = time.monotonic() - started
    await asyncio.sleep(2)
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(idle)
    cpu = cpu_seconds() - cpu0
    wall = time.monotonic() - wall0
    rss = rss_mb()
    return {"client": client, "connections": len(conns), "open_seconds": round(opened, 1),
            "rss_mb": round(rss, 1), "rss_base_mb": round(base_rss, 1),
            "kb_per_connection": round((rss - base_rss) * 1024 / max(1, len(conns)), 1),
            "cpu_percent": round(100 * cpu / wall, 3), "idle_seconds": round(wall, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=("ours", "aioimaplib"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args(argv)
    with open(args.users) as fh:
        users = [tuple(line.split()) for line in fh if line.strip()][:args.connections]
    result = asyncio.run(hold(args.client, args.host, args.port, users, args.idle))  # type: ignore[arg-type]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
