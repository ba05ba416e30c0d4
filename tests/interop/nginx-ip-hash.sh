#!/usr/bin/env bash
# Captures which peer Debian's nginx picks for a fixed table of client addresses (ip_hash)
# and keys (hash, hash consistent): the golden trace that gangway-upstream's unit tests
# replay (crates/gangway-upstream/tests/data/ip_hash_golden.txt).
#
# What it does, all on 127.0.0.1:
#   1. installs nginx (nginx-light, else nginx) and curl from Debian if missing;
#   2. starts one nginx (foreground child, single process) with five "recording" servers
#      a..e, each on its own port answering its own letter, and one proxy server whose
#      locations proxy to upstream blocks:
#        equal      ip_hash; a b c
#        weighted   ip_hash; a weight=5, b, c weight=2, d
#        withdown   ip_hash; a, b down, c, d, e        (a down peer makes nginx rehash)
#        fallback   ip_hash; a, x, c, d  (x: a closed port with max_fails=0, so every
#                   request hashed to x is refused there and nginx retries the next peer
#                   of the same hash sequence)
#        hashed     hash $arg_key;            a b c d
#        chashed    hash $arg_key consistent; a b c weight=2 d
#   3. spoofs each client address with `X-Real-IP` (`set_real_ip_from 127.0.0.1;
#      real_ip_header X-Real-IP;`): the realip module replaces the connection's address,
#      which is what ip_hash hashes (r->connection->sockaddr). The proxy echoes
#      $remote_addr in a header and the script checks that nginx saw the spoofed address
#      and that every ip_hash pool spread clients over more than one peer;
#   4. stops nginx by its PID and writes the trace.
#
# Trace format (one fact per line, `#` lines are comments):
#   pool <name> <method> <peer>=<host>:<port>:<weight>[:down|:maxfails0] ...
#   <pool> <client address or hash key> <peer that answered>
#
# Run as root from anywhere: tests/interop/nginx-ip-hash.sh [output file]
# Rerunning picks new ports (the consistent-hash ring depends on them), which is fine:
# the unit test reads whatever is there.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-"$root/crates/gangway-upstream/tests/data/ip_hash_golden.txt"}
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
if ! command -v nginx >/dev/null || ! command -v curl >/dev/null; then
    # Keep the package's own service from starting: this script starts its own nginx.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=yes
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx
fi
nginx_bin=$(command -v nginx)
nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
echo "using $nginx_version"

# A port nothing listens on now and that this script has not handed out yet.
used_ports=" "
free_port() {
    local port
    while :; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        case "$used_ports" in *" $port "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            used_ports="$used_ports$port "
            echo "$port"
            return
        fi
    done
}

declare -A port
for peer in a b c d e x; do
    port[$peer]=$(free_port)
done
proxy_port=$(free_port)

# --- 2. nginx -------------------------------------------------------------------------
# name -> "method|peer:weight[:flag] ..."
declare -A pools=(
    [equal]="ip_hash|a:1 b:1 c:1"
    [weighted]="ip_hash|a:5 b:1 c:2 d:1"
    [withdown]="ip_hash|a:1 b:1:down c:1 d:1 e:1"
    [fallback]="ip_hash|a:1 x:1:maxfails0 c:1 d:1"
    [hashed]="hash|a:1 b:1 c:1 d:1"
    [chashed]="hash_consistent|a:1 b:1 c:2 d:1"
)
pool_order="equal weighted withdown fallback hashed chashed"

cd "$work"
mkdir -p tmp
{
    cat <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
EOF
    for peer in a b c d e; do
        echo "    server { listen 127.0.0.1:${port[$peer]}; return 200 \"$peer\"; }"
    done
    for pool in $pool_order; do
        spec=${pools[$pool]}
        method=${spec%%|*}
        echo "    upstream $pool {"
        case "$method" in
            ip_hash) echo "        ip_hash;" ;;
            hash) echo "        hash \$arg_key;" ;;
            hash_consistent) echo "        hash \$arg_key consistent;" ;;
        esac
        for entry in ${spec#*|}; do
            IFS=: read -r peer weight flag <<<"$entry"
            line="server 127.0.0.1:${port[$peer]} weight=$weight"
            case "${flag:-}" in
                down) line="$line down" ;;
                maxfails0) line="$line max_fails=0" ;;
            esac
            echo "        $line;"
        done
        echo "    }"
    done
    cat <<EOF
    server {
        listen 127.0.0.1:$proxy_port;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;
        add_header X-Seen-Addr \$remote_addr always;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 2s;
EOF
    for pool in $pool_order; do
        echo "        location = /$pool { proxy_pass http://$pool; }"
    done
    echo "    }"
    echo "}"
} >nginx.conf

"$nginx_bin" -t -q -e "$work/error.log" -p "$work" -c "$work/nginx.conf"
"$nginx_bin" -e "$work/error.log" -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$proxy_port/equal"; then break; fi
    sleep 0.1
