#!/usr/bin/env bash
# Scans every TLS listener of gangway's example profiles, and the defaults of `gangway
# demo`, with testssl.sh (Debian package `testssl.sh`) and fails on any weak protocol,
# cipher or known vulnerability finding.
#
# What it runs, all on 127.0.0.1, each process started here and stopped by its PID:
#
# - `gangway demo`: its HTTPS listener has the defaults every listener gets (TLS 1.2 and
#   1.3, rustls' cipher suites in the server's order, ALPN h2 and http/1.1).
# - each example profile (examples/{igel,estos,powerfolder,allegro}.toml) served by its own
#   release binary (gangway-igel, ...). The example is copied with only these values
#   replaced, each by exact text (the run fails if one is not found, so a changed example
#   is noticed): certificate, key and CA file paths by files made here; listen addresses
#   by free ports on 127.0.0.1; upstreams (UMS, UCServer, PowerFolder nodes, meter ports)
#   by a local origin (python3 http.server, plain or with TLS), and the Allegro meters'
#   fingerprint pins by the local TLS origin's. Every TLS setting (versions, client
#   certificate policy, SNI certificates) is then the profile's own expansion of the
#   example, as `--print-config` shows; cipher suites and ALPN are not configurable.
#   Every TLS listener of the expansion is scanned, once per certificate name for
#   listeners that choose a certificate by SNI.
# - Certificates: one test CA and a server certificate per example host name (the
#   Allegro wildcard included), all ECDSA P-256 (no profile page prescribes a key type);
#   testssl is given the CA (`--add-ca`) so the chain verifies. Where an example names
#   several CA files (IGEL device CA, UMS CA) they all become this one CA.
#
# A finding of severity LOW or above fails the run when it is about the listener's TLS:
# protocols, GREASE, cipher lists, forward secrecy, server preferences, session and
# extension defaults, vulnerabilities, the cipher list per protocol. Findings about the
# throwaway test certificates (no CRL/OCSP URI, validity), DNS, the HTTP page behind the
# listener (HSTS and other headers are route settings) and client simulations are listed
# but do not fail it. A warning of testssl's own (a test it could not run) or a report
# without results fails it too. testssl 3.0 gives no grade.
#
# Run as root from anywhere: tests/interop/testssl.sh [demo igel estos powerfolder allegro]
# (all by default; a few minutes per listener). `KEEP=dir` keeps the JSON and text reports
# in dir; `GANGWAY_BIN_DIR=dir` uses the release binaries in dir instead of building them.
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
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP" && cp -r "$work"/. "$KEEP"/
    fi
    rm -rf "$work"
}
trap cleanup EXIT

command -v testssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q testssl.sh >/dev/null
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(demo igel estos powerfolder allegro)

cd "$root"
bins=()
for target in "${targets[@]}"; do
    case $target in
    demo) bins+=(-p gangway) ;;
    igel | estos | powerfolder | allegro) bins+=(-p "gangway-$target") ;;
    *) echo "unknown target $target (demo igel estos powerfolder allegro)" >&2; exit 2 ;;
    esac
done
if [ -n "${GANGWAY_BIN_DIR:-}" ]; then
    bin_dir=$GANGWAY_BIN_DIR
