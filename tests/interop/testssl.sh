#!/usr/bin/env bash
# Scans gangway's TLS listener with testssl.sh (Debian package `testssl.sh`) and fails on
# any weak protocol, cipher or known vulnerability finding.
#
# What it scans, all on 127.0.0.1: the HTTPS listener of `gangway demo` (the defaults every
# listener gets: TLS 1.2 and 1.3, rustls' cipher suites, ECDSA P-256 certificate), and a
# TLS 1.3-only listener with optional client certificates (the IGEL device listener's
# settings), both started by this script and stopped by their PIDs.
#
# Findings of severity MEDIUM, HIGH or CRITICAL about the listener fail the run. Findings
# about the throwaway test certificate (self-signed, no CRL/OCSP, long validity), DNS, and
# the HTTP headers of the page behind it are listed but do not fail it.
#
# Run as root from anywhere: tests/interop/testssl.sh   (takes a few minutes)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

command -v testssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q testssl.sh >/dev/null
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null

cd "$root"
cargo build -q -p gangway
gangway="$root/target/debug/gangway"

"$gangway" demo --http-port 0 --https-port 0 >"$work/demo.out" 2>"$work/demo.err" &
pids+=($!)
demo_port=""
for _ in $(seq 1 300); do
    demo_port=$(sed -n 's/^ *HTTPS 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/demo.out" | head -1)
    [ -n "$demo_port" ] && break
    sleep 0.1
done
[ -n "$demo_port" ] || { echo "gangway demo did not start"; exit 1; }

# A TLS 1.3-only listener asking for optional client certificates.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=device.test -addext subjectAltName=DNS:device.test \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
device_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/device.toml" <<TOML
[[listener]]
address = "127.0.0.1:$device_port"
certificate = "$work/cert.pem"
private_key = "$work/key.pem"
tls_versions = ["1.3"]
client_certificates = "optional"
client_ca = "$work/cert.pem"

[[listener.route]]
path = "/"
respond = { status = 200, body = "device" }
TOML
"$gangway" run -c "$work/device.toml" >"$work/device.out" 2>"$work/device.err" &
pids+=($!)
for _ in $(seq 1 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$device_port") 2>/dev/null && break
    sleep 0.1
done

failed=0
scan() {
    local name=$1 port=$2
    local json="$work/$name.json"
    echo "== $name (127.0.0.1:$port)"
    testssl --quiet --color 0 --warnings off --ip 127.0.0.1 --severity LOW \
        --jsonfile "$json" "127.0.0.1:$port" >"$work/$name.txt" 2>&1 || true
    python3 - "$json" <<'PY' || failed=1
import json, sys
findings = json.load(open(sys.argv[1]))
# The test certificate (self-signed, long-lived, no CRL/OCSP), DNS records and the HTTP
# headers of the page behind the listener (HSTS and other security headers are route
# settings) are not properties of the TLS listener: listed, not failed on.
def about_listener(finding):
    ident = finding["id"]
    return not (ident.startswith("cert") or ident.startswith("DNS_") or ident in
                ("HSTS", "security_headers", "HPKP", "banner_application", "cookie_count"))
bad = [f for f in findings if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")
       and about_listener(f)]
for f in findings:
    if f["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "cipher_order",
                   "FS", "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                   "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_OBSOLETED"):
        print(f"  {f['id']:22} {f['finding']}")
for f in findings:
    if f.get("severity") in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
        scope = "" if about_listener(f) else " (test certificate / page, not failed on)"
        print(f"  {f['severity']:8} {f['id']}: {f['finding']}{scope}")
print(f"listener findings of severity MEDIUM or above: {len(bad)}")
sys.exit(1 if bad else 0)
PY
}
scan demo "$demo_port"
scan device "$device_port"
exit $failed
