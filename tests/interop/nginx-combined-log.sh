#!/usr/bin/env bash
# Captures the lines Debian's nginx writes with its predefined `combined` access-log format,
# as reference vectors for gangway's `format = "combined"` (the test
# `combined_matches_the_lines_nginx_wrote` in crates/gangway-proxy/src/access_tests.rs).
#
# What it does, all on 127.0.0.1:
#   1. installs nginx (nginx-light, else nginx) from Debian if missing;
#   2. starts nginx (TZ=UTC, so $time_local ends in +0000 as gangway's does) with
#      `access_log ... combined` and one location answering 200 "ok\n";
#   3. sends, over raw sockets so that every byte is known:
#        a. an HTTP/1.1 GET with a query, a Referer and a User-Agent that needs escaping
#           (`"`, `\` and UTF-8 bytes);
#        b. an HTTP/1.0 GET with neither header (both logged as "-");
#        c. an HTTP/1.1 GET in absolute form (`GET http://localhost:PORT/abs HTTP/1.1`);
#   4. stops nginx by its PID and prints each request's Unix time and the line nginx wrote.
#
# Run as root from anywhere: tests/interop/nginx-combined-log.sh
# The port in (c) and the times change on every run; the test pins one run's output.
set -euo pipefail

work=$(mktemp -d)
nginx_pid=""
created_policy=""

cleanup() {
    if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
        kill "$nginx_pid"
        wait "$nginx_pid" 2>/dev/null || true
    fi
    if [ -n "$created_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. nginx ---------------------------------------------------------------------------
if ! command -v nginx >/dev/null; then
    # Keep the package's own service from starting: this script starts its own nginx.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=yes
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx
fi
nginx_bin=$(command -v nginx)
echo "using $("$nginx_bin" -v 2>&1)"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# --- 2. start ---------------------------------------------------------------------------
mkdir -p "$work/logs" "$work/tmp"
cat >"$work/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log info;
events { worker_connections 64; }
http {
    access_log $work/logs/access.log combined;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        default_type text/plain;
        location / { return 200 "ok\n"; }
    }
}
EOF
TZ=UTC "$nginx_bin" -t -q -p "$work" -c "$work/nginx.conf"
TZ=UTC "$nginx_bin" -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!

# --- 3. requests ------------------------------------------------------------------------
python3 - "$port" "$work/logs/access.log" <<'PY'
import socket, sys, time

port, log = int(sys.argv[1]), sys.argv[2]
requests = [
    b"GET /search/caf%C3%A9?q=a+b&x=%22y%22 HTTP/1.1\r\nHost: localhost\r\n"
    b"Referer: https://ref.example/a?b=\"c\"\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux) \"quoted\" back\\slash caf\xc3\xa9\r\n"
    b"Connection: close\r\n\r\n",
    b"GET /plain HTTP/1.0\r\n\r\n",
    f"GET http://localhost:{port}/abs?z=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
]

deadline = time.time() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("nginx did not start")
        time.sleep(0.1)

for request in requests:
    # Start each request on a whole second, so the time the line shows is unambiguous.
    time.sleep(1 - time.time() % 1 + 0.05)
    sent_at = int(time.time())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        while conn.recv(4096):
            pass
    print(f"unix time {sent_at}")

deadline = time.time() + 10
while True:
    lines = open(log, "rb").read().splitlines()
    if len(lines) >= len(requests) or time.time() > deadline:
        break
    time.sleep(0.1)
for line in lines:
    print(repr(line))
PY
