#!/usr/bin/env bash
# Rewrites link/startup-order.txt: the functions a release server runs while starting,
# idling and serving its login page, in the order they are first touched. Release
# builds lay them out first (see build.rs), so an idle server maps a few megabytes of
# code rather than most of it.
#
# Usage: link/generate.sh          (x86-64 Linux; needs perf and python3, ~20 minutes)
#
# How: one release build keeps its optimised object and prints its link line. The
# script then links that object again and again (a second each), each time recording
# the page faults of a start + idle + three login pages. A fault outside the listed
# code names a function that was missed; it joins the list, and the next link moves
# it to the front. It stops when a round finds (almost) nothing new.
#
# Run it after upgrading dependencies or the toolchain (symbol names carry crate
# hashes) or when `benches/startup.sh` shows idle memory creeping up. Names that no
# longer exist are ignored by the linker.
set -euo pipefail
cd "$(dirname "$0")/.."
list=link/startup-order.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building once, keeping the optimised object (-C save-temps)…"
touch src/main.rs # so that the binary is linked again and its link line printed
cargo rustc --release --bin sluice -- -C save-temps --print link-args 2>&1 |
  grep -- '-fuse-ld=lld' | tail -1 > "$work/link.cmd"
test -s "$work/link.cmd" || { echo "no LLD link line printed" >&2; exit 1; }
python3 - "$work/link.cmd" "$work/bin" "$work/link.sh" "$work/order" <<'EOF'
import re, sys
cmd, out, script, order = sys.argv[1:]
line = open(cmd).read().strip()
line = re.sub(r'"-o" "[^"]*"', f'"-o" "{out}"', line)
line = re.sub(r' "-Wl,--symbol-ordering-file=[^"]*"', '', line)
line += f' "-Wl,--symbol-ordering-file={order}"'
open(script, 'w').write("#!/bin/bash\n" + line + "\n")
EOF
chmod +x "$work/link.sh"
: > "$work/order"

record() { # faults of one start + idle + login pages, as "address-symbol" lines
  local dir port=18990 perf_pid pid
  dir=$(mktemp -d)
  SLUICE_DATA_DIR=$dir SLUICE_BIND=127.0.0.1:$port SLUICE_LOG=warn \
    perf record -q -e page-faults -c 1 -d -o "$work/faults.data" "$work/bin" >/dev/null 2>&1 &
  perf_pid=$!
  until curl -fs -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.01; done
  sleep 3
  for _ in 1 2 3; do curl -fs -o /dev/null http://127.0.0.1:$port/login; done
  sleep 1
  pid=$(pgrep -P "$perf_pid" | head -1)
  kill -INT "$pid"; wait "$perf_pid" || true
  rm -rf "$dir"
  perf script -i "$work/faults.data" --no-demangle -F addr,sym 2>/dev/null | awk '{print $2}'
}

for round in $(seq 1 80); do
  "$work/link.sh"
  new=$(record | python3 -c '
import subprocess, sys
order_path, binary = sys.argv[1:]
code = {f[2] for f in (l.split() for l in subprocess.run(["nm", "--defined-only", binary],
        capture_output=True, text=True).stdout.splitlines()) if len(f) == 3 and f[1] in "tT"}
order = [l.strip() for l in open(order_path) if l.strip()]
seen, new = set(order), []
for sym in (l.strip() for l in sys.stdin):
    if sym in code and sym not in seen:
        seen.add(sym); new.append(sym)
open(order_path, "w").write("".join(s + "\n" for s in order + new))
print(len(new))' "$work/order" "$work/bin")
  echo "round $round: $new functions added"
  [ "$new" -lt 10 ] && break
done
cp "$work/order" "$list"
rm -rf target/release/deps/sluice-*.rcgu.* target/release/deps/rustc*/
echo "wrote $list ($(wc -l < "$list") functions); rebuild with cargo build --release"
