#!/usr/bin/env bash
# Interoperability checks: drive a running broker with real MQTT clients
# (Mosquitto's mosquitto_pub/mosquitto_sub, Python's paho-mqtt 2.x and MQTT.js 5 on node),
# over plain TCP, TCP with passwords, TLS (passwords and client certificates), WebSocket and
# secure WebSocket; and log in with access tokens from a real OpenID provider (oidc-provider
# on node): JWTs checked against its keys, opaque tokens by introspection.
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
#   INTEROP_BUDGET  seconds each part (shell checks, authentication/TLS shell checks,
#                 paho checks, mqtt.js checks, OpenID checks) may take before its remaining
#                 checks are failed without running them (default 60; against a healthy
#                 broker the parts take ~15, ~5, ~10, ~8 and ~5 s)
#
# Prints one line per check and then a final line "N passed, M failed"
# (shell, paho, mqtt.js and OpenID checks together); exits non-zero if anything failed.
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
if ! command -v openssl >/dev/null 2>&1; then
    apt_install openssl || die "could not install openssl with apt-get"
fi
for tool in timeout stdbuf python3 openssl node npm; do
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
# prometheus-client: its OpenMetrics parser reads the admin listener's /metrics.
if ! python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
    log "pip install prometheus-client into $PYDEPS"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-input \
        --upgrade --target "$PYDEPS" 'prometheus-client>=0.20,<1' \
        || die "pip install prometheus-client failed"
fi
# scramp: an independent SCRAM implementation (RFC 5802/7677) for the SCRAM checks.
if [ "$BROKER" = tollgate ] && ! python3 -c 'import scramp' 2>/dev/null; then
    log "pip install scramp into $PYDEPS"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-input \
        --upgrade --target "$PYDEPS" 'scramp>=1.4,<2' \
        || die "pip install scramp failed"
fi
# Chromium, its WebDriver (Debian's chromium and chromium-driver) and Selenium's Python
# bindings: the console check drives the admin listener's web console in a headless browser.
if [ "$BROKER" = tollgate ]; then
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        apt_install chromium chromium-driver || die "could not install chromium and chromium-driver with apt-get"
    fi
    if ! python3 -c 'import selenium.webdriver' 2>/dev/null; then
        log "pip install selenium into $PYDEPS"
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-input \
            --upgrade --target "$PYDEPS" 'selenium>=4.20,<5' \
            || die "pip install selenium failed"
    fi
fi

# MQTT.js 5 and oidc-provider go into tests/interop/node_modules, from package.json and
# package-lock.json (npm ci: exactly the locked versions; git ignores node_modules). After
# installing, a copy of the lockfile is left in node_modules, so a changed lockfile means
# installing again.
NODE_STAMP=$HERE/node_modules/.interop-package-lock.json
if ! cmp -s "$HERE/package-lock.json" "$NODE_STAMP" || [ ! -f "$HERE/node_modules/mqtt/package.json" ] ||
    [ ! -f "$HERE/node_modules/oidc-provider/package.json" ]; then
    log "npm ci (mqtt.js, oidc-provider) into $HERE/node_modules"
    (cd "$HERE" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
        || die "npm ci in $HERE failed"
    cp "$HERE/package-lock.json" "$NODE_STAMP"
fi

# ------------------------------------------------------------ broker
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-interop.XXXXXX")
BROKER_PID=
BG_PIDS=()      # clients of the check running now: stopped after each check
SERVICE_PIDS=() # the OpenID providers and the brokers of the OpenID checks: stopped on exit

stop_process() { # PID NAME: SIGTERM, then SIGKILL if it is still there after 5 s
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$2 did not stop on SIGTERM within 5s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

stop_broker() {
    if [ -n "$BROKER_PID" ]; then stop_process "$BROKER_PID" broker; fi
    BROKER_PID=
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${SERVICE_PIDS[@]}"; do
        stop_process "$p" "process $p"
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

if [ "$BROKER" = tollgate ] && [ -z "$BROKER_CMD" ] && [ ! -x "$TOLLGATE_BIN" ]; then
    die "broker binary '$TOLLGATE_BIN' not found or not executable (cargo build --release, or set TOLLGATE_BIN)"
fi

# free_ports N: N distinct free ports, all bound at once so none is handed out twice.
free_ports() {
    python3 -c '
import socket, sys
socks = []
while len(socks) < int(sys.argv[1]):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    if s.getsockname()[1] in (1883, 28831):
        continue  # keep it bound, so it is not handed out again
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}
# The broker's five listeners. (The OpenID checks pick theirs when they start, so that no
# client connection of the checks before them can have taken one of them meanwhile.)
read -r PORT PW_PORT TLS_PORT WS_PORT WSS_PORT ADMIN_PORT < <(free_ports 6) || die "could not pick free ports"
for p in "$PORT" "$PW_PORT" "$TLS_PORT" "$WS_PORT" "$WSS_PORT"; do
    case "$p" in 1883 | 28831 | '') die "refusing to use port '$p'" ;; esac
done
WS_PATH=/mqtt

# ---- certificates, made with the openssl CLI: a CA, a server certificate for localhost and
#      127.0.0.1, two client certificates from that CA, and a client certificate from a second
#      CA the broker does not trust. EC P-256 keys, valid for two days.
TLS=$WORK/tls
mkdir -p "$TLS"
# a config of our own, so the system's openssl.cnf adds no extensions of its own
cat >"$TLS/openssl.cnf" <<'EOF2'
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF2
tls_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>>"$TLS/openssl.log"; }
tls_ca() { # NAME COMMON_NAME
    tls_key "$TLS/$1.key" &&
        openssl req -x509 -new -config "$TLS/openssl.cnf" -extensions ca_ext -key "$TLS/$1.key" \
            -sha256 -days 2 -subj "/CN=$2" -out "$TLS/$1.pem" >>"$TLS/openssl.log" 2>&1
}
tls_leaf() { # NAME CA COMMON_NAME EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME]
    tls_key "$TLS/$1.key" || return 1
    openssl req -new -config "$TLS/openssl.cnf" -key "$TLS/$1.key" -subj "/CN=$3" -out "$TLS/$1.csr" \
        >>"$TLS/openssl.log" 2>&1 || return 1
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$4"
        if [ -n "${5:-}" ]; then echo "subjectAltName=$5"; fi
    } >"$TLS/$1.ext"
    openssl x509 -req -in "$TLS/$1.csr" -CA "$TLS/$2.pem" -CAkey "$TLS/$2.key" -CAcreateserial \
        -sha256 -days 2 -extfile "$TLS/$1.ext" -out "$TLS/$1.pem" >>"$TLS/openssl.log" 2>&1
}
{
    tls_ca ca "Tollgate interop CA" &&
        tls_ca untrusted-ca "Untrusted interop CA" &&
        tls_leaf server ca localhost serverAuth "DNS:localhost,IP:127.0.0.1" &&
        tls_leaf client ca interop-client clientAuth &&
        tls_leaf client2 ca interop-client-2 clientAuth &&
        tls_leaf untrusted-client untrusted-ca interop-client clientAuth &&
        openssl verify -CAfile "$TLS/ca.pem" "$TLS/server.pem" "$TLS/client.pem" >>"$TLS/openssl.log" 2>&1
} || die "making the test certificates with openssl failed: $(tail -n 5 "$TLS/openssl.log")"

