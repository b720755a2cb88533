#!/usr/bin/env bash
# Usage: cargo build --release && benches/startup.sh target/release/sluice
# start-to-ready and idle RSS of the release binary on SQLite
set -u
bin=$1; dir=$(mktemp -d); port=18181
start=$(date +%s%N)
SLUICE_DATA_DIR=$dir SLUICE_BIND=127.0.0.1:$port SLUICE_LOG=warn "$bin" >/dev/null 2>&1 &
pid=$!
until curl -fs -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.002; done
ready=$(date +%s%N)
echo "start_to_ready_ms=$(( (ready-start)/1000000 ))"
rss() { awk '/^(VmRSS|RssAnon|RssFile)/{printf "%s=%s ", $1, $2}' /proc/$pid/status; echo; }
sleep 10
echo "idle_kb: $(rss)"
for i in $(seq 1 200); do curl -fs -o /dev/null http://127.0.0.1:$port/login; done
sleep 2
echo "after_200_requests_kb: $(rss)"
kill -TERM $pid; wait $pid; echo "exit_on_sigterm=$?"
rm -rf "$dir"
