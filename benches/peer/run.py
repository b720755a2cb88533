#!/usr/bin/env python3
"""The peer benchmark's driver: the same job — read a paged JSON API, map 10 fields with
transforms, drop archived records, write batches — run by Sluice (the generic HTTP
connector, a release binary of its own), by the reference script (the ceiling) and, when
installed, by n8n 2.8.4 (one Code node), interleaved round by round, with medians.

Usage:
    cargo build --release
    benches/peer/run.py --sluice target/release/sluice [--n8n DIR] [--rounds 3]

`--n8n DIR` is a directory where `npm install n8n@2.8.4` was run (see README.md here).
Everything listens on 127.0.0.1. Figures are printed as a table and as JSON.
"""

import argparse
import atexit
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK_PORT = 8790
SLOW_SINK_PORT = 8791  # a sink without a batch endpoint that answers in 1 ms
SLUICE_PORT = 18190
N8N_PORT = 5679
EMAIL, PASSWORD = "bench@example.com", "peer-benchmark-password"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHILDREN = []


def stop_all():
    for proc in CHILDREN:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired, PermissionError):
            pass


atexit.register(stop_all)


def spawn(args, env=None, **kw):
    proc = subprocess.Popen(args, env=env, start_new_session=True, **kw)
    CHILDREN.append(proc)
    return proc


# --- what a process tree costs ------------------------------------------------------