# ---- the password file. alice: written by `tollgate passwd` (argon2id); bob: a $7$ line
#      (PBKDF2-SHA512) written by Mosquitto's mosquitto_passwd. mosquitto_passwd comes with
#      the `mosquitto` package, which also holds the broker: when it is not installed, the
#      package is only downloaded and unpacked into the temp dir (apt-get download, dpkg-deb
#      -x: no maintainer scripts, so no broker is started). Failing that, the $7$ line is
#      computed here the way mosquitto_passwd does it.
PASSWD=$WORK/passwd
ALICE_PASS='alice-Secret-1'
BOB_PASS='bob secret #2'
mosquitto_passwd_bin() {
    if command -v mosquitto_passwd >/dev/null 2>&1; then
        command -v mosquitto_passwd
        return 0
    fi
    local deb=$WORK/mosquitto-deb
    mkdir -p "$deb"
    if (cd "$deb" && apt-get download mosquitto >/dev/null 2>&1) ||
        { [ -z "$APT_UPDATED" ] && $SUDO apt-get update -qq >/dev/null 2>&1 && APT_UPDATED=1 &&
            (cd "$deb" && apt-get download mosquitto >/dev/null 2>&1); }; then
        if dpkg-deb -x "$deb"/mosquitto_*.deb "$deb/root" >/dev/null 2>&1 &&
            "$deb/root/usr/bin/mosquitto_passwd" -c -b "$deb/probe" u p >/dev/null 2>&1; then
            echo "$deb/root/usr/bin/mosquitto_passwd"
            return 0
        fi
    fi
    return 1
}
mosquitto_line() { # USER PASSWORD: a $7$ line as mosquitto_passwd writes it
    # shellcheck disable=SC2016
    python3 -c '
import base64, hashlib, os, sys
salt = os.urandom(12)
digest = hashlib.pbkdf2_hmac("sha512", sys.argv[2].encode(), salt, 101, 64)
print(f"{sys.argv[1]}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
' "$1" "$2"
}
MOSQ_PASSWD=$(mosquitto_passwd_bin) || MOSQ_PASSWD=
if [ -n "$MOSQ_PASSWD" ]; then
    BOB_ORIGIN="\$7\$ from mosquitto_passwd"
else
    log "mosquitto_passwd not available: bob's \$7\$ line is computed with Python instead"
    BOB_ORIGIN="\$7\$ computed with Python, as mosquitto_passwd does"
fi
: >"$PASSWD"
if [ "$BROKER" = tollgate ] && [ -x "$TOLLGATE_BIN" ]; then
    "$TOLLGATE_BIN" passwd -b "$PASSWD" alice "$ALICE_PASS" >/dev/null 2>&1 ||
        die "$TOLLGATE_BIN passwd -b $PASSWD alice ... failed"
    ALICE_ORIGIN="argon2id from tollgate passwd"
elif [ -n "$MOSQ_PASSWD" ]; then
    # another broker may not read argon2id lines
    "$MOSQ_PASSWD" -b "$PASSWD" alice "$ALICE_PASS" || die "mosquitto_passwd -b failed"
    ALICE_ORIGIN="\$7\$ from mosquitto_passwd"
else
    mosquitto_line alice "$ALICE_PASS" >>"$PASSWD"
    ALICE_ORIGIN="\$7\$ computed with Python"
fi
if [ -n "$MOSQ_PASSWD" ]; then
    "$MOSQ_PASSWD" -b "$PASSWD" bob "$BOB_PASS" || die "mosquitto_passwd -b failed"
else
    mosquitto_line bob "$BOB_PASS" >>"$PASSWD"
fi
grep -q '^bob:[$]7[$]' "$PASSWD" || die "no \$7\$ line for bob in $PASSWD"
# dana: SCRAM-SHA-256 keys and erin: SCRAM-SHA-512 keys, written by `tollgate passwd --scram`
# (another broker reads no such line)
DANA_PASS='dana-Scram-3'
ERIN_PASS='erin Scram #4'
if [ "$BROKER" = tollgate ] && [ -x "$TOLLGATE_BIN" ]; then
    "$TOLLGATE_BIN" passwd --scram -b "$PASSWD" dana "$DANA_PASS" >/dev/null 2>&1 ||
        die "$TOLLGATE_BIN passwd --scram -b $PASSWD dana ... failed"
    "$TOLLGATE_BIN" passwd --scram sha-512 -b "$PASSWD" erin "$ERIN_PASS" >/dev/null 2>&1 ||
        die "$TOLLGATE_BIN passwd --scram sha-512 -b $PASSWD erin ... failed"
fi

case "$BROKER" in
tollgate)
    CONF=$WORK/tollgate.toml
    # The admin API's tokens, made by the broker's own tool (the token on stdout, its hash in
    # the file).
    ADMIN_TOKENS=$WORK/admin.tokens
    ADMIN_TOKEN=$("$TOLLGATE_BIN" admin-token ops --role admin --file "$ADMIN_TOKENS") ||
        die "$TOLLGATE_BIN admin-token ops failed"
    READ_TOKEN=$("$TOLLGATE_BIN" admin-token dash --role read --file "$ADMIN_TOKENS") ||
        die "$TOLLGATE_BIN admin-token dash failed"
    # The checks make several failed logins in a row from 127.0.0.1, and the throttle would
    # then refuse the next logins from that address for a while (CONNACK 3 / 0x9F); the
    # throttle itself is covered by the integration tests.
    # The token issuer's signing key (seed 001: tokens over MQTT on the password listener).
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/issuer.pem" \
        2>>"$WORK/openssl.log" || die "openssl genpkey for the token issuer failed"
    cat >"$CONF" <<EOF2
[throttle]
enabled = false

[[authenticator]]
name = "self"
jwt = { token_issuer = "seed" }

[[authenticator]]
name = "users"
password_file = { path = "$PASSWD" }

[[token_issuer]]
name = "seed"
signing_key = "$WORK/issuer.pem"
subscribe_topic = "access_token/#"
max_requests_per_minute = 60

[[listener]]
name = "plain"
bind = "$HOST:$PORT"
allow_anonymous = true

[[listener]]
name = "password"
bind = "$HOST:$PW_PORT"
authenticators = ["self", "users"]
token_issuer = "seed"

[[listener]]
name = "tls"
bind = "$HOST:$TLS_PORT"
authenticators = ["users"]
tls = { cert = "$TLS/server.pem", key = "$TLS/server.key", client_ca = "$TLS/ca.pem", client_certs = "optional" }

[[listener]]
name = "ws"
bind = "$HOST:$WS_PORT"
allow_anonymous = true
websocket = { path = "$WS_PATH" }

[[listener]]
name = "wss"
bind = "$HOST:$WSS_PORT"
allow_anonymous = true
websocket = { path = "$WS_PATH" }
tls = { cert = "$TLS/server.pem", key = "$TLS/server.key" }

[admin]
bind = "$HOST:$ADMIN_PORT"
token_file = "$ADMIN_TOKENS"
EOF2
    DEFAULT_CMD='exec "{bin}" serve --config "{conf}"'
    ;;
mosquitto)
    # Mosquitto has no "optional" client certificates (require_certificate false means none
    # are asked for), and its WebSocket listeners serve every path: the checks of those are
    # skipped (TOLLGATE_ONLY=0).
    CONF=$WORK/mosquitto.conf
    cat >"$CONF" <<EOF2
per_listener_settings true
persistence false
log_dest stderr
listener $PORT $HOST
allow_anonymous true
listener $PW_PORT $HOST
password_file $PASSWD
listener $TLS_PORT $HOST
password_file $PASSWD
cafile $TLS/ca.pem
certfile $TLS/server.pem
keyfile $TLS/server.key
require_certificate false
listener $WS_PORT $HOST
protocol websockets
allow_anonymous true
listener $WSS_PORT $HOST
protocol websockets
allow_anonymous true
certfile $TLS/server.pem
keyfile $TLS/server.key
EOF2
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

log "broker: $CMD  (ports: plain $PORT, password $PW_PORT, tls $TLS_PORT, ws $WS_PORT, wss $WSS_PORT; config $CONF)"
RUST_LOG=${RUST_LOG:-info} bash -c "$CMD" </dev/null >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!