else
    cargo build -q --release "${bins[@]}"
    bin_dir=$(cargo metadata -q --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# The test CA, and `issue NAME SAN...` for a server certificate and key in $work/NAME.*.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=gangway testssl CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
issue() {
    local name=$1 sans
    shift
    sans=$(printf ',%s' "$@")
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=${1#*:}" -keyout "$work/$name.key" -out "$work/$name.csr" 2>/dev/null
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -days 365 -sha256 -extfile <(printf '%s\n' "subjectAltName=${sans#,}" \
        "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth") -out "$work/$name.pem" 2>/dev/null
}

# The local origins: plain HTTP, and HTTPS (TLS 1.2 and 1.3) for the UMS and the meters.
mkdir -p "$work/www"
echo "origin" >"$work/www/index.html"
origin_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$origin_port" \
    >"$work/origin.log" 2>&1 &
pids+=($!)
issue origin DNS:ums.internal IP:127.0.0.1
tls_origin_port=$(free_port)
python3 - "$work" "$tls_origin_port" >"$work/tls-origin.log" 2>&1 <<'PY' &
import functools, http.server, ssl, sys
work, port = sys.argv[1], int(sys.argv[2])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{work}/origin.pem", f"{work}/origin.key")
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=f"{work}/www")
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
PY
pids+=($!)
wait_port "$origin_port"
wait_port "$tls_origin_port"
origin_pin=$(openssl x509 -noout -fingerprint -sha256 -in "$work/origin.pem" | cut -d= -f2)

# `rewrite EXAMPLE OUT OLD NEW [OLD NEW]...`: copies the example with each OLD text
# replaced by NEW; fails when an OLD text is not in the example.
rewrite() {
    python3 - "$@" <<'PY'
import sys
example, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(example).read()
for old, new in zip(pairs[::2], pairs[1::2]):
    if old not in text:
        sys.exit(f"{example}: {old!r} not found; update tests/interop/testssl.sh")
    text = text.replace(old, new)
open(out, "w").write(text)
PY
}

# Prints one line per scan of the expanded configuration's TLS listeners: NAME ADDRESS
# SNI SETTINGS, SNI being each name of a certificate store (or the listener's own name).
tls_listeners() {
    python3 - "$1" "$2" <<'PY'
import sys, tomllib
config, server_name = tomllib.load(open(sys.argv[1], "rb")), sys.argv[2]
for listener in config.get("listener", []):
    if "certificate" not in listener and "certificates" not in listener:
        continue
    settings = ",".join(f"{key}={listener[key]}".replace(" ", "") for key in
                        ("tls_versions", "client_certificates", "unknown_sni") if key in listener)
    names = [name for cert in listener.get("certificates", []) for name in cert.get("names", [])]
    for sni in names or [server_name]:
        print(listener["name"], listener["address"], sni, settings or "defaults")
PY
}

failed=0
summary=()
# `scan LABEL SNI PORT`: testssl against 127.0.0.1:PORT with SNI, its report judged.
scan() {
    local label=$1 sni=$2 port=$3
    local json="$work/$label.json" verdict
    echo "== $label ($sni at 127.0.0.1:$port)"
    # From $work: testssl names the git commit of its working directory as its version.
    (cd "$work" && testssl --quiet --color 0 --warnings off --ip 127.0.0.1 \
        --add-ca "$work/ca.pem" --jsonfile-pretty "$json" "https://$sni:$port/") \
        </dev/null >"$work/$label.txt" 2>&1 || true
    verdict=$(python3 "$here/testssl-verdict.py" "$json") || failed=1
    echo "$verdict"
    summary+=("$label: $(tail -1 <<<"$verdict")")
}

if [[ " ${targets[*]} " == *" demo "* ]]; then
    "$bin_dir/gangway" demo --http-port 0 --https-port 0 >"$work/demo.out" 2>"$work/demo.err" &
    pids+=($!)
    demo_port=""
    for _ in $(seq 1 300); do
        demo_port=$(sed -n 's/^ *HTTPS 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/demo.out" | head -1)
        [ -n "$demo_port" ] && break
        sleep 0.1
    done
    [ -n "$demo_port" ] || { echo "gangway demo did not start"; exit 1; }
    scan demo localhost "$demo_port"
fi

for profile in igel estos powerfolder allegro; do
    [[ " ${targets[*]} " == *" $profile "* ]] || continue
    example="$root/examples/$profile.toml"
    config="$work/$profile.toml"
    case $profile in
    igel)
        server_name=gateway.example.com
        issue igel DNS:gateway.example.com
        rewrite "$example" "$config" \
            /etc/gangway/gateway.fullchain.pem "$work/igel.pem" \
            /etc/gangway/gateway.key "$work/igel.key" \
            /etc/gangway/igel-device-ca.pem "$work/ca.pem" \
            https://ums.internal:8443 "https://127.0.0.1:$tls_origin_port" \
            /etc/gangway/ums-ca.pem "$work/ca.pem" \
            0.0.0.0:8443 "127.0.0.1:$(free_port)" \
            0.0.0.0:8444 "127.0.0.1:$(free_port)" \
            0.0.0.0:443 "127.0.0.1:$(free_port)"
        ;;
    estos)
        server_name=uc.example.com
        issue estos DNS:uc.example.com
        rewrite "$example" "$config" \
            /etc/gangway/uc.example.com.fullchain.pem "$work/estos.pem" \
            /etc/gangway/uc.example.com.key "$work/estos.key" \
            http://127.0.0.1:7224 "http://127.0.0.1:$origin_port" \
            0.0.0.0:80 "127.0.0.1:$(free_port)" \
            0.0.0.0:443 "127.0.0.1:$(free_port)"
        ;;
    powerfolder)
        server_name=files.example.com
        issue powerfolder DNS:files.example.com
        rewrite "$example" "$config" \
            /etc/gangway/files.example.com.fullchain.pem "$work/powerfolder.pem" \
            /etc/gangway/files.example.com.key "$work/powerfolder.key" \
            10.0.0.11:8080 "127.0.0.1:$origin_port" \
            10.0.0.12:8080 "127.0.0.1:$origin_port" \
            0.0.0.0:80 "127.0.0.1:$(free_port)" \
            0.0.0.0:443 "127.0.0.1:$(free_port)"
        ;;
    allegro)
        server_name=mm-0001.mm-remote.example.com
        issue allegro-wildcard 'DNS:*.mm-remote.example.com'
        issue allegro-lab DNS:lab.example.com
        rewrite "$example" "$config" \
            /etc/gangway/wildcard.mm-remote.example.com.pem "$work/allegro-wildcard.pem" \
            /etc/gangway/wildcard.mm-remote.example.com.key "$work/allegro-wildcard.key" \
            /etc/gangway/lab.example.com.pem "$work/allegro-lab.pem" \
            /etc/gangway/lab.example.com.key "$work/allegro-lab.key" \
            "port = 10001" "port = $tls_origin_port" \
            "port = 10002" "port = $tls_origin_port" \
            3A:1F:52:C4:9E:07:B8:61:D3:2A:F0:45:9C:7E:18:B6:E2:4D:90:3F:A7:5C:C1:08:6B:E9:24:71:DF:13:85:9C \
            "$origin_pin" \
            0b6c4f2e91d37a58c0e6b24f1a9d83c7e5f60b1d2c4a7e9f38b5d1c06a2e47e1 "$origin_pin" \
            0.0.0.0:80 "127.0.0.1:$(free_port)" \
            0.0.0.0:443 "127.0.0.1:$(free_port)"
        ;;
    esac
    binary="$bin_dir/gangway-$profile"
    "$binary" -c "$config" --check
    "$binary" -c "$config" --print-config >"$work/$profile.expanded.toml"
    "$binary" -c "$config" >"$work/$profile.out" 2>"$work/$profile.err" &
    pids+=($!)
    while read -r listener address sni settings; do
        port=${address##*:}
        wait_port "$port"
        echo "-- gangway-$profile listener $listener: $settings"
        scan "$profile-$listener-$sni" "$sni" "$port"
    done < <(tls_listeners "$work/$profile.expanded.toml" "$server_name")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $failed
