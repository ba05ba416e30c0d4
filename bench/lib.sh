# Helpers shared by bench/run and bench/cost (sourced, not run).

stop() { # PID...: SIGTERM, wait up to 10 s (valgrind writes its profile), then SIGKILL;
    # only PIDs the script started
    local pid
    for pid in "$@"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

free_port() { # [taken...]: a port on 127.0.0.1 that nothing listens on and none of taken is
    local port taken
    while :; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        for taken in "$@"; do
            if [ "$port" = "$taken" ]; then continue 2; fi
        done
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

wait_port() { # port: until something accepts on 127.0.0.1:port (30 s)
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "nothing listens on port $1"
    return 1
}