# ready once every listener accepts TCP connections
waiting=("$PORT" "$PW_PORT" "$TLS_PORT" "$WS_PORT" "$WSS_PORT")
for _ in $(seq 100); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        broker_log_tail
        wait "$BROKER_PID" 2>/dev/null && rc=0 || rc=$?
        BROKER_PID=
        die "broker exited (status $rc) before accepting connections on $HOST:${waiting[*]}"
    fi
    still=()
    for p in "${waiting[@]}"; do
        (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null || still+=("$p")
    done
    waiting=("${still[@]}")
    if [ "${#waiting[@]}" -eq 0 ]; then break; fi
    sleep 0.1
done
if [ "${#waiting[@]}" -gt 0 ]; then
    broker_log_tail
    die "broker did not accept TCP connections on $HOST port(s) ${waiting[*]} within 10s"
fi
log "broker is accepting connections on all five listeners"

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

# How mosquitto_pub/mosquitto_sub reach the broker, and authenticate: the anonymous plain
# listener unless a check sets its own (`local -a CONN=(...)`, seen by the helpers it calls).
CONN=(-h "$HOST" -p "$PORT")

# Whether to run the checks of behaviour Mosquitto doesn't have (see the mosquitto config).
TOLLGATE_ONLY=1
if [ "$BROKER" = mosquitto ]; then TOLLGATE_ONLY=0; fi

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
    local args=("${CONN[@]}" -V "$ver" -i "$CID" -q "$qos" -d -W "$wait" -F 'MSG|%r|%q|%t|%p')
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
    out=$(timeout -k 2 10 mosquitto_pub "${CONN[@]}" -V "$ver" -i "$CID" "$@" 2>&1 </dev/null) || rc=$?
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
    out=$(timeout -k 2 10 mosquitto_pub "${CONN[@]}" -V "$ver" -i "$CID" -l "$@" 2>&1) || rc=$?
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

# token_field JSON FIELD: a field of a token answer (python3's json), or fails.
token_field() {
    python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2" 2>/dev/null
}
# jwt_claim TOKEN CLAIM: a claim of a JWT's payload (unverified: the broker verifies it).
jwt_claim() {
    python3 -c '
import base64, json, sys
part = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))[sys.argv[2]])' "$1" "$2" 2>/dev/null
}

# Seed 001 with mosquitto_sub: alice subscribes to access_token/# with her password and gets
# one message, the token; a subscriber of # on the same listener never sees it; alice then
# publishes with the token in place of her password (bound to her client identifier: another
# one is refused).
token_seed_flow() {
    local cid="seed${RUN_ID}"
    local -a CONN=("${BOB[@]}")
    start_sub mqttv311 0 0 10 '#' || return 1
    local spy_out=$SUB_OUT
    local out rc=0
    out=$(timeout -k 2 10 mosquitto_sub "${ALICE[@]}" -V mqttv311 -i "$cid" -t 'access_token/#' \
        -C 1 -W 5 2>&1 </dev/null) || rc=$?
    [ "$rc" -eq 0 ] || { bad "mosquitto_sub -t access_token/# failed (status $rc): $out"; return 1; }
    local token
    token=$(token_field "$out" access_token) || { bad "no access_token in the answer: ${out:0:200}"; return 1; }
    [ "$(jwt_claim "$token" sub)" = alice ] || { bad "the token's sub is not alice: $(jwt_claim "$token" sub)"; return 1; }
    next_topic seed
    start_sub mqttv311 1 1 8 "$TOPIC" || return 1
    out=$(timeout -k 2 10 mosquitto_pub -h "$HOST" -p "$PW_PORT" -V mqttv311 -i "$cid" -u alice \
        -P "$token" -q 1 -t "$TOPIC" -m with-the-token 2>&1 </dev/null) || rc=$?
    [ "$rc" -eq 0 ] || { bad "mosquitto_pub with the token as password failed (status $rc): $out"; return 1; }
    finish_sub
    [[ "$SUB_MSGS" == *"|$TOPIC|with-the-token"* ]] || { bad "the message published with the token did not arrive: $SUB_MSGS"; return 1; }
    local _
    for _ in $(seq 50); do
        grep -q "with-the-token" "$spy_out" && break
        sleep 0.1
    done
    grep -q "with-the-token" "$spy_out" || { bad "the # subscriber saw nothing at all: $(tail -n 3 "$spy_out" | tr '\n' ' ')"; return 1; }
    if grep -q "access_token\|$token" "$spy_out"; then
        bad "the # subscriber saw the token"
        return 1
    fi
    TOKEN_ALICE=(-h "$HOST" -p "$PW_PORT" -u alice -P "$token")
}

# MQTT 5 request/response with mosquitto_rr: the answer on the response topic.
token_request_v5() {
    local cid="rr${RUN_ID}"
    local out rc=0
    out=$(timeout -k 2 10 mosquitto_rr "${ALICE[@]}" -V mqttv5 -i "$cid" -t '$tollgate/token/request' \
        -e "reply/$cid" -m '{}' -W 5 2>&1 </dev/null) || rc=$?
    [ "$rc" -eq 0 ] || { bad "mosquitto_rr failed (status $rc): $out"; return 1; }
    local token
    token=$(token_field "$out" access_token) || { bad "no access_token in the answer: ${out:0:200}"; return 1; }
    [ "$(jwt_claim "$token" client_id)" = "$cid" ] || { bad "the token is not bound to $cid"; return 1; }
    [ "$(token_field "$out" token_type)" = Bearer ] || { bad "token_type is not Bearer: $out"; return 1; }
}

# bob has no token yet; a token for another client identifier is refused.
token_other_client() {
    [ "${#TOKEN_ALICE[@]}" -gt 0 ] || { bad "no token from the seed flow"; return 1; }
    connect_refused mqttv311 4 'bad user ?name or password' TOKEN_ALICE
}
TOKEN_ALICE=()

# d. authentication and TLS, with mosquitto_pub/mosquitto_sub options for each way in
#    (arrays named in the checks below, and read through namerefs).
# shellcheck disable=SC2034
{
    ALICE=(-h "$HOST" -p "$PW_PORT" -u alice -P "$ALICE_PASS")
    ALICE_WRONG=(-h "$HOST" -p "$PW_PORT" -u alice -P "${ALICE_PASS}x")
    BOB=(-h "$HOST" -p "$PW_PORT" -u bob -P "$BOB_PASS")
    BOB_WRONG=(-h "$HOST" -p "$PW_PORT" -u bob -P "bob secret #3")
    NOBODY=(-h "$HOST" -p "$PW_PORT" -u nobody -P "$ALICE_PASS")
    NO_CREDENTIALS=(-h "$HOST" -p "$PW_PORT")
    # TLS: the server certificate is checked against the CA and the host name "localhost"
    TLS_ALICE=(-h localhost -p "$TLS_PORT" --cafile "$TLS/ca.pem" -u alice -P "$ALICE_PASS")
    TLS_BOB=(-h localhost -p "$TLS_PORT" --cafile "$TLS/ca.pem" -u bob -P "$BOB_PASS")
    TLS_CERT=(-h localhost -p "$TLS_PORT" --cafile "$TLS/ca.pem" --cert "$TLS/client.pem" --key "$TLS/client.key")
    TLS_NOTHING=(-h localhost -p "$TLS_PORT" --cafile "$TLS/ca.pem")
    TLS_UNTRUSTED=(-h localhost -p "$TLS_PORT" --cafile "$TLS/ca.pem" --cert "$TLS/untrusted-client.pem" --key "$TLS/untrusted-client.key")
    TLS_UNTRUSTED_ALICE=("${TLS_UNTRUSTED[@]}" -u alice -P "$ALICE_PASS")
    PLAIN_TO_TLS=(-h "$HOST" -p "$TLS_PORT")
}

# The CONNACK codes for a wrong password: Tollgate answers "bad user name or password"
# (3.1.1: 4, 5.0: 0x86); Mosquitto 2 answers "not authorized" (5, 0x87) for that too.
# Without credentials on a listener that needs them, both answer "not authorized".
NOT_AUTHORISED='not authori[sz]ed'
if [ "$BROKER" = mosquitto ]; then
    BAD_PW_311=5 BAD_PW_5=135 BAD_PW_TEXT=$NOT_AUTHORISED
else
    BAD_PW_311=4 BAD_PW_5=134 BAD_PW_TEXT='bad user ?name or password'
