#!/usr/bin/env bash
# Interoperability checks: drive a running broker with real MQTT clients
# (Mosquitto's mosquitto_pub/mosquitto_sub and Python's paho-mqtt 2.x).
#
#   tests/interop/run.sh                       # Tollgate: $TOLLGATE_BIN serve --config FILE
#   BROKER=mosquitto tests/interop/run.sh      # Debian's mosquitto, to check the checks
#   BROKER_CMD='my-broker --conf {conf} --port {port}' tests/interop/run.sh
#
# Environment:
#   TOLLGATE_BIN  broker binary (default: <repo>/target/release/tollgate)
#   BROKER        tollgate (default) | mosquitto: which config file format to write
#                 and which default command to run
#   BROKER_CMD    command template overriding the default; {port}, {conf}, {dir}
#                 and {bin} are replaced (run through bash -c, so quote as needed)
#   ONLY          run only the checks whose name contains this string
#   KEEP_WORK=1   keep the temporary directory (configs, logs, client outputs)
#   INTEROP_BUDGET  seconds after which the remaining shell checks are failed
#                 without running them (default 60; against a healthy broker they
#                 take ~15 s); the paho checks get a budget of the same size
#
# Prints one line per check and then a final line "N passed, M failed"
# (shell checks plus paho checks); exits non-zero if anything failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BROKER=${BROKER:-tollgate}
TOLLGATE_BIN=${TOLLGATE_BIN:-$ROOT/target/release/tollgate}
BROKER_CMD=${BROKER_CMD:-}
ONLY=${ONLY:-}
BUDGET=${INTEROP_BUDGET:-60}
HOST=127.0.0.1
T0=$SECONDS

PASS=0
FAIL=0
log() { printf '# %s\n' "$*"; }
die() {
    printf 'interop: ERROR: %s\n' "$*" >&2
    printf '%s passed, %s failed\n' "$PASS" "$((FAIL + 1))"
    exit 1
}

# ------------------------------------------------------------ dependencies
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
APT_UPDATED=
apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        $SUDO apt-get update -qq >/dev/null || { sleep 3; $SUDO apt-get update -qq >/dev/null; }
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v mosquitto_sub >/dev/null 2>&1; then
    apt_install mosquitto-clients || die "could not install mosquitto-clients with apt-get"
fi
command -v mosquitto_pub >/dev/null 2>&1 || die "mosquitto_pub still missing after installing mosquitto-clients"
for tool in timeout stdbuf python3; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found"
done

# paho-mqtt 2.x goes into tests/interop/.pydeps (pip --target: needs neither a
# venv module nor a writable system site-packages, and is ignored by git).
PYDEPS=$HERE/.pydeps
export PYTHONPATH="$PYDEPS${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
paho_ok() {
    python3 -c 'import sys, paho.mqtt as m; sys.exit(0 if int(m.__version__.split(".")[0]) >= 2 else 1)' 2>/dev/null
}
if ! paho_ok; then
    log "pip install paho-mqtt>=2,<3 into $PYDEPS"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-input \
        --upgrade --target "$PYDEPS" 'paho-mqtt>=2,<3' \
        || die "pip install paho-mqtt failed"
    paho_ok || die "paho-mqtt 2.x not importable after installing it into $PYDEPS"
fi

# ------------------------------------------------------------ broker
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-interop.XXXXXX")
BROKER_PID=
BG_PIDS=()

stop_broker() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            log "broker did not stop on SIGTERM within 5s; sending SIGKILL"
            kill -KILL "$BROKER_PID" 2>/dev/null || true
        fi
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    BROKER_PID=
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    stop_broker
    if [ "${KEEP_WORK:-}" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

broker_log_tail() {
    if [ -s "$WORK/broker.log" ]; then
        echo "---- last lines of the broker log ----"
        tail -n 30 "$WORK/broker.log"
        echo "--------------------------------------"
    fi
}

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
[ "$PORT" != 1883 ] || die "refusing to use port 1883"

case "$BROKER" in
tollgate)
    CONF=$WORK/tollgate.toml
    cat >"$CONF" <<EOF
[[listener]]
bind = "$HOST:$PORT"
allow_anonymous = true
EOF
    DEFAULT_CMD='exec "{bin}" serve --config "{conf}"'
    ;;
mosquitto)
    CONF=$WORK/mosquitto.conf
    cat >"$CONF" <<EOF
