#!/usr/bin/env bash
# Builds the gangway image from the Dockerfile and checks that it serves the demo:
#   1. `docker build`; the image runs as a non-root user;
#   2. `gangway --version` and `gangway check` of a mounted configuration run in it;
#   3. `gangway demo` in a container, published on 127.0.0.1 only (ports picked by Docker):
#      HTTPS /hello reaches the built-in echo origin through the proxy (curl -k), HTTP
#      answers with a redirect to HTTPS;
#   4. `docker stop` (SIGTERM) ends the container, by its ID, with exit status 0.
#
# Needs a running Docker daemon (`docker info`); exits 2 without one.
# Usage: packaging/docker-check.sh [IMAGE_TAG]     (default gangway:check)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tag=${1:-gangway:check}
container=""
work=$(mktemp -d)

cleanup() {
    if [ -n "$container" ]; then
        docker rm -f "$container" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
    echo "docker-check: the Docker daemon is not available (docker info failed); nothing checked" >&2
    exit 2
fi

# --- 1. build -----------------------------------------------------------------------------
DOCKER_BUILDKIT=1 docker build -t "$tag" "$root"
user=$(docker image inspect --format '{{.Config.User}}' "$tag")
case "$user" in
    "" | root | 0 | 0:* | root:*) echo "FAIL: the image runs as root ($user)"; exit 1 ;;
esac
echo "ok: image $tag runs as $user"

# --- 2. version and check -----------------------------------------------------------------
docker run --rm "$tag" --version
cat >"$work/gangway.toml" <<'TOML'
[server]
access_log = { format = "json", path = "/var/log/gangway/access.log" }

[[listener]]
address = "0.0.0.0:8080"

[[listener.route]]
path = "/"
respond = { status = 200, body = "ok" }
TOML
chmod 0644 "$work/gangway.toml"
chmod 0755 "$work"
out=$(docker run --rm -v "$work:/etc/gangway:ro" "$tag" check -c /etc/gangway/gangway.toml)
[ "$out" = "ok" ] || { echo "FAIL: gangway check said: $out"; exit 1; }
echo "ok: gangway check of a mounted configuration"

# --- 3. the demo --------------------------------------------------------------------------
container=$(docker run -d -p 127.0.0.1::8080 -p 127.0.0.1::8443 "$tag" \
    demo --bind 0.0.0.0 --http-port 8080 --https-port 8443)
https_port=$(docker port "$container" 8443/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -1)
http_port=$(docker port "$container" 8080/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -1)
[ -n "$https_port" ] && [ -n "$http_port" ] || { echo "FAIL: ports not published"; exit 1; }

body=""
for _ in $(seq 1 100); do
    if body=$(curl -sk --max-time 5 --resolve "localhost:$https_port:127.0.0.1" \
        "https://localhost:$https_port/hello?from=docker-check"); then
        break
    fi
    sleep 0.2
done
case "$body" in
    *'"path":"/hello?from=docker-check"'* | *'"path": "/hello?from=docker-check"'*) ;;
    *) echo "FAIL: no echo over HTTPS; got: $body"; docker logs "$container"; exit 1 ;;
esac
echo "ok: HTTPS through the proxy to the echo origin: $body"

status=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 \
    --resolve "localhost:$http_port:127.0.0.1" "http://localhost:$http_port/hello")
case "$status" in
    30[1278]" https://localhost"*) echo "ok: HTTP redirects: $status" ;;
    *) echo "FAIL: HTTP answered: $status"; exit 1 ;;
esac

# --- 4. stop ------------------------------------------------------------------------------
docker stop -t 45 "$container" >/dev/null
code=$(docker inspect --format '{{.State.ExitCode}}' "$container")
[ "$code" = "0" ] || { echo "FAIL: exit status $code after SIGTERM"; docker logs "$container"; exit 1; }
echo "ok: stopped by SIGTERM with exit status 0"
docker rm "$container" >/dev/null
container=""
echo "docker-check: all passed"