fi

# publish/subscribe with the subscriber and the publisher each connecting their own way
pubsub_via() { # VERSION QOS SUBSCRIBER_OPTIONS PUBLISHER_OPTIONS (names of arrays)
    local ver=$1 qos=$2
    local -n sub_opts=$3 pub_opts=$4
    next_topic "via-$ver-q$qos"
    local t=$TOPIC/data
    local -a CONN=("${sub_opts[@]}")
    start_sub "$ver" 2 3 8 "$t" || return 1
    CONN=("${pub_opts[@]}")
    pub_lines "$ver" -t "$t" -q "$qos" <<EOF2 || return 1
$ver via $3 one
$ver via $4 two
$ver three
EOF2
    finish_sub
    [ "$SUB_RC" -eq 0 ] || { bad "mosquitto_sub exited with $SUB_RC (27 = timed out); got [$(echo "$SUB_MSGS" | tr '\n' ';')]; last output: $(sub_tail)"; return 1; }
    expect_eq "messages (retain|qos|topic|payload)" "$SUB_MSGS" "$(printf '0|%s|%s|%s\n' \
        "$qos" "$t" "$ver via $3 one" "$qos" "$t" "$ver via $4 two" "$qos" "$t" "$ver three")"
}

# connect_refused VERSION CODE TEXT OPTIONS: mosquitto_pub must exit non-zero, its -d trace must
# show a CONNACK with CODE, and its error message must match the extended regex TEXT.
connect_refused() {
    local ver=$1 code=$2 text=$3
    local -n opts=$4
    next_cid r
    local out rc=0
    out=$(timeout -k 2 10 mosquitto_pub "${opts[@]}" -V "$ver" -i "$CID" -d -t "tgi/$RUN_ID/refused" -m x 2>&1 </dev/null) || rc=$?
    local flat
    flat=$(printf '%s' "$out" | tr '\n' ' ')
    [ "$rc" -ne 0 ] || { bad "mosquitto_pub $4 was not refused: $flat"; return 1; }
    [ "$rc" -ne 124 ] || { bad "mosquitto_pub $4 did not finish within 10s: $flat"; return 1; }
    local got
    got=$(sed -n 's/.*received CONNACK (\([0-9]*\)).*/\1/p' <<<"$out" | head -n 1)
    [ "$got" = "$code" ] || { bad "want CONNACK code $code, got '${got:-no CONNACK}' (status $rc): $flat"; return 1; }
    grep -Eqi "$text" <<<"$out" || { bad "mosquitto_pub's message does not match /$text/ (status $rc): $flat"; return 1; }
}

# tls_refused OPTIONS: the TLS handshake fails (an OpenSSL error naming an alert or a
# certificate), and no CONNACK arrives.
tls_refused() {
    local -n opts=$1
    next_cid r
    local out rc=0
    out=$(timeout -k 2 10 mosquitto_pub "${opts[@]}" -V mqttv311 -i "$CID" -d -t "tgi/$RUN_ID/refused" -m x 2>&1 </dev/null) || rc=$?
    local flat
    flat=$(printf '%s' "$out" | tr '\n' ' ')
    [ "$rc" -ne 0 ] || { bad "mosquitto_pub $1 was not refused: $flat"; return 1; }
    [ "$rc" -ne 124 ] || { bad "mosquitto_pub $1 did not finish within 10s: $flat"; return 1; }
    if grep -q 'received CONNACK' <<<"$out"; then
        bad "the TLS handshake succeeded and a CONNACK arrived (status $rc): $flat"
        return 1
    fi
    grep -Eqi 'OpenSSL Error.*(alert|certificate)' <<<"$out" ||
        { bad "no TLS alert or certificate error in mosquitto_pub's output (status $rc): $flat"; return 1; }
}

# no_connack OPTIONS: mosquitto_pub fails without getting a CONNACK (e.g. plain MQTT to TLS)
no_connack() {
    local -n opts=$1
    next_cid r
    local out rc=0
    out=$(timeout -k 2 10 mosquitto_pub "${opts[@]}" -V mqttv311 -i "$CID" -d -t "tgi/$RUN_ID/refused" -m x 2>&1 </dev/null) || rc=$?
    local flat
    flat=$(printf '%s' "$out" | tr '\n' ' ')
    [ "$rc" -ne 0 ] || { bad "mosquitto_pub $1 succeeded: $flat"; return 1; }
    [ "$rc" -ne 124 ] || { bad "mosquitto_pub $1 did not finish within 10s: $flat"; return 1; }
    if grep -q 'received CONNACK' <<<"$out"; then bad "a CONNACK arrived: $flat"; return 1; fi
}

# scram_login MECHANISM USER PASSWORD EXPECTED: a SCRAM exchange by PyPI's scramp over a raw
# MQTT 5 socket (tests/interop/scram_client.py) on the password listener
scram_login() {
    next_cid s
    local out rc=0
    out=$(timeout -k 2 20 python3 "$HERE/scram_client.py" --host "$HOST" --port "$PW_PORT" \
        --mechanism "$1" --user "$2" --password "$3" --client-id "$CID" --expect "$4" 2>&1 </dev/null) || rc=$?
    [ "$rc" -eq 0 ] || { bad "scram_client.py: $(printf '%s' "$out" | tr '\n' ' ')"; return 1; }
}