def tree(pid):
    """The pid and its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / CLOCK_TICKS


def status_kb(p, field):
    try:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pid):
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass


def peak_mb(pid):
    return sum(status_kb(p, "VmHWM:") for p in tree(pid)) / 1024


def rss_mb(pid):
    return sum(status_kb(p, "VmRSS:") for p in tree(pid)) / 1024


# --- HTTP -----------------------------------------------------------------------------


class Http:
    """A keep-alive client with a cookie jar and no redirects followed."""

    def __init__(self, port):
        self.port, self.cookies, self.conn = port, {}, None

    def request(self, method, path, body=None, headers=None, timeout=600):
        headers = dict(headers or {})
        if self.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                self.conn.connect()
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.conn.request(method, path, body, headers)
                res = self.conn.getresponse()
                data = res.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn = None
                if attempt:
                    raise
        for value in res.headers.get_all("set-cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return res.status, res.headers, data

    def form(self, path, fields):
        fields = dict(fields, csrf_token=self.cookies.get("sluice_csrf", ""))
        body = urllib.parse.urlencode(fields)
        return self.request(
            "POST", path, body, {"content-type": "application/x-www-form-urlencoded"}
        )

    def json(self, method, path, body=None, token=None):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        status, _, data = self.request(
            method, path, None if body is None else json.dumps(body), headers
        )
        return status, json.loads(data or b"null")


def wait_until(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.01)
    sys.exit(f"timed out waiting for {what}")


# --- the other systems ------------------------------------------------------------------


class Mock:
    def __init__(self, records, port=MOCK_PORT, delay_ms=0):
        self.proc = spawn(
            [sys.executable, os.path.join(HERE, "mock_api.py"), "--port", str(port),
             "--records", str(records), "--delay-ms", str(delay_ms)],
            stdout=subprocess.DEVNULL,
        )
        self.http = Http(port)
        wait_until(lambda: self.http.request("GET", "/stats")[0] == 200, "the mock API")

    def reset(self, records, changing=False):
        self.http.request("POST", f"/reset?records={records}&changing={int(changing)}")

    def stats(self):
        return json.loads(self.http.request("GET", "/stats")[2])


# --- the contenders ----------------------------------------------------------------------

MAPPING = [
    ("external_id", "record.id", "text"),
    ("name", 'record.first_name ~ " " ~ record.last_name', "text"),
    ("email", "record.email | trim | lower", "text"),
    ("phone", 'record.phone | replace(" ", "")', "text"),
    ("city", "record.city | upper", "text"),
    ("country", "record.country", "text"),
    ("stage", "record.stage", "text"),
    ("revenue", "record.revenue | int", "integer"),
    ("updated_at", "record.updated_at", "text"),
    ("source", '"mock"', "text"),
]
FILTER = 'record.stage != "archived"'


class Sluice:
    name = "Sluice"

    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="sluice-peer-")
        self.env = dict(
            os.environ,
            SLUICE_DATA_DIR=self.dir,
            SLUICE_DATABASE_URL=f"sqlite://{self.dir}/sluice.db?mode=rwc",
            SLUICE_BIND=f"127.0.0.1:{SLUICE_PORT}",
            SLUICE_LOG="warn",
            SLUICE_OUTBOUND_ALLOW="127.0.0.0/8",
            # The stand-in SaaS is not part of this job; its memory would be counted as ours.
            SLUICE_SANDBOX="off",
        )
        subprocess.run([binary, "migrate"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [binary, "admin", "create-user", "--email", EMAIL, "--name", "Bench"],
            input=PASSWORD.encode(), env=self.env, check=True, stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [binary, "admin", "create-tenant", "--name", "Bench", "--owner", EMAIL],
            env=self.env, check=True, stdout=subprocess.DEVNULL,
        )
        self.proc = spawn([binary, "serve"], env=self.env, stdout=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.http = Http(SLUICE_PORT)
        wait_until(lambda: self.http.request("GET", "/readyz")[0] == 200, "Sluice")
        self.http.request("GET", "/login")
        status, _, body = self.http.form("/login", {"email": EMAIL, "password": PASSWORD})
        assert status == 303, f"sign-in: {status} {body[:300]}"
        status, _, body = self.http.form(
            "/settings/api-tokens", {"name": "bench", "role": "admin", "expires_in_days": "30"}
        )
        match = re.search(rb'<code id="new-token"[^>]*>([^<]+)</code>', body)
        assert status == 200 and match, f"API token: {status}"
        self.token = match.group(1).decode()
        base = {
            "api_key": "peer-key", "base_url": f"http://127.0.0.1:{MOCK_PORT}",
            "key_style": "bearer", "update_method": "PATCH",
        }
        self.connect("Mock API", dict(
            base, list_path="/records", records_path="$.data", id_field="id",
            paging_style="cursor", page_size_param="limit", page_size="1000",
            cursor_param="cursor", cursor_path="$.next_cursor",
        ))
        self.connect("Mock sink", dict(
            base, list_path="/records", records_path="$.data", id_field="id",
            paging_style="none", write_path="/one", batch_path="/batch",
            batch_key="records", batch_results_path="$.results", batch_max="1000",
        ))
        self.connect("Mock one-by-one sink", dict(
            base, base_url=f"http://127.0.0.1:{SLOW_SINK_PORT}", list_path="/records",
            records_path="$.data", id_field="id", paging_style="none", write_path="/one",
        ))
        self.flows, self.sink = 0, "Mock sink"

    def connect(self, name, fields):
        form = {f"field_{k}": v for k, v in fields.items() if k != "api_key"}
        status, _, body = self.http.form(
            "/connections/new/http_json", dict(form, name=name, api_key=fields["api_key"])
        )
        errors = re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)<', body.decode())
        assert status == 303, f"connecting {name}: {status} {errors}"

    def prepare(self, records):
        # A flow of its own each time: the ledger of a flow that already delivered these
        # records would (rightly) skip them as unchanged.
        self.flows += 1
        doc = {
            "sluice_flow": 1,
            "name": f"Peer job {self.flows}",
            "source": {"connection": {"name": "Mock API", "provider": "http_json"},
                       "object": "records", "incremental": False},
            "destination": {"connection": {"name": self.sink, "provider": "http_json"},
                            "object": "records", "write_mode": "create"},
            "mapping": [{"target": t, "expression": e, "default": "", "field_type": ty}
                        for t, e, ty in MAPPING],
            "filter": FILTER,
            "record_key": "record.id",
            "batch_size": 1000,
            "trigger": {"kind": "manual", "interval_minutes": None, "cron": None},
            "auto_pause_after": 0,
        }
        status, flow = self.http.json("POST", "/api/v1/flows/import", doc, self.token)
        assert status == 201, f"import: {status} {flow}"
        self.flow = flow["id"]

    def run(self, records):
        status, run = self.http.json("POST", f"/api/v1/flows/{self.flow}/run", None, self.token)
        assert status == 202, f"run: {status} {run}"
        while True:
            status, run = self.http.json("GET", f"/api/v1/runs/{run['id']}", None, self.token)
            if run["status"] not in ("queued", "running"):
                break
            time.sleep(float(os.environ.get("POLL", "0.002")))
        assert run["status"] == "succeeded", f"run ended {run['status']}: {run.get('error')}"
        # Trigger → done by the server's own clock, so the polling cadence does not count.
        self.seconds = (stamp(run["finished_at"]) - stamp(run["created_at"])).total_seconds()
        return run["records_read"]


def stamp(text):
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.datetime.fromisoformat(text)


class Reference:
    name = "reference script"
    pid = None

    def prepare(self, records):
        pass

    def run(self, records):
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "reference.py"),
             "--base", f"http://127.0.0.1:{MOCK_PORT}"],
            check=True, capture_output=True,
        )
        out = json.loads(proc.stdout)
        self.cpu, self.peak, self.seconds = out["cpu_s"], out["peak_rss_mb"], out["seconds"]
        return out["read"]


# The record the reference script writes, as JavaScript (both n8n workflows use it).
N8N_RECORD = """{
      external_id: r.id,
      name: `${r.first_name} ${r.last_name}`,
      email: r.email.trim().toLowerCase(),
      phone: r.phone.replaceAll(' ', ''),
      city: r.city.toUpperCase(),
      country: r.country,
      stage: r.stage,
      revenue: parseInt(r.revenue, 10),
      updated_at: r.updated_at,
      source: 'mock',
    }"""

# n8n's idiom: HTTP Request nodes read (with the node's own cursor pagination) and write
# (one request per batch item), a Code node maps, filters and cuts batches of 1000.
N8N_MAP = """
const out = [];
let batch = [];
for (const page of $input.all()) {
  for (const r of page.json.data) {
    if (r.stage === 'archived') continue;
    batch.push(MAPPED);
    if (batch.length === 1000) { out.push({ json: { records: batch } }); batch = []; }
  }
}
if (batch.length) out.push({ json: { records: batch } });
return out;
""".replace("MAPPED", N8N_RECORD)

N8N_COUNT = """
const read = $('Read pages').all().reduce((n, page) => n + page.json.data.length, 0);
return [{ json: { read, batches: $input.all().length } }];
"""

# The whole job as JavaScript in one Code node: n8n as a script host.
N8N_SCRIPT = """
const base = 'http://127.0.0.1:%d';
let cursor = '', read = 0, written = 0;
while (cursor !== null) {
  const page = await this.helpers.httpRequest({ url: `${base}/records?limit=1000&cursor=${cursor}`, json: true });
  read += page.data.length;
  const batch = [];
  for (const r of page.data) {
    if (r.stage === 'archived') continue;
    batch.push(MAPPED);
  }
  if (batch.length) {
    await this.helpers.httpRequest({ method: 'POST', url: `${base}/batch`, body: { records: batch }, json: true });
    written += batch.length;
  }
  cursor = page.next_cursor;
}
return [{ json: { read, written } }];
""".replace("MAPPED", N8N_RECORD) % MOCK_PORT


def node(name, kind, version, parameters, x, **extra):
    return dict(id=str(uuid.uuid4()), name=name, type=f"n8n-nodes-base.{kind}",
                typeVersion=version, position=[x, 0], parameters=parameters, **extra)


def workflow(number, path, nodes):
    """A published workflow: a webhook answered by its last node's output, then `nodes`."""
    webhook = node("Webhook", "webhook", 2, {"httpMethod": "POST", "path": path,
                                             "responseMode": "lastNode", "options": {}},
                   0, webhookId=str(uuid.uuid4()))
    chain = [webhook, *nodes]
    return {
        "id": f"PeerBench{number:07d}", "name": f"Peer benchmark: {path}", "active": False,
        "versionId": str(uuid.uuid4()), "settings": {"executionOrder": "v1"},
        "nodes": chain,
        "connections": {a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
                        for a, b in zip(chain, chain[1:])},
    }


