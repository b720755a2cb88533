#!/usr/bin/env python3
"""The peer benchmark's other systems, in a process of their own on loopback: a paged
JSON API to read from and a batch endpoint to write to, the shapes of a typical SaaS.

    GET  /records?limit=N&cursor=C   {"data": [10-field records], "next_cursor": C | null}
                                     (the page size is the caller's, up to 1000)
    POST /batch                      {"records": [...]} -> {"results": [{"id": ...}]}
    POST /one                        one record -> {"id": ...} (the single-record sink)
    GET  /stats                      records served and received so far
    POST /reset?records=N&changing=1 forget what was received; serve the first N records
                                     (changing: every listing shows new ones, as a sync
                                     triggered by a "created" webhook would find them)

Usage: mock_api.py [--port 8790] [--records 100000] [--delay-ms 0]
Only the standard library; the records are generated once, at start-up.
"""

import argparse
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

MAX_PAGE = 1000
CITIES = ["Berlin", "Paris", "Lisbon", "Oslo", "Vienna", "Prague", "Dublin", "Rome"]
STAGES = ["lead", "customer", "opportunity", "archived"]


def make_records(n):
    return [
        {
            "id": f"rec_{i:07d}",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "email": f"  Person.{i}@Example.COM ",
            "phone": f"+49 30 {i:07d}",
            "city": CITIES[i % len(CITIES)],
            "country": "DE",
            "stage": STAGES[i % len(STAGES)],
            "revenue": str(1000 + i % 5000),
            "updated_at": "2026-12-04T10:00:00Z",
        }
        for i in range(n)
    ]


class State:
    def __init__(self, records, delay):
        self.records = records
        self.count = len(records)  # how many of them the list serves
        self.changing = False  # whether every listing shows new records
        self.listings = 0
        self.delay = delay
        self.lock = threading.Lock()
        self.served = 0
        self.received = 0
        self.ids = set()
        self.duplicates = 0


def handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the benchmark measures, not logs
            pass

        def setup(self):
            super().setup()
            # Answers go out whole: without this, Nagle and delayed ACKs add ~40 ms a call.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send(self, status, body):
            data = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def read_json(self):
            length = int(self.headers.get("content-length", "0"))
            return json.loads(self.rfile.read(length) or b"null")

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/stats":
                with state.lock:
                    return self.send(
                        200,
                        {
                            "served": state.served,
                            "received": state.received,
                            "distinct": len(state.ids),
                            "duplicates": state.duplicates,
                        },
                    )
            if url.path != "/records":
                return self.send(404, {"error": "not found"})
            q = parse_qs(url.query)
            limit = max(1, min(MAX_PAGE, int(q.get("limit", ["100"])[0])))
            start = int(q.get("cursor", ["0"])[0] or 0)
            page = state.records[start : min(start + limit, state.count)]
            end = start + len(page)
            with state.lock:
                state.served += len(page)
                state.listings += 1
                if state.changing:
                    page = [dict(r, id=f"{r['id']}-{state.listings}") for r in page]
            self.send(
                200,
                {"data": page, "next_cursor": str(end) if end < state.count else None},
            )

        def receive(self, records):
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.received += len(records)
                for r in records:
                    key = r.get("external_id")
                    if key in state.ids:
                        state.duplicates += 1
                    state.ids.add(key)

        def do_POST(self):
            url = urlparse(self.path)
            path = url.path
            if path == "/reset":
                query = parse_qs(url.query)
                count = query.get("records", [len(state.records)])[0]
                with state.lock:
                    state.count = max(0, min(len(state.records), int(count)))
                    state.changing = query.get("changing", ["0"])[0] == "1"
                    state.served = state.received = state.duplicates = 0
                    state.ids.clear()
                return self.send(200, {"ok": True})
            body = self.read_json()
            if path == "/batch":
                records = body.get("records") if isinstance(body, dict) else None
                if not isinstance(records, list) or len(records) > MAX_PAGE:
                    return self.send(422, {"error": f"expected up to {MAX_PAGE} records"})
                self.receive(records)
                return self.send(
                    200, {"results": [{"id": r.get("external_id")} for r in records]}
                )
            if path == "/one":
                if not isinstance(body, dict):
                    return self.send(422, {"error": "expected one record"})
                self.receive([body])
                return self.send(201, {"id": body.get("external_id")})
            self.send(404, {"error": "not found"})

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    state = State(make_records(args.records), args.delay_ms / 1000.0)
    # A deep backlog: clients that open a connection per request come in bursts.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(state))
    server.daemon_threads = True
    print(f"mock API on http://127.0.0.1:{args.port} with {args.records} records", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
