"""Hostile connections against the real `serve` process, on loopback (issue 19.2, destination/connections.py).

Goal: /health answers within 1 s while 2,000 idle and 200 slowloris connections are held, a 20 MB
request head is refused within 2 s, and idle and partial-head connections are dropped after a
bounded time (GSD_HEADER_TIMEOUT_SECONDS).

Set-up: a fresh service in sandbox mode with its default limits (a SQLite store in a temporary
directory). Then, in order:
1. /health latency on a quiet service (20 requests, a fresh connection each);
2. `--idle` connections that send nothing and `--slowloris` connections that send a partial head and
   one more header line every second; /health latency while they are held (20 requests), the
   service's RSS, and when the service closed them (seconds after they opened);
3. one request whose head is 20 MB: seconds until its 431 answer, and the RSS after.

Run: python bench/hostile.py [--idle 2000] [--slowloris 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def health_latencies(base: str, count: int = 20) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(count):
            started = time.monotonic()
            response = await client.get(base + "/health")
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.05)
    return latencies


def summary(latencies: list[float]) -> str:
    return f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"


async def hold(port: int, partial: bool, closed_after: list[float], stop: asyncio.Event) -> None:
    """One connection: idle, or a slowloris sending a header line a second; notes when it closed."""
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if partial:
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not stop.is_set():
            if partial:
                writer.write(b"X-Slow: 1\r\n")
            try:
                if await asyncio.wait_for(reader.read(65536), 1.0) == b"":
                    break
            except TimeoutError:
                continue
        else:
            return
        closed_after.append(time.monotonic() - opened)
    except (ConnectionError, OSError):
        closed_after.append(time.monotonic() - opened)
    finally:
        writer.close()


async def held_phase(base: str, port: int, pid: int, idle: int, slowloris: int) -> None:
    stop = asyncio.Event()
    idle_closed: list[float] = []
    slow_closed: list[float] = []
    tasks = [asyncio.create_task(hold(port, False, idle_closed, stop)) for _ in range(idle)]
    tasks += [asyncio.create_task(hold(port, True, slow_closed, stop)) for _ in range(slowloris)]
    await asyncio.sleep(1.0)  # every connection open
    latencies = await health_latencies(base)
    held = f"{idle} idle + {slowloris} slowloris"
    print(f"/health with {held} held: {summary(latencies)}; RSS {rss_mib(pid):.0f} MiB")
    deadline = time.monotonic() + 120
    while len(idle_closed) + len(slow_closed) < idle + slowloris and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for name, closed, count in (("idle", idle_closed, idle), ("slowloris", slow_closed, slowloris)):
        if closed:
            print(
                f"{name}: {len(closed)}/{count} closed by the service, "
                f"{min(closed):.1f}-{max(closed):.1f} s after opening"
            )
        else:
            print(f"{name}: none closed by the service within 120 s")


def big_head(port: int, pid: int, megabytes: int) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (megabytes << 20) + b"\r\n\r\n"
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setblocking(False)
        sent = 0
        answer = b""
        while not answer and time.monotonic() - started < 30:
            with contextlib.suppress(BlockingIOError, ConnectionError):
                sent += sock.send(head[sent : sent + 65536]) if sent < len(head) else 0
            try:
                answer = sock.recv(4096)
            except BlockingIOError:
                time.sleep(0.001)
            except ConnectionError:
                break
    status = answer.split(b"\r\n", 1)[0].decode() or "no answer"
    print(
        f"{megabytes} MB head: {status!r} after {time.monotonic() - started:.3f} s, "
        f"{sent / 2**20:.1f} MB sent; RSS {rss_mib(pid):.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slowloris", type=int, default=200)
    args = parser.parse_args()
    raise_file_limit(args.idle + args.slowloris + 256)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "GSD_DESTINATIONS": "",
            "GSD_STORE_URL": f"sqlite:///{tmp}/gsd.sqlite3",
            "GSD_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "destination", "serve", "--port", str(port), "--no-access-log"]
        server = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            quiet = summary(asyncio.run(health_latencies(base)))
            print(f"quiet /health: {quiet}; RSS {rss_mib(server.pid):.0f} MiB")
            asyncio.run(held_phase(base, port, server.pid, args.idle, args.slowloris))
            big_head(port, server.pid, 20)
            print(f"quiet /health after: {summary(asyncio.run(health_latencies(base)))}")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