done

# --- 3. clients and keys ----------------------------------------------------------------
# A fixed pseudo-random sequence (a 31-bit LCG), so the table is the same on every run.
lcg=20240601
next() {
    lcg=$(((lcg * 1103515245 + 12345) % 2147483648))
}
# Not 255.255.255.255: nginx's address parser returns INADDR_NONE for it, the same value
# as "not an address", so realip ignores it.
ipv4s="0.0.0.0 255.255.255.254 127.0.0.1 10.0.0.1 10.0.0.254 10.0.1.1 192.168.1.10
192.168.1.200 172.16.5.4 1.2.3.4 1.2.3.5 8.8.8.8 100.64.0.1 203.0.113.9 198.51.100.77"
for _ in $(seq 1 160); do
    octets=()
    for _ in 1 2 3 4; do
        next
        octets+=($(((lcg >> 8) % 256)))
    done
    ipv4=$(IFS=.; echo "${octets[*]}")
    [ "$ipv4" = 255.255.255.255 ] || ipv4s="$ipv4s $ipv4"
done
ipv6s="::1 2001:db8::1 2001:db8::2 fe80::1 2a00:1450:4001:82b::200e ff02::1 2001:db8:0:1::1
2001:db8:0:1::2 fd00::abcd"
for _ in $(seq 1 80); do
    groups=()
    for _ in 1 2 3 4 5 6 7 8; do
        next
        groups+=("$(printf '%x' $(((lcg >> 7) % 65536)))")
    done
    ipv6s="$ipv6s $(IFS=:; echo "${groups[*]}")"
done
keys="a b c / /index.html /app/login.jsp /websocket user@example.com session-42"
for n in $(seq 1 90); do
    keys="$keys user$n"
done

ask() { # pool, client address or key -> "<peer> <seen address>"
    local pool=$1 value=$2 response
    if [ "$pool" = hashed ] || [ "$pool" = chashed ]; then
        response=$(curl -sS -D - "http://127.0.0.1:$proxy_port/$pool?key=$value")
    else
        response=$(curl -sS -D - -H "X-Real-IP: $value" "http://127.0.0.1:$proxy_port/$pool")
    fi
    local seen body
    seen=$(printf '%s\n' "$response" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]een-[Aa]ddr: //p')
    body=$(printf '%s\n' "$response" | tr -d '\r' | tail -n 1)
    echo "$body $seen"
}

trace="$work/trace.txt"
{
    echo "# Golden trace of nginx's upstream peer choice, captured by"
    echo "# tests/interop/nginx-ip-hash.sh from $nginx_version on $(date -u +%Y-%m-%d)."
    echo "# pool <name> <method> <peer>=<host>:<port>:<weight>[:down|:maxfails0] ..."
    echo "# <pool> <client address or hash key> <peer that answered>"
    for pool in $pool_order; do
        spec=${pools[$pool]}
        line="pool $pool ${spec%%|*}"
        for entry in ${spec#*|}; do
            IFS=: read -r peer weight flag <<<"$entry"
            line="$line $peer=127.0.0.1:${port[$peer]}:$weight${flag:+:$flag}"
        done
        echo "$line"
    done
} >"$trace"

for pool in $pool_order; do
    distinct=" "
    case "$pool" in
        hashed | chashed) values=$keys ;;
        *) values="$ipv4s $ipv6s" ;;
    esac
    for value in $values; do
        read -r peer seen <<<"$(ask "$pool" "$value")"
        case "$peer" in
            [a-e]) ;;
            *) echo "pool $pool, $value: unexpected answer '$peer'" >&2; exit 1 ;;
        esac
        case "$pool" in
            hashed | chashed) ;;
            *)
                # realip must have replaced the address ip_hash hashes.
                if [ "$value" != 127.0.0.1 ] && [ "$seen" = 127.0.0.1 ]; then
                    echo "nginx saw 127.0.0.1 for X-Real-IP $value: realip not applied" >&2
                    exit 1
                fi
                case "$value" in
                    *:*) ;;
                    *) [ "$seen" = "$value" ] || {
                        echo "nginx saw $seen for X-Real-IP $value" >&2
                        exit 1
                    } ;;
                esac
                ;;
        esac
        distinct="$distinct$peer "
        echo "$pool $value $peer" >>"$trace"
    done
    count=$(echo "$distinct" | tr ' ' '\n' | sort -u | grep -c .)
    if [ "$count" -lt 2 ]; then
        echo "pool $pool: every request went to one peer; the trace would prove nothing" >&2
        exit 1
    fi
done

# --- 4. stop and write -------------------------------------------------------------------
kill "$nginx_pid"
wait "$nginx_pid" 2>/dev/null || true
nginx_pid=""
mkdir -p "$(dirname "$out")"
cp "$trace" "$out"
echo "wrote $(grep -vc '^#' "$out") lines to $out"
