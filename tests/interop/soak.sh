#!/usr/bin/env bash
# The long soak: mixed plain HTTP, HTTPS (a new TLS connection per request) and WebSocket
# traffic through gangway with a configuration reload every 3 s and an upstream restart
# every 7 s, for 30 minutes by default; prints one line per second (requests, failures
# during and outside upstream restarts, WebSocket messages, open descriptors, RSS) and
# fails on any failure outside a restart, a descriptor leak or unbounded memory growth.
# It is the `soak` end-to-end test (15 s in CI) run longer, in release mode, in-process.
#
# Run from anywhere: tests/interop/soak.sh [seconds]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
SOAK_SECONDS=${1:-1800} cargo test --release -p gangway-e2e --test soak -- --nocapture
