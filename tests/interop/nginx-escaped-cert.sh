#!/usr/bin/env bash
# Captures what Debian's nginx puts in its client-certificate variables, as reference
# vectors for gangway-tls (crates/gangway-tls/tests/data/nginx-*).
#
# What it does, all on 127.0.0.1:
#   1. installs nginx (nginx-light, else nginx) and openssl from Debian if missing;
#   2. makes with openssl a device CA, a device certificate whose subject needs every kind
#      of RFC 2253 escaping, and four invalid client certificates (expired, signed by
#      another CA, self-signed, serverAuth-only extended key usage);
#   3. starts nginx in the foreground of a child process with two TLS servers:
#        - `ssl_verify_client optional` (the IGEL device gateway's nginx setting): the
#          valid device certificate is queried for $ssl_client_escaped_cert, _s_dn, _i_dn,
#          _serial, _fingerprint, _v_start, _v_end, _verify;
#        - each invalid certificate is sent to both: `optional` answers 400 and logs
#          OpenSSL's reason text; `ssl_verify_client optional_no_ca` forwards it (with
#          $ssl_client_verify = FAILED:<reason>) only when the issuer is missing or
#          untrusted, and answers 400 otherwise;
#   4. queries them with curl --cert, stops nginx by its PID, and writes the vectors.
#
# Run as root from anywhere: tests/interop/nginx-escaped-cert.sh
# The vectors are committed; rerunning changes every key and certificate, which is fine:
# the unit tests read whatever is there.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/crates/gangway-tls/tests/data"
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
    if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

# --- 1. tools -------------------------------------------------------------------------
if ! command -v nginx >/dev/null || ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then
    # Keep the package's own service from starting: this script starts its own nginx.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=yes
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        openssl curl ca-certificates
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx
fi
nginx_bin=$(command -v nginx)
echo "using $("$nginx_bin" -v 2>&1) with $(openssl version)"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- 2. certificates --------------------------------------------------------------------
cd "$work"
mkdir -p ca/newcerts
: >ca/index.txt
echo 1000 >ca/serial

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ec_key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 7300 -utf8 \
    -subj "/C=DE/O=Gangway Interop/CN=Gangway Interop Device CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"

ec_key other-ca.key
openssl req -x509 -new -key other-ca.key -out other-ca.pem -days 7300 \
    -subj "/CN=Some Other CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"

cat >client.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:device-0001.devices.example.com, IP:192.0.2.17, email:device-0001@example.com, URI:urn:igel:device:0001
EOF
cat >server-only.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
EOF

# The device certificate: its subject exercises RFC 2253 escaping (`,` `+` `"` `<` `>` `;`
# `\`, a leading `#`, a trailing space, UTF-8), a multi-valued RDN and emailAddress.
ec_key device.key
openssl req -new -key device.key -out device.csr -utf8 -multivalue-rdn \
    -subj '/C=DE/ST=Baden-Württemberg/L=Augsburg/O=IGEL Technology\, GmbH/OU=Devices \+ Thin Clients/OU=Lab "A" <1>; back\\slash/CN=#device-0001 /serialNumber=UD3-0001+UID=d0001/emailAddress=ops@example.com'
openssl x509 -req -in device.csr -CA ca.pem -CAkey ca.key -set_serial 0x00c0ffee15900d0001 \
    -days 7300 -extfile client.ext -out device.pem

# Expired: `openssl ca` is the one command of OpenSSL 3.0 that takes explicit dates.
cat >ca.cnf <<EOF
[ ca ]
default_ca = device_ca
[ device_ca ]
dir = $work/ca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
certificate = $work/ca.pem
private_key = $work/ca.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
ec_key expired.key
openssl req -new -key expired.key -out expired.csr -subj "/CN=expired-device"
openssl ca -batch -notext -config ca.cnf -extensions client_ext -in expired.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20210101000000Z 2>/dev/null

ec_key wrong-ca.key
openssl req -new -key wrong-ca.key -out wrong-ca.csr -subj "/CN=wrong-ca-device"
openssl x509 -req -in wrong-ca.csr -CA other-ca.pem -CAkey other-ca.key -set_serial 7 \
    -days 7300 -extfile client.ext -out wrong-ca.pem

ec_key self-signed.key
openssl req -x509 -new -key self-signed.key -out self-signed.pem -days 7300 \
    -subj "/CN=self-signed-device" -addext "extendedKeyUsage=clientAuth"

ec_key server-eku.key
openssl req -new -key server-eku.key -out server-eku.csr -subj "/CN=server-eku-device"
openssl x509 -req -in server-eku.csr -CA ca.pem -CAkey ca.key -set_serial 8 \
    -days 7300 -extfile server-only.ext -out server-eku.pem

