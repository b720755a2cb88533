#!/usr/bin/env python3
"""Webhook intake of a Sluice release binary (SQLite, its embedded default), with signed
Standard Webhooks deliveries sent from this process over keep-alive connections.

    benches/peer/webhooks.py --sluice target/release/sluice

Three figures, from one run:
- ceiling: 64 senders, each sending its next delivery as soon as the last was answered,
  for 5 s: deliveries accepted (202) per second;
- open loop at 1,000/s for 10 s (deliveries leave on a fixed schedule, whether or not
  earlier ones were answered): accepted per second and latency from the scheduled send
  to the answer (p50, p99, max), so a stall is counted, not hidden;
- 1-record runs: deliveries 50 ms apart, each starting a run that reads one changed
  record from the mock API, maps it and writes it to the batch sink; Sluice's CPU time
  (its process, from /proc) divided by the runs.

Each delivery of the first two starts or joins a run of the same flow, as it would in
production: the intake shares the machine with the runs it starts. The flow reads one
record, so the figures are the intake's, not the sync's.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as peer  # noqa: E402  (the driver's Sluice set-up, mock API and /proc helpers)

SENDERS = 64


def flow_document(name):
    return {
        "sluice_flow": 1,
        "name": name,
        "source": {"connection": {"name": "Mock API", "provider": "http_json"},
                   "object": "records", "incremental": False},
        "destination": {"connection": {"name": "Mock sink", "provider": "http_json"},
                        "object": "records", "write_mode": "create"},
        "mapping": [{"target": t, "expression": e, "default": "", "field_type": ty}
                    for t, e, ty in peer.MAPPING],
        "filter": "",
        "record_key": "record.id",
        "batch_size": 1000,
        "trigger": {"kind": "webhook", "interval_minutes": None, "cron": None},
        "auto_pause_after": 0,
    }


def webhook_flow(sluice, name):
    """Imports a webhook-triggered flow; returns its id, URL path and signing key."""
    status, flow = sluice.http.json("POST", "/api/v1/flows/import", flow_document(name),
                                    sluice.token)
    assert status == 201, f"import: {status} {flow}"
    sluice.http.request("GET", f"/flows/{flow['id']}")
    status, _, body = sluice.http.form(f"/flows/{flow['id']}/webhook", {})
    page = body.decode()
    secret = re.search(r'<code id="webhook-secret">([^<]+)</code>', page)
    url = re.search(r'<code id="webhook-url">([^<]+)</code>', page)
    assert status == 200 and secret and url, f"webhook secret: {status}"
    key = base64.b64decode(secret.group(1).removeprefix("whsec_"))
    path = "/" + url.group(1).split("/", 3)[3]
    return flow["id"], path, key


def deliveries(path, key, count, tag):
    """Signed HTTP requests, ready to write to a socket."""
    now = str(int(time.time()))
    out = []
    for i in range(count):
        msg = f"msg_{tag}_{i}"
        body = json.dumps({"type": "contact.updated", "data": {"id": f"rec_{i % 1000:07d}"}})
        mac = hmac.new(key, f"{msg}.{now}.{body}".encode(), hashlib.sha256).digest()
        sig = base64.b64encode(mac).decode()
        out.append(
            (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
             f"webhook-id: {msg}\r\nwebhook-timestamp: {now}\r\nwebhook-signature: v1,{sig}\r\n"
             f"content-length: {len(body)}\r\n\r\n{body}").encode()
        )
    return out


class Conn:
    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", peer.SLUICE_PORT)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                        socket.TCP_NODELAY, 1)
        return self

    async def send(self, request):
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
        await self.reader.readexactly(length)
        return status


async def ceiling(path, key, seconds):
    requests = iter(deliveries(path, key, 200_000, f"c{time.time_ns()}"))
    statuses = {}
    conns = [await Conn().open() for _ in range(SENDERS)]
    deadline = time.monotonic() + seconds

    async def sender(conn):
        while time.monotonic() < deadline:
            status = await conn.send(next(requests))
            statuses[status] = statuses.get(status, 0) + 1

    start = time.monotonic()
    await asyncio.gather(*(sender(c) for c in conns))
    elapsed = time.monotonic() - start
    for c in conns:
        c.writer.close()
    return statuses, elapsed


async def open_loop(path, key, rate, seconds):
    count = int(rate * seconds)
    requests = deliveries(path, key, count, f"o{time.time_ns()}")
    idle = asyncio.Queue()
    for _ in range(SENDERS * 4):
        idle.put_nowait(await Conn().open())
    latencies, statuses, tasks = [], {}, []

    async def one(request, due):
        conn = await idle.get()
        status = await conn.send(request)
        latencies.append(time.monotonic() - due)
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait(conn)

    start = time.monotonic()
    for i, request in enumerate(requests):
        due = start + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    latencies.sort()
    return statuses, elapsed, latencies


def runs_of(sluice, flow):
    runs, before = [], None
    while True:
        query = "limit=100" + (f"&before={before}" if before else "")
        status, page = sluice.http.json("GET", f"/api/v1/flows/{flow}/runs?{query}", None,
                                        sluice.token)
        assert status == 200, f"runs: {status} {page}"
        runs += page
        if len(page) < 100:
            return runs
        before = page[-1]["id"]


def settled(sluice, flow):
    peer.wait_until(
        lambda: all(r["status"] not in ("queued", "running") for r in runs_of(sluice, flow)),
        "the runs to finish", seconds=300,
    )


def one_record_runs(sluice, mock, count):
    flow, path, key = webhook_flow(sluice, "Webhook: one record a run")
    mock.reset(1, changing=True)
    requests = deliveries(path, key, count, f"r{time.time_ns()}")
    sock = socket.create_connection(("127.0.0.1", peer.SLUICE_PORT))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    time.sleep(1)
    cpu0, t0 = peer.cpu_seconds(sluice.pid), time.monotonic()
    for i, request in enumerate(requests):
        while time.monotonic() < t0 + i * 0.05:
            time.sleep(0.001)
        sock.sendall(request)
        answer = sock.recv(65536)  # the whole answer: a few hundred bytes
        assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
    # Sparse polling, so that it adds little to the CPU measured.
    while True:
        time.sleep(0.25)
        runs = runs_of(sluice, flow)
        if all(r["status"] not in ("queued", "running") for r in runs):
            break
    cpu = peer.cpu_seconds(sluice.pid) - cpu0
    sock.close()
    failed = [r for r in runs if r["status"] != "succeeded"]
    assert not failed, f"runs failed: {failed[:1]}"
    written = sum(r["records_written"] for r in runs)
    return {"deliveries": count, "runs": len(runs), "records_written": written,
            "cpu_ms_per_run": round(1000 * cpu / len(runs), 2)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluice", required=True, help="a release build of sluice")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    mock = peer.Mock(1)
    sluice = peer.Sluice(args.sluice)
    results = {}

    results["one_record_runs"] = one_record_runs(sluice, mock, args.runs)
    print(f"1-record runs: {results['one_record_runs']}", flush=True)

    flow, path, key = webhook_flow(sluice, "Webhook intake")
    mock.reset(1)
    cpu0 = peer.cpu_seconds(sluice.pid)
    statuses, elapsed = asyncio.run(ceiling(path, key, 5))
    accepted = statuses.get(202, 0)
    results["ceiling"] = {"accepted_per_s": round(accepted / elapsed), "statuses": statuses,
                          "cpu_us_per_delivery": round(
                              1e6 * (peer.cpu_seconds(sluice.pid) - cpu0) / max(1, accepted))}
    print(f"ceiling ({SENDERS} senders, 5 s): {results['ceiling']}", flush=True)
    settled(sluice, flow)

    statuses, elapsed, lat = asyncio.run(open_loop(path, key, args.rate, args.seconds))
    pct = lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1)  # noqa: E731
    results["open_loop"] = {
        "offered_per_s": args.rate, "accepted_per_s": round(statuses.get(202, 0) / elapsed),
        "statuses": statuses, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "max_ms": round(1000 * lat[-1], 1),
    }
    print(f"open loop: {results['open_loop']}", flush=True)
    settled(sluice, flow)
    runs = runs_of(sluice, flow)
    results["runs_started_by_intake"] = len(runs)
    assert all(r["status"] == "succeeded" for r in runs), "a run started by a webhook failed"
    print(json.dumps(results))


if __name__ == "__main__":
    main()
