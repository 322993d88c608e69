#!/usr/bin/env bash
# Starts a three-master Redis Cluster on loopback for the Redis store tests,
# from the Debian `redis-server`, and prints the store URL to use.
#
# Idempotent: a cluster that is already up and healthy on the ports is left
# alone. Nodes that hold the ports but are not a healthy cluster (a stale run,
# a half-created cluster) are flushed and reset, then joined afresh. A port
# held by something that is not a Redis node is an error: this script never
# kills a process it cannot identify.
#
# Exits non-zero, loudly, if any node cannot be started or reached, or the
# cluster does not reach `cluster_state:ok` in time.
#
# Settings (environment):
#   IDEM_REDIS_CLUSTER_PORTS  the ports, space-separated (default "7001 7002 7003")
#   IDEM_REDIS_CLUSTER_DIR    where each node keeps its dir (default /tmp/idem-redis-cluster)
set -euo pipefail

HOST=127.0.0.1
read -r -a PORTS <<<"${IDEM_REDIS_CLUSTER_PORTS:-7001 7002 7003}"
BASE=${IDEM_REDIS_CLUSTER_DIR:-/tmp/idem-redis-cluster}

die() {
    echo "redis-cluster: ERROR: $*" >&2
    exit 1
}
say() { echo "redis-cluster: $*" >&2; }

for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install redis-server)"
done
[ "${#PORTS[@]}" -ge 3 ] || die "a cluster needs at least three masters, got ports: ${PORTS[*]}"

cli() { redis-cli -h "$HOST" -p "$1" --no-auth-warning "${@:2}"; }
answers() { [ "$(cli "$1" ping 2>/dev/null)" = "PONG" ]; }
# info_field PORT "COMMAND WORDS" FIELD: one field of an INFO-style reply.
info_field() {
    local words
    read -r -a words <<<"$2"
    cli "$1" "${words[@]}" 2>/dev/null | tr -d '\r' | sed -n "s/^$3://p"
}

# Healthy: every node answers, is in cluster mode, sees all the others, and
# all 16384 slots are served.
healthy() {
    local p
    for p in "${PORTS[@]}"; do
        answers "$p" || return 1
        [ "$(info_field "$p" 'cluster info' cluster_state)" = ok ] || return 1
        [ "$(info_field "$p" 'cluster info' cluster_known_nodes)" = "${#PORTS[@]}" ] || return 1
        [ "$(info_field "$p" 'cluster info' cluster_slots_assigned)" = 16384 ] || return 1
    done
}

URL="redis+cluster://$(printf "$HOST:%s," "${PORTS[@]}" | sed 's/,$//')"

if healthy; then
    say "cluster already up and ok on ports ${PORTS[*]}"
    echo "$URL"
    exit 0
fi

for p in "${PORTS[@]}"; do
    if answers "$p"; then
        # Someone answers PING: only reuse it if it is a cluster-enabled Redis.
        if [ "$(info_field "$p" 'info cluster' cluster_enabled)" != 1 ]; then
            die "port $p is held by a Redis that is not in cluster mode; stop it or pick other ports (IDEM_REDIS_CLUSTER_PORTS)"
        fi
        say "resetting stale node on port $p"
        cli "$p" flushall >/dev/null || die "FLUSHALL failed on port $p"
        cli "$p" cluster reset hard >/dev/null || die "CLUSTER RESET HARD failed on port $p"
    elif (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
        die "port $p is held by something that does not answer like Redis; refusing to touch it"
    else
        dir="$BASE/$p"
        rm -rf "$dir"
        mkdir -p "$dir"
        say "starting node on port $p (dir $dir)"
        redis-server --port "$p" --bind "$HOST" --daemonize yes \
            --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" \
            --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
            --cluster-node-timeout 5000 --save "" --appendonly no \
            || die "redis-server did not start on port $p (see $dir/redis.log)"
    fi
done

for p in "${PORTS[@]}"; do
    for _ in $(seq 1 50); do
        answers "$p" && break
        sleep 0.1
    done
    answers "$p" || die "node on port $p is unreachable after 5 s (log: $BASE/$p/redis.log: $(tail -n 5 "$BASE/$p/redis.log" 2>/dev/null | tr '\n' ' '))"
done

nodes=()
for p in "${PORTS[@]}"; do nodes+=("$HOST:$p"); done
say "creating the cluster: ${nodes[*]}"
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$BASE/create.log" 2>&1 \
    || die "redis-cli --cluster create failed: $(tail -n 20 "$BASE/create.log")"

for _ in $(seq 1 100); do
    healthy && break
    sleep 0.2
done
healthy || die "cluster did not reach cluster_state:ok within 20 s: $(for p in "${PORTS[@]}"; do echo "[$p] $(info_field "$p" 'cluster info' cluster_state)"; done)"

say "cluster ok on ports ${PORTS[*]}"
echo "$URL"
