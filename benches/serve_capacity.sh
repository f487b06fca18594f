#!/usr/bin/env bash
# serve-bench's client capacity: requests/s and SSE events/s it sustains on one core against
# serve-mock answering at zero delay, and its self-check with 10,000 streams open at once.
# Usage: benches/serve_capacity.sh [extra `perfgate dev bench-serve-client` flags]   (release build)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin perfgate --bin serve-mock >&2
# 10,000 client sockets plus the mock's: both processes need the file limit raised.
ulimit -n "$(ulimit -Hn)"
out=$(mktemp)
mock_threads=${MOCK_THREADS:-$(( $(nproc) > 2 ? $(nproc) - 1 : 1 ))}
# The client gets core 0 to itself where there are several; the mock the others.
pin_client=() pin_mock=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
  pin_client=(taskset -c 0) pin_mock=(taskset -c "1-$(( $(nproc) - 1 ))")
fi
"${pin_mock[@]}" target/release/serve-mock --threads "$mock_threads" >"$out" &
mock=$!
trap 'kill "$mock" 2>/dev/null; wait "$mock" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q http= "$out" && break; sleep 0.1; done
addr=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$out")
[ -n "$addr" ] || { echo "serve-mock did not start" >&2; exit 1; }
echo "serve-mock at $addr ($mock_threads threads); $(nproc) cores" >&2
"${pin_client[@]}" target/release/perfgate dev bench-serve-client --url "http://$addr" "$@"
