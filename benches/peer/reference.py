#!/usr/bin/env python3
"""The ceiling of the peer benchmark: the job as a short script, no platform around it.
Reads every page of the mock API (1000 records a page), maps 10 fields with transforms,
drops archived records, and writes batches of 1000 to /batch. Prints one JSON line.

Usage: reference.py [--base http://127.0.0.1:8790]
"""

import argparse
import http.client
import json
import resource
import socket
import time
from urllib.parse import urlparse


def transform(r):
    return {
        "external_id": r["id"],
        "name": f"{r['first_name']} {r['last_name']}",
        "email": r["email"].strip().lower(),
        "phone": r["phone"].replace(" ", ""),
        "city": r["city"].upper(),
        "country": r["country"],
        "stage": r["stage"],
        "revenue": int(r["revenue"]),
        "updated_at": r["updated_at"],
        "source": "mock",
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8790")
    args = parser.parse_args()
    url = urlparse(args.base)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.perf_counter()
    cpu = time.process_time()
    cursor, read, written = "", 0, 0
    while cursor is not None:
        conn.request("GET", f"/records?limit=1000&cursor={cursor}")
        page = json.loads(conn.getresponse().read())
        read += len(page["data"])
        batch = [transform(r) for r in page["data"] if r["stage"] != "archived"]
        if batch:
            body = json.dumps({"records": batch}).encode()
            conn.request("POST", "/batch", body, {"content-type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"batch refused: {answer.status}")
            written += len(batch)
        cursor = page["next_cursor"]
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "read": read,
                "written": written,
                "seconds": round(seconds, 3),
                "records_per_s": round(read / seconds),
                "cpu_s": round(time.process_time() - cpu, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