# tollgate_check NAME FUNCTION ARGS...: a check of behaviour Mosquitto doesn't have
tollgate_check() {
    if [ "$TOLLGATE_ONLY" = 1 ]; then
        check "$@"
    elif [ -z "$ONLY" ] || [[ "$1" == *"$ONLY"* ]]; then
        printf '# skip - %s (not applicable to BROKER=%s)\n' "$1" "$BROKER"
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

T_CHECKS=$SECONDS
echo "# authentication and TLS checks (mosquitto_pub/mosquitto_sub; password file: alice: $ALICE_ORIGIN; bob: $BOB_ORIGIN)"
check "mosquitto mqttv311 -u/-P on the password listener (alice: $ALICE_ORIGIN): publish/subscribe QoS 1" \
    pubsub_via mqttv311 1 ALICE ALICE
check "mosquitto mqttv5 -u/-P on the password listener (alice): publish/subscribe QoS 2" \
    pubsub_via mqttv5 2 ALICE ALICE
check "mosquitto mqttv311 -u/-P on the password listener (bob: $BOB_ORIGIN): publish/subscribe QoS 1" \
    pubsub_via mqttv311 1 BOB BOB
check "mosquitto mqttv5 bob (\$7\$ line) subscribes, alice publishes, QoS 2" \
    pubsub_via mqttv5 2 BOB ALICE
check "mosquitto mqttv311 wrong password refused (CONNACK $BAD_PW_311)" \
    connect_refused mqttv311 "$BAD_PW_311" "$BAD_PW_TEXT" ALICE_WRONG
check "mosquitto mqttv5 wrong password refused (CONNACK $BAD_PW_5)" \
    connect_refused mqttv5 "$BAD_PW_5" "$BAD_PW_TEXT" ALICE_WRONG
check "mosquitto mqttv311 wrong password for bob (\$7\$ line) refused (CONNACK $BAD_PW_311)" \
    connect_refused mqttv311 "$BAD_PW_311" "$BAD_PW_TEXT" BOB_WRONG
check "mosquitto mqttv5 unknown user refused (CONNACK $BAD_PW_5)" \
    connect_refused mqttv5 "$BAD_PW_5" "$BAD_PW_TEXT" NOBODY
tollgate_check "scramp SCRAM-SHA-256 over MQTT 5 AUTH (dana: tollgate passwd --scram): broker proof verified, publish/subscribe" \
    scram_login SCRAM-SHA-256 dana "$DANA_PASS" success
tollgate_check "scramp SCRAM-SHA-512 over MQTT 5 AUTH (erin: tollgate passwd --scram sha-512): broker proof verified, publish/subscribe" \
    scram_login SCRAM-SHA-512 erin "$ERIN_PASS" success
tollgate_check "scramp SCRAM-SHA-256 wrong password refused at the proof (CONNACK 0x86)" \
    scram_login SCRAM-SHA-256 dana "${DANA_PASS}x" 0x86
tollgate_check "scramp SCRAM-SHA-256 unknown user challenged like any other, refused at the proof (CONNACK 0x86)" \
    scram_login SCRAM-SHA-256 nobody whatever 0x86
check "mosquitto mqttv311 no credentials on the password listener refused (CONNACK 5)" \
    connect_refused mqttv311 5 "$NOT_AUTHORISED" NO_CREDENTIALS
check "mosquitto mqttv5 no credentials on the password listener refused (CONNACK 135)" \
    connect_refused mqttv5 135 "$NOT_AUTHORISED" NO_CREDENTIALS
check "mosquitto mqttv311 TLS (--cafile, -h localhost) with a password: publish/subscribe QoS 1" \
    pubsub_via mqttv311 1 TLS_ALICE TLS_ALICE
check "mosquitto mqttv5 TLS with a password, alice subscribes, bob publishes, QoS 2" \
    pubsub_via mqttv5 2 TLS_ALICE TLS_BOB
tollgate_check "mosquitto mqttv311 TLS client certificate (--cert/--key), no password: publish/subscribe QoS 1" \
    pubsub_via mqttv311 1 TLS_CERT TLS_CERT
tollgate_check "mosquitto mqttv5 TLS client certificate publishes to a password-listener subscriber, QoS 2" \
    pubsub_via mqttv5 2 ALICE TLS_CERT
check "mosquitto mqttv311 TLS without certificate or password refused (CONNACK 5)" \
    connect_refused mqttv311 5 "$NOT_AUTHORISED" TLS_NOTHING
tollgate_check "mosquitto TLS client certificate from an untrusted CA refused in the handshake" \
    tls_refused TLS_UNTRUSTED
tollgate_check "mosquitto TLS client certificate from an untrusted CA refused even with a valid password" \
    tls_refused TLS_UNTRUSTED_ALICE
check "mosquitto plain MQTT to the TLS listener gets no CONNACK" \
    no_connack PLAIN_TO_TLS
tollgate_check "seed 001: mosquitto_sub on access_token/# with a password gets a token, publishes with it; a # subscriber never sees it" \
    token_seed_flow
tollgate_check "token over MQTT: mosquitto_rr (MQTT 5 request/response) on \$tollgate/token/request" \
    token_request_v5
tollgate_check "token over MQTT: the token is refused for another client identifier (CONNACK 4)" \
    token_other_client
echo "# authentication and TLS checks: $((PASS - SHELL_PASS)) passed, $((FAIL - SHELL_FAIL)) failed"

# run_suite NAME OUTPUT COMMAND...: runs a client program that prints its own check lines and a
# final "N passed, M failed" line; adds those counts to SUITE_PASS and SUITE_FAIL. A program
# that fails without a failure count (a crash, or its time limit) counts as one failure.
SUITE_PASS=0
SUITE_FAIL=0
SUITES=
run_suite() {
    local name=$1 out=$2
    shift 2
    local rc=0 summary p=0 f=0
    "$@" </dev/null 2>&1 | tee "$out" || rc=$?
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
    if [ -n "$summary" ]; then
        read -r p _ f _ <<<"${summary//,/}"
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "$name" "exited with status $rc without a failure count"
    fi
    SUITE_PASS=$((SUITE_PASS + p))
    SUITE_FAIL=$((SUITE_FAIL + f))
    SUITES="$SUITES, $name $p passed / $f failed"
}

# e. paho-mqtt checks (MQTT 3.1, 3.1.1, 5.0) on the anonymous plain listener
echo "# paho checks"
paho_args=(--host "$HOST" --port "$PORT" --budget "$BUDGET")
if [ -n "$ONLY" ]; then paho_args+=(--only "$ONLY"); fi
run_suite paho_checks.py "$WORK/paho.out" \
    timeout -k 5 $((BUDGET + 30)) python3 "$HERE/paho_checks.py" "${paho_args[@]}"

# e2. the admin API and /metrics (Tollgate only): paho clients listed and kicked, metrics
#     read by prometheus-client's OpenMetrics parser
if [ "$TOLLGATE_ONLY" = 1 ] && [ -n "${ADMIN_TOKEN:-}" ]; then
    echo "# admin API checks"
    run_suite admin_checks.py "$WORK/admin.out" \
        timeout -k 5 120 env ADMIN_TOKEN="$ADMIN_TOKEN" READ_TOKEN="$READ_TOKEN" \
        python3 "$HERE/admin_checks.py" --host "$HOST" --port "$PORT" --admin-port "$ADMIN_PORT"
    # e3. the web console in headless Chromium: sign in, a mosquitto_sub client listed with
    #     its permissions, kicked, banned, the live decisions, an explanation; screenshots
    #     in $WORK/shots (KEEP_WORK=1 keeps them)
    echo "# console checks (headless Chromium)"
    run_suite console_checks.py "$WORK/console.out" \
        timeout -k 5 180 env ADMIN_TOKEN="$ADMIN_TOKEN" \
        python3 "$HERE/console_checks.py" --host "$HOST" --port "$PORT" --admin-port "$ADMIN_PORT" \
        --shots "$WORK/shots"
fi

# f. MQTT.js checks over WebSocket and secure WebSocket (and plain TCP, for delivery between
#    transports)
echo "# mqtt.js checks"
mqttjs_args=(--host "$HOST" --tcp-port "$PORT" --ws-port "$WS_PORT" --wss-port "$WSS_PORT"
    --path "$WS_PATH" --ca "$TLS/ca.pem" --budget "$BUDGET")
if [ -n "$ONLY" ]; then mqttjs_args+=(--only "$ONLY"); fi
if [ "$TOLLGATE_ONLY" != 1 ]; then mqttjs_args+=(--skip-path-check); fi
run_suite mqttjs_checks.mjs "$WORK/mqttjs.out" \
    timeout -k 5 $((BUDGET + 40)) node "$HERE/mqttjs_checks.mjs" "${mqttjs_args[@]}"

# g. OpenID Connect: access tokens from a real OpenID provider (oidc-provider, by panva, on
#    node: oidc_provider.mjs), got by the client credentials grant as a device would, and sent
#    in the password field (any user name). Three providers, each with signing keys (RS256 and
#    ES256) of its own made when it starts, and the same clients and secrets:
#      trusted    http://127.0.0.1:OIDC_PORT, which the brokers below trust;
#      untrusted  another issuer (its own address);
#      impostor   puts the trusted issuer's name in its tokens, and the trusted provider's
#                 key ids in their headers, but signs them with its own keys: only the
#                 signature tells its tokens apart.
#    With resource=urn:tollgate the provider issues a JWT (RFC 9068: typ at+jwt, aud
#    urn:tollgate, client_id and sub the client's id); without a resource, an opaque token.
#    Two more brokers (the main one's command, with a config of their own):
#      jwt     one listener whose only authenticator is a jwt one, trusting the trusted provider
#              by OpenID discovery (issuer -> /.well-known/openid-configuration -> jwks_uri);
#      opaque  one listener whose only authenticator asks the trusted provider's
#              introspection endpoint (RFC 7662) about each token.
#    They are separate brokers so that a config one of them refuses (introspection is newer
#    than jwt) fails only its own checks. Providers and brokers are started by the first check
#    that needs them (so an ONLY= without OpenID checks starts none), and stopped on exit.
# shellcheck disable=SC2034 # read through the nameref in once()
{
    OIDC_STATE= # "" until the providers are started, then "up" or why they could not be
    JWT_STATE=
    OPAQUE_STATE=
    DEVICE_STATE=
}
OIDC_RESOURCE=urn:tollgate

# once STATE_VAR FUNCTION: runs FUNCTION the first time only; later calls get the same outcome
# (STATE_VAR holds "up", or the reason FUNCTION failed, which each later check repeats).
once() {
    local -n state=$1
    if [ -z "$state" ]; then
        CHECK_ERR=
        if "$2"; then state=up; else state="$2: ${CHECK_ERR:-failed}"; fi
    fi
    [ "$state" = up ] || { bad "$state"; return 1; }
}

# start_service LOG COMMAND...: a process that lives across checks (stopped on exit, unlike
# BG_PIDS, which are stopped after each check); its pid in SERVICE_PID.
start_service() {
    local out=$1
    shift
    "$@" </dev/null >"$out" 2>&1 &
    SERVICE_PID=$!
    SERVICE_PIDS+=("$SERVICE_PID")
}

# wait_for NAME PID LOG TEST...: polls TEST every 0.1 s until it succeeds, for at most
# WAIT_SECONDS (15 unless set) and only while PID runs.
wait_for() {
    local name=$1 pid=$2 out=$3
    shift 3
    local seconds=${WAIT_SECONDS:-15}
    for _ in $(seq $((seconds * 10))); do
        if "$@"; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            bad "$name exited (status $rc) before it was ready: $(tail -n 3 "$out" | tr '\n' ' ')"
            return 1
        fi
        sleep 0.1
    done
    bad "$name not ready within ${seconds}s: $(tail -n 3 "$out" | tr '\n' ' ')"
    return 1
}
has_ready_line() { grep -q '^READY ' "$1" 2>/dev/null; }
accepts() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

oidc_start_providers() {
    read -r OIDC_PORT OIDC_UNTRUSTED_PORT OIDC_IMPOSTOR_PORT JWT_PORT OPAQUE_PORT DEVICE_PORT \
        OIDC_MTLS_PORT JWT_MTLS_PORT < <(free_ports 8) ||
        { bad "could not pick free ports"; return 1; }
    local p
    for p in "$OIDC_PORT" "$OIDC_UNTRUSTED_PORT" "$OIDC_IMPOSTOR_PORT" "$JWT_PORT" "$OPAQUE_PORT" "$DEVICE_PORT" \
        "$OIDC_MTLS_PORT" "$JWT_MTLS_PORT"; do
        case "$p" in 1883 | 28831 | '') bad "refusing to use port '$p'"; return 1 ;; esac
    done
    if ! OIDC_DEVICE_SECRET=$(openssl rand -hex 24) || ! OIDC_TOLLGATE_SECRET=$(openssl rand -hex 24); then
        bad "openssl rand failed"
        return 1
    fi
    # where each provider listens (and so where its discovery document is); the impostor's
    # issuer is not its address
    OIDC_URL=http://$HOST:$OIDC_PORT
    OIDC_UNTRUSTED_URL=http://$HOST:$OIDC_UNTRUSTED_PORT
    OIDC_IMPOSTOR_URL=http://$HOST:$OIDC_IMPOSTOR_PORT
    OIDC_ISSUER=$OIDC_URL
    log "OpenID providers (oidc-provider $OIDC_VERSION): trusted $OIDC_URL, untrusted $OIDC_UNTRUSTED_URL, impostor $OIDC_IMPOSTOR_URL (issuer $OIDC_ISSUER)"
    local -a secrets=(--device-secret "$OIDC_DEVICE_SECRET" --tollgate-secret "$OIDC_TOLLGATE_SECRET")
    # the trusted provider and the impostor name their keys alike (kid trusted-rs256 and
    # trusted-es256); the untrusted provider's key ids are their thumbprints
    local name port issuer
    local -a kid pids=()
    # the trusted provider also speaks mutual TLS, binding device-3's tokens (RFC 8705)
    local -a mtls=(--mtls-port "$OIDC_MTLS_PORT" --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key"
        --tls-ca "$TLS/ca.pem")
    # all three start at once; then each is waited for
    for name in trusted untrusted impostor; do
        case $name in
        trusted) port=$OIDC_PORT issuer=$OIDC_ISSUER kid=(--kid-prefix trusted "${mtls[@]}") ;;
        untrusted) port=$OIDC_UNTRUSTED_PORT issuer=$OIDC_UNTRUSTED_URL kid=() ;;
        impostor) port=$OIDC_IMPOSTOR_PORT issuer=$OIDC_ISSUER kid=(--kid-prefix trusted) ;;
        esac
        start_service "$WORK/oidc-$name.log" node "$HERE/oidc_provider.mjs" serve \
            --port "$port" --issuer "$issuer" "${kid[@]}" "${secrets[@]}"
        pids+=("$SERVICE_PID")
    done
    local i=0
    for name in trusted untrusted impostor; do
        # A first start after `npm ci` reads oidc-provider's files from a cold cache, three
        # providers at once: once on a loaded machine the first took more than 15 s, and
        # once one never printed READY at all (it had printed its first warning). A provider
        # that is not ready in 60 s is stopped and started once more, alone.
        if ! WAIT_SECONDS=60 wait_for "the $name OpenID provider" "${pids[$i]}" "$WORK/oidc-$name.log" \
            has_ready_line "$WORK/oidc-$name.log"; then
            log "the $name OpenID provider: ${CHECK_ERR}; started again"
            stop_process "${pids[$i]}" "the $name OpenID provider"
            case $name in
            trusted) port=$OIDC_PORT issuer=$OIDC_ISSUER kid=(--kid-prefix trusted "${mtls[@]}") ;;
            untrusted) port=$OIDC_UNTRUSTED_PORT issuer=$OIDC_UNTRUSTED_URL kid=() ;;
            impostor) port=$OIDC_IMPOSTOR_PORT issuer=$OIDC_ISSUER kid=(--kid-prefix trusted) ;;
            esac
            start_service "$WORK/oidc-$name.log" node "$HERE/oidc_provider.mjs" serve \
                --port "$port" --issuer "$issuer" "${kid[@]}" "${secrets[@]}"
            CHECK_ERR=
            WAIT_SECONDS=60 wait_for "the $name OpenID provider (started again)" "$SERVICE_PID" \
                "$WORK/oidc-$name.log" has_ready_line "$WORK/oidc-$name.log" || return 1
        fi
        i=$((i + 1))
    done
    # The section's time budget is for its checks: it starts once the providers are up.
    T_CHECKS=$SECONDS
}

