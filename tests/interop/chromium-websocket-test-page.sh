#!/usr/bin/env bash
# Runs the `websocket_test_page` route in a real browser: Debian's Chromium, headless and
# driven by chromedriver (W3C WebDriver over HTTP, spoken by a few lines of Python's
# standard library), loads https://localhost:PORT/websocket-test from `gangway demo`
# (self-signed certificate, built-in echo origin). The page opens a WebSocket to /ws
# through the proxy (Chromium uses HTTP/2 extended CONNECT when the server offers it),
# sends a message and expects it back.
#
# Checks, all on 127.0.0.1:
#   1. the page as served reports PASS;
#   2. the same page pointed at a path with no WebSocket (/nothing: the echo origin
#      answers it with 200 JSON, not 101) reports FAILED at connect.
#
# Installs chromium and chromium-driver from Debian if missing, builds gangway, starts
# `gangway demo` and chromedriver on free ports and stops both by their PIDs.
#
# Run as root from anywhere: tests/interop/chromium-websocket-test-page.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
demo_pid=""
driver_pid=""

cleanup() {
    for pid in "$demo_pid" "$driver_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
fi

cd "$root"
cargo build -q -p gangway
"$root/target/debug/gangway" demo --http-port 0 --https-port 0 >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
port=""
for _ in $(seq 1 300); do
    port=$(sed -n 's/^ *HTTPS 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/demo.out" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "gangway demo did not start"; cat "$work/demo.err"; exit 1; }

driver_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chromedriver --port="$driver_port" --allowed-ips=127.0.0.1 >"$work/driver.log" 2>&1 &
driver_pid=$!

python3 - "$driver_port" "$port" "$work" <<'PY'
import json, sys, time, urllib.request

driver, port, work = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{driver}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["value"]

deadline = time.time() + 30
while True:
    try:
        call("GET", "/status")
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("chromedriver did not start")
        time.sleep(0.1)

session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
    "acceptInsecureCerts": True,
    "goog:chromeOptions": {"args": [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={work}/profile"]},
}}})["sessionId"]

def check(url):
    call("POST", f"/session/{session}/url", {"url": url})
    deadline = time.time() + 30
    while True:
        state = call("POST", f"/session/{session}/execute/sync", {"script":
            "return [document.getElementById('result').textContent,"
            " document.getElementById('log').textContent];", "args": []})
        if state[0] != "running" or time.time() > deadline:
            return state
        time.sleep(0.1)

failures = 0
try:
    result, log = check(f"https://localhost:{port}/websocket-test")
    print(log.rstrip())
    print("result:", result)
    if result != "PASS":
        print("FAIL: the page did not pass")
        failures += 1
    # The page's own form checks another target; /nothing answers 200, not 101.
    call("POST", f"/session/{session}/execute/sync", {"script":
        "document.getElementById('url').value = 'wss://localhost:" + port + "/nothing';"
        " document.getElementById('result').textContent = 'running';"
        " document.getElementById('form').requestSubmit(); return 0;", "args": []})
    deadline = time.time() + 30
    while True:
        result, log = call("POST", f"/session/{session}/execute/sync", {"script":
            "return [document.getElementById('result').textContent,"
            " document.getElementById('log').textContent];", "args": []})
        if result != "running" or time.time() > deadline:
            break
        time.sleep(0.1)
    print(log.rstrip())
    print("result:", result)
    if not result.startswith("FAILED at connect"):
        print("FAIL: a path without a WebSocket did not fail at connect")
        failures += 1
finally:
    call("DELETE", f"/session/{session}")
sys.exit(1 if failures else 0)
PY
echo "ok: Chromium ran the WebSocket check through gangway"