ec_key server.key
openssl req -x509 -new -key server.key -out server.pem -days 30 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"

# --- 3. nginx ---------------------------------------------------------------------------
port_optional=$(free_port)
port_no_ca=$(free_port)
mkdir -p logs tmp
locations='
        default_type text/plain;
        location = /escaped     { return 200 "$ssl_client_escaped_cert"; }
        location = /raw         { return 200 "$ssl_client_raw_cert"; }
        location = /s_dn        { return 200 "$ssl_client_s_dn"; }
        location = /i_dn        { return 200 "$ssl_client_i_dn"; }
        location = /serial      { return 200 "$ssl_client_serial"; }
        location = /fingerprint { return 200 "$ssl_client_fingerprint"; }
        location = /v_start     { return 200 "$ssl_client_v_start"; }
        location = /v_end       { return 200 "$ssl_client_v_end"; }
        location = /verify      { return 200 "$ssl_client_verify"; }'
cat >nginx.conf <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log info;
events { worker_connections 64; }
http {
    access_log $work/logs/access.log;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    ssl_certificate $work/server.pem;
    ssl_certificate_key $work/server.key;
    ssl_client_certificate $work/ca.pem;
    ssl_verify_depth 2;
    server {
        listen 127.0.0.1:$port_optional ssl;
        server_name localhost;
        ssl_verify_client optional;
        $locations
    }
    server {
        listen 127.0.0.1:$port_no_ca ssl;
        server_name localhost;
        ssl_verify_client optional_no_ca;
        $locations
    }
}
EOF
"$nginx_bin" -t -p "$work" -c "$work/nginx.conf"
"$nginx_bin" -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!

query() { # port cert key path -> stdout
    curl -sS --fail --max-time 10 --cacert server.pem \
        --resolve "localhost:$1:127.0.0.1" --cert "$2" --key "$3" "https://localhost:$1$4"
}
for _ in $(seq 1 50); do
    if curl -s -o /dev/null --max-time 1 --cacert server.pem \
        --resolve "localhost:$port_optional:127.0.0.1" "https://localhost:$port_optional/verify"; then
        break
    fi
    sleep 0.1
done

# --- 4. vectors -------------------------------------------------------------------------
mkdir -p "$out"
cp device.pem "$out/nginx-device.pem"
cp ca.pem "$out/nginx-ca.pem"
for variable in escaped raw s_dn i_dn serial fingerprint v_start v_end verify; do
    query "$port_optional" device.pem device.key "/$variable" >"$out/nginx-device.$variable"
done
# Each invalid certificate: OpenSSL's reason text (logged by nginx when it answers 400
# under `optional`) and what `optional_no_ca` does with it: "200 FAILED:<reason>" when it
# forwards (only for a missing or untrusted issuer), "400" when it refuses.
status_of() { # port cert key -> "<status> <body>"
    curl -s -o body.txt -w '%{http_code}' --max-time 10 --cacert server.pem \
        --resolve "localhost:$1:127.0.0.1" --cert "$2" --key "$3" "https://localhost:$1/verify"
}
for case in expired wrong-ca self-signed server-eku; do
    cp "$case.pem" "$out/nginx-invalid-$case.pem"
    status_of "$port_optional" "$case.pem" "$case.key" >"$out/nginx-invalid-$case.optional"
    reason=$(grep 'client SSL certificate verify error' logs/error.log | tail -n 1 |
        sed -e 's/.*verify error: ([0-9]*://' -e 's/) while reading.*$//' -e 's/)$//')
    printf '%s' "$reason" >"$out/nginx-invalid-$case.reason"
    status=$(status_of "$port_no_ca" "$case.pem" "$case.key")
    if [ "$status" = 200 ]; then
        printf '200 %s' "$(cat body.txt)" >"$out/nginx-invalid-$case.optional_no_ca"
    else
        printf '%s' "$status" >"$out/nginx-invalid-$case.optional_no_ca"
    fi
done
kill "$nginx_pid"
wait "$nginx_pid" 2>/dev/null || true
nginx_pid=""

echo "vectors written to $out:"
for file in "$out"/nginx-*; do
    printf '  %s (%s bytes)\n' "$(basename "$file")" "$(wc -c <"$file")"
done
echo "device subject: $(cat "$out/nginx-device.s_dn")"
for case in expired wrong-ca self-signed server-eku; do
    printf '  %-12s reason "%s"; optional: %s; optional_no_ca: %s\n' "$case" \
        "$(cat "$out/nginx-invalid-$case.reason")" "$(cat "$out/nginx-invalid-$case.optional")" \
        "$(cat "$out/nginx-invalid-$case.optional_no_ca")"
done