# aux_broker NAME CONF PORT: starts another broker with the main one's command (CONF and PORT
# in place of the main broker's), and waits until PORT accepts connections.
aux_broker() {
    local name=$1 conf=$2 port=$3 out=$WORK/$1-broker.log
    local cmd=${BROKER_CMD:-$DEFAULT_CMD}
    cmd=${cmd//\{port\}/$port}
    cmd=${cmd//\{conf\}/$conf}
    cmd=${cmd//\{dir\}/$WORK}
    cmd=${cmd//\{bin\}/$TOLLGATE_BIN}
    log "$name broker: $cmd  (port $port; log $out)"
    start_service "$out" env RUST_LOG="${RUST_LOG:-info}" bash -c "$cmd"
    wait_for "the $name broker" "$SERVICE_PID" "$out" accepts "$port"
}

oidc_start_jwt_broker() {
    # issuer: equal to the `iss` of the provider's tokens, and where its discovery document is.
    # The provider signs device-1's tokens RS256 and device-2's ES256. username_claim: for the
    # client credentials grant, sub and client_id both hold the client's id; client_id says so
    # whatever the grant.
    cat >"$WORK/jwt.toml" <<EOF2
[throttle]
enabled = false

[[authenticator]]
name = "oidc"
[authenticator.jwt]
issuer = "$OIDC_ISSUER"
audience = ["$OIDC_RESOURCE"]
algorithms = ["RS256", "ES256"]
username_claim = "client_id"
required_typ = "at+jwt"

[[authenticator]]
name = "oidc-bound"
[authenticator.jwt]
issuer = "$OIDC_ISSUER"
audience = ["$OIDC_RESOURCE"]
algorithms = ["RS256", "ES256"]
username_claim = "client_id"
required_typ = "at+jwt"
certificate_binding = "required"

[[listener]]
name = "oidc"
bind = "$HOST:$JWT_PORT"
allow_anonymous = false
authenticators = ["oidc"]

[[listener]]
name = "oidc-mtls"
bind = "$HOST:$JWT_MTLS_PORT"
allow_anonymous = false
authenticators = ["oidc-bound"]
tls = { cert = "$TLS/server.pem", key = "$TLS/server.key", client_ca = "$TLS/ca.pem", client_certs = "optional" }
EOF2
    aux_broker jwt "$WORK/jwt.toml" "$JWT_PORT"
}

oidc_start_opaque_broker() {
    local endpoint rc=0
    endpoint=$(timeout -k 2 15 node "$HERE/oidc_provider.mjs" discover --issuer "$OIDC_URL" \
        --field introspection_endpoint 2>&1 </dev/null) || rc=$?
    [ "$rc" -eq 0 ] || { bad "no introspection_endpoint from $OIDC_URL (status $rc): $endpoint"; return 1; }
    cat >"$WORK/opaque.toml" <<EOF2
[throttle]
enabled = false

[[authenticator]]
name = "opaque"
[authenticator.introspection]
endpoint = "$endpoint"
client_id = "tollgate"
client_secret = "$OIDC_TOLLGATE_SECRET"
client_auth = "basic"
username_claim = "client_id"

[[listener]]
name = "opaque"
bind = "$HOST:$OPAQUE_PORT"
allow_anonymous = false
authenticators = ["opaque"]
EOF2
    aux_broker opaque "$WORK/opaque.toml" "$OPAQUE_PORT"
}

# oidc_token URL CLIENT jwt|opaque: an access token for CLIENT (client credentials grant) from
# the provider at URL, in $TOKEN; with resource=urn:tollgate for a JWT, without one for an
# opaque token (checked: three dot-separated parts, or none).
oidc_token() {
    local url=$1 client=$2 kind=$3 rc=0
    local -a resource=()
    if [ "$kind" = jwt ]; then resource=(--resource "$OIDC_RESOURCE"); fi
    TOKEN=$(timeout -k 2 15 node "$HERE/oidc_provider.mjs" token --issuer "$url" --client-id "$client" \
        --client-secret "$OIDC_DEVICE_SECRET" "${resource[@]}" 2>&1 </dev/null) || rc=$?
    [ "$rc" -eq 0 ] || { bad "no token for $client from $url (status $rc): $TOKEN"; return 1; }
    if [ "$kind" = jwt ] && ! [[ "$TOKEN" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]; then
        bad "$url gave $client no JWT: $TOKEN"
        return 1
    fi
    if [ "$kind" = opaque ] && [[ "$TOKEN" == *.* || -z "$TOKEN" ]]; then
        bad "$url gave $client no opaque token: $TOKEN"
        return 1
    fi
}

# oidc_bound_token CERT: a JWT for device-3 asked for over mutual TLS with $TLS/CERT.pem, so
# the provider binds it to that certificate (RFC 8705), in $TOKEN; checked to carry
# cnf.x5t#S256 equal to the certificate's SHA-256 thumbprint
oidc_bound_token() {
    local cert=$1 rc=0
    TOKEN=$(timeout -k 2 15 node "$HERE/oidc_provider.mjs" token --issuer "$OIDC_URL" --client-id device-3 \
        --client-secret "$OIDC_DEVICE_SECRET" --resource "$OIDC_RESOURCE" --mtls-port "$OIDC_MTLS_PORT" \
        --cert "$TLS/$cert.pem" --key "$TLS/$cert.key" --ca "$TLS/ca.pem" 2>&1 </dev/null) || rc=$?
    [ "$rc" -eq 0 ] || { bad "no bound token for device-3 (status $rc): $TOKEN"; return 1; }
    local want got
    want=$(openssl x509 -in "$TLS/$cert.pem" -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n')
    got=$(python3 -c 'import base64, json, sys; p = sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))).get("cnf", {}).get("x5t#S256", ""))' "$TOKEN")
    [ "$got" = "$want" ] || { bad "the provider's token is not bound to $cert.pem (cnf x5t#S256 '$got', want '$want')"; return 1; }
}

# RFC 8705 through mosquitto_pub over TLS: a token bound to client.pem, presented with
# CERT (none: no certificate) to the listener whose authenticator requires bound tokens
# shellcheck disable=SC2034 # the arrays are read through namerefs
oidc_bound() { # VERSION good|other|none|unbound
    local ver=$1 how=$2
    once OIDC_STATE oidc_start_providers || return 1
    once JWT_STATE oidc_start_jwt_broker || return 1
    if [ "$how" = unbound ]; then
        oidc_token "$OIDC_URL" device-1 jwt || return 1
    else
        oidc_bound_token client || return 1
    fi
    local -a tls=(-h localhost -p "$JWT_MTLS_PORT" --cafile "$TLS/ca.pem")
    case $how in
    good | unbound) tls+=(--cert "$TLS/client.pem" --key "$TLS/client.key") ;;
    other) tls+=(--cert "$TLS/client2.pem" --key "$TLS/client2.key") ;;
    none) ;;
    esac
    local -a BOUND=("${tls[@]}" -u device -P "$TOKEN")
    if [ "$how" = good ]; then
        pubsub_via "$ver" 1 BOUND BOUND
    elif [ "$ver" = mqttv5 ]; then
        connect_refused "$ver" 134 "$BAD_PW_TEXT" BOUND
    else
        connect_refused "$ver" 4 "$BAD_PW_TEXT" BOUND
    fi
}

# tamper_signature TOKEN: the JWT with one character in the middle of its signature changed
# (still base64url of the same length, so only the signature check can refuse it)
tamper_signature() {
    local head=${1%.*} sig=${1##*.}
    local i=$((${#sig} / 2)) c=A
    if [ "${sig:i:1}" = A ]; then c=B; fi
    printf '%s.%s%s%s\n' "$head" "${sig:0:i}" "$c" "${sig:i+1}"
}

# publish/subscribe through the jwt broker, subscriber and publisher each with a token of
# their own from the trusted provider
# shellcheck disable=SC2034 # the arrays are read through namerefs
oidc_jwt_pubsub() { # VERSION QOS CLIENT
    local ver=$1 qos=$2 client=$3
    once OIDC_STATE oidc_start_providers || return 1
    once JWT_STATE oidc_start_jwt_broker || return 1
    oidc_token "$OIDC_URL" "$client" jwt || return 1
    local -a JWT_SUBSCRIBER=(-h "$HOST" -p "$JWT_PORT" -u "$client" -P "$TOKEN")
    oidc_token "$OIDC_URL" "$client" jwt || return 1
    local -a JWT_PUBLISHER=(-h "$HOST" -p "$JWT_PORT" -u "$client" -P "$TOKEN")
    pubsub_via "$ver" "$qos" JWT_SUBSCRIBER JWT_PUBLISHER
}

# a token the jwt broker must refuse with "bad user name or password"
# shellcheck disable=SC2034 # the arrays are read through namerefs
oidc_jwt_refused() { # VERSION CODE untrusted|impostor|tampered|opaque
    local ver=$1 code=$2 how=$3
    once OIDC_STATE oidc_start_providers || return 1
    once JWT_STATE oidc_start_jwt_broker || return 1
    case $how in
    untrusted) oidc_token "$OIDC_UNTRUSTED_URL" device-1 jwt || return 1 ;;
    impostor) oidc_token "$OIDC_IMPOSTOR_URL" device-1 jwt || return 1 ;;
    tampered)
        oidc_token "$OIDC_URL" device-1 jwt || return 1
        TOKEN=$(tamper_signature "$TOKEN")
        ;;
    opaque) oidc_token "$OIDC_URL" device-1 opaque || return 1 ;;
    esac
    local -a JWT_REFUSED=(-h "$HOST" -p "$JWT_PORT" -u device-1 -P "$TOKEN")
    connect_refused "$ver" "$code" "$BAD_PW_TEXT" JWT_REFUSED
}

# publish/subscribe through the opaque broker, each client with an opaque token of its own
# shellcheck disable=SC2034 # the arrays are read through namerefs
oidc_opaque_pubsub() { # VERSION QOS
    local ver=$1 qos=$2
    once OIDC_STATE oidc_start_providers || return 1
    once OPAQUE_STATE oidc_start_opaque_broker || return 1
    oidc_token "$OIDC_URL" device-1 opaque || return 1
    local -a OPAQUE_SUBSCRIBER=(-h "$HOST" -p "$OPAQUE_PORT" -u device-1 -P "$TOKEN")
    oidc_token "$OIDC_URL" device-1 opaque || return 1
    local -a OPAQUE_PUBLISHER=(-h "$HOST" -p "$OPAQUE_PORT" -u device-1 -P "$TOKEN")
    pubsub_via "$ver" "$qos" OPAQUE_SUBSCRIBER OPAQUE_PUBLISHER
}

# a made-up token, shaped like the provider's own (43 base64url characters), which the
# introspection endpoint answers with {"active": false}
# shellcheck disable=SC2034 # the arrays are read through namerefs
oidc_opaque_refused() { # VERSION CODE
    local ver=$1 code=$2
    once OIDC_STATE oidc_start_providers || return 1
    once OPAQUE_STATE oidc_start_opaque_broker || return 1
    local made_up
    made_up=$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')
    local -a OPAQUE_REFUSED=(-h "$HOST" -p "$OPAQUE_PORT" -u device-1 -P "$made_up")
    connect_refused "$ver" "$code" "$BAD_PW_TEXT" OPAQUE_REFUSED
}

# The device grant broker: a bootstrap listener (anonymous devices may only ask for a device
# authorization grant) relaying RFC 8628 to the trusted provider as its client `tollgate`;
# the access token (a JWT for urn:tollgate, its sub the login the user signed in with) makes
# the device's connection alice's, whose policy gives her devices/alice/#.
oidc_start_device_broker() {
    cat >"$WORK/device-policy.toml" <<'EOF2'
default = "deny"

[anonymous]
permissions = [{ filter = "$tollgate/device/authorize/#", activity = "publish" }]

[users.alice]
permissions = [{ filter = "devices/alice/#" }]
EOF2
    cat >"$WORK/device.toml" <<EOF2
[throttle]
enabled = false

[[authorizer]]
name = "policy"
policy_file = { path = "$WORK/device-policy.toml" }

[[listener]]
name = "bootstrap"
bind = "$HOST:$DEVICE_PORT"
allow_anonymous = true
authenticators = []
max_session_expiry = 0
device_grant = "oidc"

[[device_grant]]
name = "oidc"

[device_grant.provider]
issuer = "$OIDC_ISSUER"
client_id = "tollgate"
client_secret = "$OIDC_TOLLGATE_SECRET"
scope = "openid mqtt"
extra_params = { resource = "$OIDC_RESOURCE" }

[device_grant.provider.verify]
issuer = "$OIDC_ISSUER"
audience = ["$OIDC_RESOURCE"]
algorithms = ["RS256", "ES256"]
required_typ = "at+jwt"
EOF2
    aux_broker device "$WORK/device.toml" "$DEVICE_PORT"
}

# seed 004: a paho-mqtt device that speaks only MQTT gets its user code, a scripted user
# approves it in the provider's pages, the device gets its token and uses alice's permissions
# on the same connection (tests/interop/device_flow.py prints its own check lines)
oidc_device_flow() {
    once OIDC_STATE oidc_start_providers || return 1
    once DEVICE_STATE oidc_start_device_broker || return 1
    local out rc=0
    out=$(timeout -k 5 90 python3 "$HERE/device_flow.py" --host "$HOST" --port "$DEVICE_PORT" \
        --user alice 2>&1 </dev/null) || rc=$?
    printf '%s\n' "$out" | sed 's/^/#   /'
    [ "$rc" -eq 0 ] || { bad "device_flow.py failed (status $rc): $(printf '%s' "$out" | grep -m1 '^FAIL' || printf '%s' "$out" | tail -n 1)"; return 1; }
}

T_CHECKS=$SECONDS
OIDC_PASS0=$PASS
OIDC_FAIL0=$FAIL
OIDC_VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$HERE/node_modules/oidc-provider/package.json")
echo "# OpenID checks (oidc-provider $OIDC_VERSION on node $(node --version); mosquitto_pub/mosquitto_sub)"
tollgate_check "oidc mosquitto mqttv311 JWT (RS256) from the trusted provider: publish/subscribe QoS 1" \
    oidc_jwt_pubsub mqttv311 1 device-1
tollgate_check "oidc mosquitto mqttv5 JWT (ES256) from the trusted provider: publish/subscribe QoS 2" \
    oidc_jwt_pubsub mqttv5 2 device-2
tollgate_check "oidc mosquitto mqttv311 JWT from an untrusted provider (its own issuer and keys) refused (CONNACK 4)" \
    oidc_jwt_refused mqttv311 4 untrusted
tollgate_check "oidc mosquitto mqttv5 JWT from an impostor (the trusted issuer's name and key ids, its own keys) refused (CONNACK 134)" \
    oidc_jwt_refused mqttv5 134 impostor
tollgate_check "oidc mosquitto mqttv311 JWT with one character of its signature changed refused (CONNACK 4)" \
    oidc_jwt_refused mqttv311 4 tampered
tollgate_check "oidc mosquitto mqttv5 opaque token (not a JWT) on the JWT listener refused (CONNACK 134)" \
    oidc_jwt_refused mqttv5 134 opaque
tollgate_check "oidc RFC 8705: mosquitto mqttv311 over TLS with the client certificate the provider bound the token to (mTLS token request, cnf x5t#S256): publish/subscribe QoS 1" \
    oidc_bound mqttv311 good
tollgate_check "oidc RFC 8705: mosquitto mqttv5 the same bound token with another certificate of the same CA refused (CONNACK 134)" \
    oidc_bound mqttv5 other
tollgate_check "oidc RFC 8705: mosquitto mqttv311 the bound token without a client certificate refused (CONNACK 4)" \
    oidc_bound mqttv311 none
tollgate_check "oidc RFC 8705: mosquitto mqttv5 an unbound token where binding is required refused (CONNACK 134)" \
    oidc_bound mqttv5 unbound
# Token introspection is being written: against a broker without it, the opaque broker refuses
# its config ("unknown field `introspection`") and these two fail with that reason.
tollgate_check "oidc introspection: mosquitto mqttv311 opaque token from the trusted provider: publish/subscribe QoS 1" \
    oidc_opaque_pubsub mqttv311 1
tollgate_check "oidc introspection: mosquitto mqttv5 made-up opaque token refused (CONNACK 134)" \
    oidc_opaque_refused mqttv5 134
tollgate_check "oidc device flow (RFC 8628 over MQTT): a paho-mqtt device gets its user code and token over MQTT, a scripted user approves in the provider's pages, the connection becomes alice's" \
    oidc_device_flow
echo "# OpenID checks: $((PASS - OIDC_PASS0)) passed, $((FAIL - OIDC_FAIL0)) failed"
if [ "$FAIL" -gt "$OIDC_FAIL0" ]; then
    for f in "$WORK/jwt-broker.log" "$WORK/opaque-broker.log"; do
        if [ -s "$f" ]; then
            echo "---- last lines of $(basename "$f") ----"
            tail -n 15 "$f"
        fi
    done
fi

if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    fail "broker still running after the checks" "the broker process exited"
fi
if [ "$FAIL" -gt 0 ] || [ "$SUITE_FAIL" -gt 0 ]; then
    broker_log_tail
fi

TOTAL_PASS=$((PASS + SUITE_PASS))
TOTAL_FAIL=$((FAIL + SUITE_FAIL))
echo "# interop summary: shell $PASS passed / $FAIL failed$SUITES; $((SECONDS - T0))s, broker '$BROKER'"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
if [ "$TOTAL_FAIL" -gt 0 ] || [ "$TOTAL_PASS" -eq 0 ]; then
    exit 1
fi