def n8n_workflows():
    base = f"http://127.0.0.1:{MOCK_PORT}"
    read = node("Read pages", "httpRequest", 4.2, {
        "url": f"{base}/records", "sendQuery": True,
        "queryParameters": {"parameters": [{"name": "limit", "value": "1000"}]},
        "options": {"pagination": {"pagination": {
            "paginationMode": "updateAParameterInEachRequest",
            "parameters": {"parameters": [
                {"type": "qs", "name": "cursor", "value": "={{ $response.body.next_cursor }}"}]},
            "paginationCompleteWhen": "other",
            "completeExpression": "={{ $response.body.next_cursor === null }}",
        }}},
    }, 220)
    write = node("Write batches", "httpRequest", 4.2, {
        "method": "POST", "url": f"{base}/batch", "sendBody": True, "specifyBody": "json",
        "jsonBody": "={{ JSON.stringify($json) }}", "options": {},
    }, 660)
    return [
        workflow(1, "peer-nodes", [
            read, node("Map and filter", "code", 2, {"jsCode": N8N_MAP}, 440), write,
            node("Count", "code", 2, {"jsCode": N8N_COUNT}, 880),
        ]),
        workflow(2, "peer-script", [node("Code", "code", 2, {"jsCode": N8N_SCRIPT}, 220)]),
    ]