listener $PORT $HOST
allow_anonymous true
persistence false
log_dest stderr
EOF
    # as root, mosquitto would otherwise switch to the 'mosquitto' user
    if [ "$(id -u)" -eq 0 ]; then echo "user root" >>"$CONF"; fi
    if [ -z "$BROKER_CMD" ]; then
        command -v mosquitto >/dev/null 2>&1 \
            || die "BROKER=mosquitto but no 'mosquitto' binary (apt-get install mosquitto)"
    fi
    DEFAULT_CMD='exec mosquitto -c "{conf}"'
    ;;
*)
    die "unknown BROKER='$BROKER' (tollgate|mosquitto)"
    ;;
esac

CMD=${BROKER_CMD:-$DEFAULT_CMD}
CMD=${CMD//\{port\}/$PORT}
CMD=${CMD//\{conf\}/$CONF}
CMD=${CMD//\{dir\}/$WORK}
CMD=${CMD//\{bin\}/$TOLLGATE_BIN}
if [ "$BROKER" = tollgate ] && [ -z "$BROKER_CMD" ] && [ ! -x "$TOLLGATE_BIN" ]; then
    die "broker binary '$TOLLGATE_BIN' not found or not executable (cargo build --release, or set TOLLGATE_BIN)"
fi

log "broker: $CMD  (port $PORT, config $CONF)"
RUST_LOG=${RUST_LOG:-info} bash -c "$CMD" </dev/null >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!

ready=
for _ in $(seq 100); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        broker_log_tail
        wait "$BROKER_PID" 2>/dev/null && rc=0 || rc=$?
        BROKER_PID=
        die "broker exited (status $rc) before accepting connections on $HOST:$PORT"
    fi
    if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    broker_log_tail
    die "broker did not accept TCP connections on $HOST:$PORT within 10s"
fi
log "broker is accepting connections on $HOST:$PORT"

# ------------------------------------------------------------ check helpers
CHECK_ERR=
N=0
RUN_ID=$$

pass() { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$1"; }
fail() { FAIL=$((FAIL + 1)); printf 'FAIL - %s: %s\n' "$1" "$2"; }

# check NAME FUNCTION ARGS...: runs FUNCTION in the current shell with errexit
# suspended; the function signals failure with `bad "reason"; return 1`.
check() {
    local name=$1; shift
    if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then return 0; fi
    CHECK_ERR=
    if [ $((SECONDS - T_CHECKS)) -gt "$BUDGET" ]; then
        fail "$name" "not run: interop time budget of ${BUDGET}s used up (see earlier failures)"
        return 0
    fi
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$name"
    else
        fail "$name" "${CHECK_ERR:-exit status $rc}"
    fi
    reap_bg
}
bad() { CHECK_ERR=$1; }

reap_bg() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    BG_PIDS=()
}

# A short client id (<= 23 characters, as MQTT 3.1 requires), in $CID.
next_cid() { N=$((N + 1)); CID="tg$1${RUN_ID}x$N"; CID=${CID:0:23}; }

# A fresh topic prefix in $TOPIC.
next_topic() { N=$((N + 1)); TOPIC="tgi/$RUN_ID/$1/$N"; }

# start_sub VERSION QOS COUNT WAIT TOPIC...
# Starts mosquitto_sub in the background (-C COUNT unless 0, -W WAIT) printing
# each message as "MSG|retain|qos|topic|payload", and returns once its SUBACK
# has arrived (mosquitto_sub -d reports it), so the subscription is active.
# Sets SUB_PID and SUB_OUT.
start_sub() {
    local ver=$1 qos=$2 count=$3 wait=$4
    shift 4
    next_cid s
    SUB_OUT=$WORK/sub-$N.out
    local args=(-h "$HOST" -p "$PORT" -V "$ver" -i "$CID" -q "$qos" -d -W "$wait" -F 'MSG|%r|%q|%t|%p')
    if [ "$count" -gt 0 ]; then args+=(-C "$count"); fi
    local t
    for t in "$@"; do args+=(-t "$t"); done
    timeout -k 2 $((wait + 5)) stdbuf -oL -eL mosquitto_sub "${args[@]}" >"$SUB_OUT" 2>&1 &
    SUB_PID=$!
    BG_PIDS+=("$SUB_PID")
    for _ in $(seq 50); do
        local granted exited=0
        # Note whether it exited before reading its output: a quick subscriber (-C 1 with a
        # retained message) can print its SUBACK and exit between the two checks.
        kill -0 "$SUB_PID" 2>/dev/null || exited=1
        granted=$(sed -n 's/^Subscribed (mid: [0-9]*)://p' "$SUB_OUT" 2>/dev/null | head -n 1)
        if [ -n "$granted" ]; then
            local code
            for code in $granted; do
                if [ "$code" -ge 128 ]; then
                    bad "mosquitto_sub -V $ver: SUBACK refused the subscription (codes:$granted)"
                    return 1
                fi
            done
            return 0
        fi
        if [ "$exited" -eq 1 ]; then
            bad "mosquitto_sub -V $ver exited before its SUBACK: $(tail -n 3 "$SUB_OUT" | tr '\n' ' ')"
            return 1
        fi
        sleep 0.1
    done
    bad "mosquitto_sub -V $ver got no SUBACK within 5s: $(tail -n 3 "$SUB_OUT" | tr '\n' ' ')"
    return 1
}

# finish_sub: waits for the subscriber started last; sets SUB_RC and SUB_MSGS
# (the "retain|qos|topic|payload" lines it printed).
finish_sub() {
    SUB_RC=0
    wait "$SUB_PID" || SUB_RC=$?
    SUB_MSGS=$(sed -n 's/^MSG|//p' "$SUB_OUT")
}

# the subscriber's last output lines (its -d protocol trace), for failure messages
sub_tail() { tail -n 4 "$SUB_OUT" | tr '\n' ' '; }

# pub VERSION ARGS...: one mosquitto_pub connection.
pub() {
    local ver=$1; shift
    next_cid p
    local out rc=0
    out=$(timeout -k 2 10 mosquitto_pub -h "$HOST" -p "$PORT" -V "$ver" -i "$CID" "$@" 2>&1 </dev/null) || rc=$?
    if [ "$rc" -ne 0 ]; then
        bad "mosquitto_pub -V $ver $* failed (status $rc): $out"
        return 1
    fi
}

# pub_lines VERSION ARGS... <<< "lines": one connection publishing each line in order.
pub_lines() {
    local ver=$1; shift
    next_cid p
    local out rc=0
    out=$(timeout -k 2 10 mosquitto_pub -h "$HOST" -p "$PORT" -V "$ver" -i "$CID" -l "$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        bad "mosquitto_pub -V $ver -l $* failed (status $rc): $out"
        return 1
    fi
}

expect_eq() { # WHAT GOT WANT
    if [ "$2" != "$3" ]; then
        bad "$1: got [$(printf '%s' "$2" | tr '\n' ';')] want [$(printf '%s' "$3" | tr '\n' ';')]"
        return 1
    fi
}

# ------------------------------------------------------------ the checks

# a. publish/subscribe through mosquitto_pub/mosquitto_sub at QoS 0, 1, 2.
#    The subscription is at QoS 2, so the delivered QoS equals the published QoS.
pubsub_qos() { # VERSION QOS
    local ver=$1 qos=$2
    next_topic "pubsub-$ver-q$qos"
    local t=$TOPIC/data
    start_sub "$ver" 2 4 8 "$t" || return 1
    pub_lines "$ver" -t "$t" -q "$qos" <<EOF || return 1
$ver q$qos first
$ver q$qos second
$ver q$qos third
$ver q$qos fourth
EOF
    finish_sub
    [ "$SUB_RC" -eq 0 ] || { bad "mosquitto_sub exited with $SUB_RC (27 = timed out); got [$(echo "$SUB_MSGS" | tr '\n' ';')]; last output: $(sub_tail)"; return 1; }
    expect_eq "messages (retain|qos|topic|payload)" "$SUB_MSGS" "$(printf '0|%s|%s|%s\n' \
        "$qos" "$t" "$ver q$qos first" "$qos" "$t" "$ver q$qos second" \
        "$qos" "$t" "$ver q$qos third" "$qos" "$t" "$ver q$qos fourth")"
}

# publisher and subscriber with different protocol versions, plus QoS downgrade
pubsub_cross() { # PUB_VERSION SUB_VERSION SUB_QOS PUB_QOS DELIVERED_QOS
    local pv=$1 sv=$2 sq=$3 pq=$4 dq=$5
    next_topic "cross"
    local t=$TOPIC/x
    start_sub "$sv" "$sq" 2 8 "$TOPIC/+" || return 1
    pub_lines "$pv" -t "$t" -q "$pq" <<EOF || return 1
from $pv one
from $pv two
EOF
    finish_sub
    [ "$SUB_RC" -eq 0 ] || { bad "mosquitto_sub exited with $SUB_RC (27 = timed out); got [$(echo "$SUB_MSGS" | tr '\n' ';')]; last output: $(sub_tail)"; return 1; }
    expect_eq "messages" "$SUB_MSGS" "$(printf '0|%s|%s|%s\n' "$dq" "$t" "from $pv one" "$dq" "$t" "from $pv two")"
}

# b. retained messages: set, replace, clear.
retained() { # VERSION
    local ver=$1
    next_topic "retain-$ver"
    local t=$TOPIC/state
    pub "$ver" -t "$t" -q 1 -r -m "$ver retained one" || return 1
    start_sub "$ver" 1 1 5 "$t" || return 1
    finish_sub
    [ "$SUB_RC" -eq 0 ] || { bad "new subscriber did not get the retained message (mosquitto_sub status $SUB_RC)"; return 1; }
    expect_eq "retained message" "$SUB_MSGS" "1|1|$t|$ver retained one" || return 1

    pub "$ver" -t "$t" -q 1 -r -m "$ver retained two" || return 1
    start_sub "$ver" 0 1 5 "$TOPIC/#" || return 1
    finish_sub
    [ "$SUB_RC" -eq 0 ] || { bad "new subscriber did not get the replaced retained message (status $SUB_RC)"; return 1; }
    expect_eq "replaced retained message" "$SUB_MSGS" "1|0|$t|$ver retained two" || return 1

    pub "$ver" -t "$t" -q 1 -r -n || return 1
    start_sub "$ver" 1 1 2 "$t" || return 1
    finish_sub
    if [ -n "$SUB_MSGS" ]; then
        bad "cleared retained message still delivered: [$(echo "$SUB_MSGS" | tr '\n' ';')]"
        return 1
    fi
    # mosquitto_sub -W exits with 27 when it times out without -C messages
    [ "$SUB_RC" -eq 27 ] || { bad "expected mosquitto_sub to time out (status 27), got status $SUB_RC"; return 1; }
}

# retained messages on several topics, all delivered to a wildcard subscription
retained_wildcard() { # VERSION
    local ver=$1
    next_topic "retain-wild-$ver"
    pub "$ver" -t "$TOPIC/a" -q 1 -r -m "A" || return 1
    pub "$ver" -t "$TOPIC/b/c" -q 0 -r -m "BC" || return 1
    pub "$ver" -t "$TOPIC/d" -q 2 -r -m "D" || return 1
    start_sub "$ver" 2 3 5 "$TOPIC/#" || return 1
    finish_sub
    [ "$SUB_RC" -eq 0 ] || { bad "wildcard subscriber got [$(echo "$SUB_MSGS" | tr '\n' ';')] (status $SUB_RC)"; return 1; }
    # the order of retained messages from different topics is unspecified
    expect_eq "retained messages (sorted)" "$(echo "$SUB_MSGS" | sort)" \
        "$(printf '%s\n' "1|0|$TOPIC/b/c|BC" "1|1|$TOPIC/a|A" "1|2|$TOPIC/d|D" | sort)" || return 1
    local x
    for x in a b/c d; do pub "$ver" -t "$TOPIC/$x" -r -n || return 1; done
}

# c. wills: a paho client dies (socket closed without DISCONNECT) -> will published;
#    a paho client disconnects normally -> no will.
will() { # PROTOCOL(31|311|5) SUB_VERSION MODE(abrupt|clean)
    local proto=$1 sv=$2 mode=$3
    next_topic "will-$proto-$mode"
    local t=$TOPIC/status payload="gone v$proto $mode"
    local wait=5 count=1
    if [ "$mode" = clean ]; then wait=2; fi
    start_sub "$sv" 1 "$count" "$wait" "$t" || return 1
    local out rc=0
    out=$(timeout -k 2 15 python3 "$HERE/will_client.py" --host "$HOST" --port "$PORT" --protocol "$proto" \
        --topic "$t" --payload "$payload" --qos 1 --mode "$mode" 2>&1 </dev/null) || rc=$?
    if [ "$rc" -ne 0 ]; then
        bad "will_client.py --mode $mode failed (status $rc): $(echo "$out" | tr '\n' ' ')"
        return 1
    fi
    finish_sub
    if [ "$mode" = abrupt ]; then
        [ "$SUB_RC" -eq 0 ] || { bad "no will message received within ${wait}s (mosquitto_sub status $SUB_RC)"; return 1; }
        expect_eq "will message" "$SUB_MSGS" "0|1|$t|$payload"
    else
        if [ -n "$SUB_MSGS" ]; then
            bad "will published although the client sent DISCONNECT: [$(echo "$SUB_MSGS" | tr '\n' ';')]"
            return 1
        fi
        [ "$SUB_RC" -eq 27 ] || { bad "expected mosquitto_sub to time out (status 27), got $SUB_RC"; return 1; }
    fi
}

T_CHECKS=$SECONDS
echo "# shell checks (mosquitto_pub/mosquitto_sub $(mosquitto_pub --help 2>/dev/null | sed -n 's/^mosquitto_pub version \([^ ]*\).*/\1/p' | head -n1))"
for ver in mqttv31 mqttv311 mqttv5; do
    for qos in 0 1 2; do
        check "mosquitto $ver publish/subscribe QoS $qos, payloads in order" pubsub_qos "$ver" "$qos"
    done
done
check "mosquitto mqttv31 -> mqttv5 at QoS 2, subscription QoS 1 (downgrade)" pubsub_cross mqttv31 mqttv5 1 2 1
check "mosquitto mqttv5 -> mqttv311 at QoS 1, subscription QoS 0 (downgrade)" pubsub_cross mqttv5 mqttv311 0 1 0
check "mosquitto mqttv311 -> mqttv31 at QoS 2, subscription QoS 2" pubsub_cross mqttv311 mqttv31 2 2 2
for ver in mqttv31 mqttv311 mqttv5; do
    check "mosquitto $ver retained: set, replace, clear with empty payload" retained "$ver"
done
check "mosquitto mqttv311 retained messages on a # subscription" retained_wildcard mqttv311
check "mosquitto mqttv5 retained messages on a # subscription" retained_wildcard mqttv5
for proto in 311 5; do
    sv=mqttv311
    if [ "$proto" = 5 ]; then sv=mqttv5; fi
    check "paho v$proto will published when the socket is closed without DISCONNECT" will "$proto" "$sv" abrupt
    check "paho v$proto will not published after a normal DISCONNECT" will "$proto" "$sv" clean
done
check "paho v3.1 will published when the socket is closed without DISCONNECT" will 31 mqttv31 abrupt
SHELL_PASS=$PASS
SHELL_FAIL=$FAIL
echo "# shell checks: $SHELL_PASS passed, $SHELL_FAIL failed"

# d. paho-mqtt checks (MQTT 3.1, 3.1.1, 5.0)
echo "# paho checks"
PAHO_OUT=$WORK/paho.out
paho_rc=0
paho_args=(--host "$HOST" --port "$PORT" --budget "$BUDGET")
if [ -n "$ONLY" ]; then paho_args+=(--only "$ONLY"); fi
timeout -k 5 $((BUDGET + 30)) python3 "$HERE/paho_checks.py" "${paho_args[@]}" </dev/null 2>&1 | tee "$PAHO_OUT" || paho_rc=$?
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$PAHO_OUT" | tail -n 1 || true)
if [ -n "$summary" ]; then
    read -r PAHO_PASS _ PAHO_FAIL _ <<<"${summary//,/}"
else
    PAHO_PASS=0
    PAHO_FAIL=0
fi
if [ "$paho_rc" -ne 0 ] && [ "$PAHO_FAIL" -eq 0 ]; then
    # crashed or timed out without reporting its failures: count that as one
    fail "paho_checks.py" "exited with status $paho_rc without a failure count"
    PAHO_FAIL=0
fi

if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    fail "broker still running after the checks" "the broker process exited"
    broker_log_tail
fi
if [ "$FAIL" -gt 0 ] || [ "$PAHO_FAIL" -gt 0 ]; then
    broker_log_tail
fi

TOTAL_PASS=$((PASS + PAHO_PASS))
TOTAL_FAIL=$((FAIL + PAHO_FAIL))
echo "# interop summary: shell $PASS passed / $FAIL failed, paho $PAHO_PASS passed / $PAHO_FAIL failed, $((SECONDS - T0))s, broker '$BROKER'"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
if [ "$TOTAL_FAIL" -gt 0 ] || [ "$TOTAL_PASS" -eq 0 ]; then
    exit 1
fi