class N8n:
    """n8n 2.8.4 with the job's workflows published, on SQLite, offline."""

    def __init__(self, install, mock):
        self.dir = tempfile.mkdtemp(prefix="n8n-peer-")
        self.bin = os.path.join(install, "node_modules", ".bin", "n8n")
        self.env = dict(
            os.environ, N8N_USER_FOLDER=self.dir, N8N_PORT=str(N8N_PORT),
            N8N_LISTEN_ADDRESS="127.0.0.1", N8N_HOST="127.0.0.1", N8N_PROTOCOL="http",
            N8N_SECURE_COOKIE="false", DB_TYPE="sqlite", N8N_DIAGNOSTICS_ENABLED="false",
            N8N_PERSONALIZATION_ENABLED="false", N8N_VERSION_NOTIFICATIONS_ENABLED="false",
            N8N_VERSION_NOTIFICATIONS_WHATS_NEW_ENABLED="false", N8N_TEMPLATES_ENABLED="false",
            N8N_DYNAMIC_BANNERS_ENABLED="false", N8N_HIRING_BANNER_ENABLED="false",
            N8N_AI_ENABLED="false", N8N_COMMUNITY_PACKAGES_ENABLED="false",
            N8N_VERIFIED_PACKAGES_ENABLED="false", N8N_UNVERIFIED_PACKAGES_ENABLED="false",
            N8N_LICENSE_AUTO_RENEW_ENABLED="false", N8N_LICENSE_SERVER_URL="http://127.0.0.1:9/",
            N8N_DIAGNOSTICS_POSTHOG_API_HOST="http://127.0.0.1:9", DO_NOT_TRACK="1",
            N8N_RUNNERS_MODE="internal", N8N_RUNNERS_BROKER_PORT="5681",
            N8N_PYTHON_ENABLED="false", NODE_ENV="production",
        )
        self.log = open(os.path.join(self.dir, "n8n.log"), "w")
        print(f"n8n logs to {self.log.name}", file=sys.stderr)
        for flow in n8n_workflows():
            path = os.path.join(self.dir, f"{flow['id']}.json")
            with open(path, "w") as f:
                json.dump(flow, f)
            for args in (["import:workflow", f"--input={path}"],
                         ["publish:workflow", f"--id={flow['id']}"]):
                subprocess.run([self.bin, *args], env=self.env, check=True,
                               stdout=self.log, stderr=subprocess.STDOUT)
        self.proc = spawn([self.bin, "start"], env=self.env,
                          stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.http = Http(N8N_PORT)
        # Webhooks are registered after readiness: poll until the jobs run (each poll
        # that reaches one runs it, on a short list).
        mock.reset(1000)
        for path in ("peer-nodes", "peer-script"):
            wait_until(lambda: b'"read"' in self.call(path)[1], f"n8n's {path} webhook", 120)

    def call(self, path):
        status, _, body = self.http.request(
            "POST", f"/webhook/{path}", b"{}", {"content-type": "application/json"}
        )
        return status, body


class N8nJob:
    """One of the n8n workflows, as a contender."""

    def __init__(self, n8n, path, name):
        self.n8n, self.path, self.name, self.pid = n8n, path, name, n8n.pid

    def prepare(self, records):
        pass

    def run(self, records):
        status, body = self.n8n.call(self.path)
        assert status == 200, f"n8n answered {status}: {body[:300]}"
        return json.loads(body)["read"]


# --- the run -------------------------------------------------------------------------------


def measure(who, mock, records, sink=None):
    sink = sink or mock
    mock.reset(records)
    who.prepare(records)
    if who.pid:
        reset_peak(who.pid)
        cpu = cpu_seconds(who.pid)
    started = time.perf_counter()
    read = who.run(records)
    seconds = getattr(who, "seconds", None) or time.perf_counter() - started
    if who.pid:
        cpu, peak = cpu_seconds(who.pid) - cpu, peak_mb(who.pid)
    else:
        cpu, peak = who.cpu, who.peak
    stats = sink.stats()
    expected = records - records // 4
    assert read == records, f"{who.name} read {read} of {records}"
    assert stats["received"] == expected and stats["duplicates"] == 0, (
        f"{who.name}: the sink received {stats} (expected {expected}, no duplicates)"
    )
    return {"seconds": seconds, "records_per_s": records / seconds,
            "cpu_us_per_record": cpu / records * 1e6, "peak_rss_mb": peak}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluice", required=True)
    parser.add_argument("--n8n", help="directory where n8n@2.8.4 is installed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--single", type=int, default=2000,
                        help="records for the single-record destination job (0: skip)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    mock = Mock(max(sizes))
    contenders = [Sluice(args.sluice), Reference()]
    if args.n8n:
        n8n = N8n(args.n8n, mock)
        contenders += [N8nJob(n8n, "peer-nodes", "n8n Code node"),
                       N8nJob(n8n, "peer-script", "n8n as a script")]
    # Set-up (a password hash among it) leaves freed memory the allocator gives back
    # within a second or two: let it, so the idle figure and each job's peak start clean.
    time.sleep(3)
    idle = {c.name: rss_mb(c.pid) for c in contenders if c.pid}
    results = {(c.name, n): [] for c in contenders for n in sizes}
    failures = []
    for round_ in range(args.rounds):
        for n in sizes:
            # Interleaved, and in another order each round: no contender always goes first.
            order = contenders[round_ % len(contenders):] + contenders[:round_ % len(contenders)]
            for who in order:
                try:
                    figures = measure(who, mock, n)
                except AssertionError as failure:
                    # Counted and said, then tried once more: one failed job is not a
                    # benchmark, but it is part of the picture.
                    failures.append(f"{who.name}, {n:,} records: {failure}")
                    print(f"FAILED: {failures[-1]}; trying again", file=sys.stderr)
                    figures = measure(who, mock, n)
                results[(who.name, n)].append(figures)
                print(f"round {round_ + 1}, {n:>7} records, {who.name:<16} "
                      f"{figures['records_per_s']:>9,.0f} records/s  {figures['seconds']:.3f} s  "
                      f"{figures['cpu_us_per_record']:.1f} µs CPU/record  "
                      f"{figures['peak_rss_mb']:.0f} MB peak", file=sys.stderr, flush=True)
    medians = {}
    for (name, n), runs in results.items():
        medians.setdefault(name, {})[n] = {
            k: statistics.median(r[k] for r in runs) for k in runs[0]
        }
    print(f"\nMedians of {args.rounds} interleaved rounds (records/s; trigger → done; "
          "CPU per record; peak RSS of the process tree)")
    for n in sizes:
        print(f"\n{n:,} records")
        for name, by_size in medians.items():
            m = by_size[n]
            print(f"  {name:<16} {m['records_per_s']:>9,.0f}/s  {m['seconds']:.3f} s  "
                  f"{m['cpu_us_per_record']:>6.1f} µs  {m['peak_rss_mb']:>6.0f} MB")
    for n in sizes:
        s = medians["Sluice"][n]["records_per_s"]
        line = f"Sluice at {n:,}: {s / medians['reference script'][n]['records_per_s']:.0%} of the reference"
        if "n8n Code node" in medians:
            line += f", {s / medians['n8n Code node'][n]['records_per_s']:.1f}× n8n's Code node"
        print(line)
    if args.single:
        # Single-record destination: the same records, one request each, to a sink that
        # answers in 1 ms.
        slow = Mock(0, SLOW_SINK_PORT, delay_ms=1)
        sluice = contenders[0]
        sluice.sink = "Mock one-by-one sink"
        single = []
        for _ in range(args.rounds):
            slow.reset(0)
            single.append(measure(sluice, mock, args.single, sink=slow))
        m = statistics.median(r["records_per_s"] for r in single)
        print(f"\nSingle-record destination (1 ms a request), {args.single:,} records: "
              f"Sluice {m:,.0f} records/s (median of {args.rounds})")
    for failure in failures:
        print(f"failed and tried again: {failure}")
    print("idle RSS before the rounds (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in idle.items()))
    print(json.dumps({name: {str(n): m for n, m in by.items()} for name, by in medians.items()}))


if __name__ == "__main__":
    main()
