#!/usr/bin/env bash
# Tollgate and Mosquitto side by side on this machine, with tollgate-bench.
#
#   bench/compare.sh            full comparison (5 alternating runs per scenario, ~10 minutes)
#   bench/compare.sh --quick    smoke run: 1 run each, small sizes (~1 minute)
#   bench/compare.sh --runs 7   more runs
#   bench/compare.sh --out F    write the report to F instead of bench/RESULTS.md
#   bench/compare.sh --only RE  only the scenarios whose name matches RE (grep -E), e.g. durable
#   TOLLGATE=path/to/tollgate bench/compare.sh   compare that binary instead of building one
#
# Both brokers listen on free loopback ports with equivalent settings (anonymous access,
# TCP_NODELAY, 1024 messages in flight, 100 000 queued per client, no persistence but in the
# durable scenarios: Mosquitto `persistence true`, Tollgate `[persistence]` fsync always). Each
# scenario runs Mosquitto, Tollgate, Mosquitto, Tollgate, …; the broker's CPU time is read from
# /proc/PID/stat around every run. The report gives medians, the per-run ratio
# Tollgate/Mosquitto and its median, and broker CPU-seconds per million deliveries.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=5
QUICK=0
OUT="$ROOT/bench/RESULTS.md"
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; RUNS=1 ;;
        --runs) RUNS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --only) ONLY=$2; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

WORK=$(mktemp -d /tmp/tollgate-compare.XXXXXX)
mkdir -p "$WORK/runs"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

log() { printf '[compare] %s\n' "$*" >&2; }

# --- What is needed -------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { log "installing mosquitto"; apt_install mosquitto; }
command -v python3 >/dev/null || { log "installing python3"; apt_install python3; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BENCH="$TARGET_DIR/release/tollgate-bench"
if [ -n "${TOLLGATE:-}" ]; then
    # A given tollgate binary (an older build, say): only the load generator is built.
    log "building tollgate-bench (release); tollgate is $TOLLGATE"
    (cd "$ROOT" && cargo build --release -q -p tollgate-bench)
else
    log "building tollgate and tollgate-bench (release)"
    (cd "$ROOT" && cargo build --release -q -p tollgate -p tollgate-bench)
    TOLLGATE="$TARGET_DIR/release/tollgate"
fi
# The whole comparison uses these copies, whatever is rebuilt meanwhile (and they can be
# profiled afterwards).
cp "$TOLLGATE" "$WORK/tollgate"
cp "$BENCH" "$WORK/tollgate-bench"
TOLLGATE="$WORK/tollgate"
BENCH="$WORK/tollgate-bench"
CLK_TCK=$(getconf CLK_TCK)

# --- Brokers --------------------------------------------------------------------------------
free_port() {
    python3 - <<'PY'
import socket
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port not in (1883, 28831):
        print(port)
        break
PY
}

wait_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

# Settings both brokers get.
INFLIGHT=1024
QUEUED=100000

# 10 000 rules for everyone, the matching one last (the worst case for a scan): a Tollgate policy
# and the equivalent Mosquitto ACL file (lines before any `user` apply to anonymous clients).
make_rules() {
    [ -e "$WORK/acl10k" ] && return 0
    python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
with open(f"{work}/acl10k", "w") as acl, open(f"{work}/policy10k.toml", "w") as policy:
    policy.write('default = "deny"\n')
    for i in range(9999):
        acl.write(f"topic readwrite other/{i}/#\n")
        policy.write(f'[[patterns]]\nfilter = "other/{i}/#"\n')
    acl.write("topic readwrite tgb/#\n")
    policy.write('[[patterns]]\nfilter = "tgb/#"\n')
PY
}

JWT_TOKEN=""
JWT_ALG=""
JWT_KEY_SETTING=""

# A JWT for the JWT connect scenarios, signed with a key made here by openssl: sets JWT_ALG,
# JWT_TOKEN and JWT_KEY_SETTING (the Tollgate key configuration).
make_token() { # HS256 | RS256 | ES256 | EdDSA
    JWT_ALG=$1
    local dir="$WORK/jwt-$1"
    mkdir -p "$dir"
    case "$1" in
        HS256) JWT_KEY_SETTING='secret = "bench-hmac-secret-of-32-bytes!!"' ;;
        RS256) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/key.pem" 2>/dev/null ;;
        ES256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/key.pem" 2>/dev/null ;;
        EdDSA) openssl genpkey -algorithm ED25519 -out "$dir/key.pem" 2>/dev/null ;;
    esac
    if [ "$1" != HS256 ]; then
        openssl pkey -in "$dir/key.pem" -pubout -out "$dir/pub.pem" 2>/dev/null
        JWT_KEY_SETTING="public_key = \"$dir/pub.pem\""
    fi
    JWT_TOKEN=$(python3 - "$1" "$dir" <<'PY'
import base64, json, subprocess, sys, time, hmac, hashlib
alg, d = sys.argv[1], sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench", "exp": int(time.time()) + 86400}).encode())
msg = f"{head}.{body}".encode()
if alg == "HS256":
    sig = hmac.new(b"bench-hmac-secret-of-32-bytes!!", msg, hashlib.sha256).digest()
elif alg == "EdDSA":
    open(f"{d}/msg", "wb").write(msg)
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", f"{d}/key.pem", "-in", f"{d}/msg"], capture_output=True, check=True).stdout
else:
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{d}/key.pem"], input=msg, capture_output=True, check=True).stdout
    if alg == "ES256":  # DER SEQUENCE of two INTEGERs -> 32-byte r || s
        i = 2 if der[1] < 0x80 else 3
        def integer(at):
            n = der[at + 1]
            return der[at + 2:at + 2 + n], at + 2 + n
        r, at = integer(i)
        s_, _ = integer(at)
        sig = r.lstrip(b"\0").rjust(32, b"\0") + s_.lstrip(b"\0").rjust(32, b"\0")
    else:
        sig = der
print(f"{head}.{body}.{b64(sig)}")
PY
)
}

# ace mode (RFC 9431): an Ed25519 key made here by openssl, and an HS256 token whose cnf.jwk is
# its public half: sets ACE_TOKEN and ACE_KEY (the PEM file).
ACE_TOKEN=""
ACE_KEY=""
make_ace_token() {
    local d="$WORK/ace"
    mkdir -p "$d"
    ACE_KEY="$d/key.pem"
    [ -e "$ACE_KEY" ] || openssl genpkey -algorithm ED25519 -out "$ACE_KEY" 2>/dev/null
    openssl pkey -in "$ACE_KEY" -pubout -outform DER 2>/dev/null | tail -c 32 >"$d/x.bin"
    ACE_TOKEN=$(python3 - "$d/x.bin" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
x = b64(open(sys.argv[1], "rb").read())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench", "exp": int(time.time()) + 86400,
                       "cnf": {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}}}).encode())
msg = f"{head}.{body}".encode()
print(f"{head}.{body}.{b64(hmac.new(b'bench-hmac-secret-of-32-bytes!!', msg, hashlib.sha256).digest())}")
PY
)
}

# TLS mode: a CA and a certificate for localhost/127.0.0.1, made here by openssl, used by
# both brokers; the load generator trusts the CA (--tls-ca).
make_tls() {
    local d="$WORK/tls"
    [ -e "$d/server.pem" ] && return 0
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" \
        -out "$d/ca.pem" -days 2 -subj "/CN=bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/server.key" \
        -out "$d/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$d/ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/ext" -out "$d/server.pem" 2>/dev/null
    chmod 644 "$d/server.key"
}

# Password-file mode: one user, the same Mosquitto-format file ($7$, PBKDF2-SHA512) for both.
BENCH_USER=bench
BENCH_PASS=bench-secret-1

write_configs() { # mode: anon | passwd | passwd-cached | acl10k | jwt-<alg> | scram-sha-<256|512> | ace-ed25519 | tls | durable
    local mode=${1:-anon}
    M_PORT=$(free_port)
    T_PORT=$(free_port)
    while [ "$T_PORT" = "$M_PORT" ]; do T_PORT=$(free_port); done
    local anonymous=true t_anonymous=true
    case "$mode" in
        passwd|passwd-cached)
            anonymous=false; t_anonymous=false
            [ -e "$WORK/passwd" ] || mosquitto_passwd -c -b "$WORK/passwd" "$BENCH_USER" "$BENCH_PASS"
            ;;
        jwt-*) t_anonymous=false ;; # Mosquitto has no JWT: it serves the same clients anonymously
        ace-*) # Mosquitto has no RFC 9431: Tollgate only
            t_anonymous=false
            make_ace_token
            ;;
        scram-*) # Mosquitto has no SCRAM: these scenarios run against Tollgate only
            t_anonymous=false
            rm -f "$WORK/scram-passwd"
            "$TOLLGATE" passwd -c --scram "${mode#scram-}" -b "$WORK/scram-passwd" "$BENCH_USER" "$BENCH_PASS"
            ;;
        acl10k) make_rules ;;
        tls) make_tls ;;
    esac
    cat >"$WORK/mosquitto.conf" <<EOF
listener $M_PORT 127.0.0.1
allow_anonymous $anonymous
set_tcp_nodelay true
max_inflight_messages $INFLIGHT
max_queued_messages $QUEUED
log_dest stderr
log_type error
log_type warning
EOF
    if [ "$(id -u)" = 0 ]; then echo "user root" >>"$WORK/mosquitto.conf"; fi
    if [ "$mode" = durable ]; then
        # Mosquitto's persistence: its in-memory state written to mosquitto.db every
        # autosave_interval (default 1800 s) and at a clean exit.
        printf 'persistence true\npersistence_location %s/\n' "$WORK/mosquitto-data" >>"$WORK/mosquitto.conf"
    else
        echo "persistence false" >>"$WORK/mosquitto.conf"
    fi
    case "$mode" in
        passwd|passwd-cached) echo "password_file $WORK/passwd" >>"$WORK/mosquitto.conf" ;;
        acl10k) echo "acl_file $WORK/acl10k" >>"$WORK/mosquitto.conf" ;;
        tls) printf 'cafile %s\ncertfile %s\nkeyfile %s\n' "$WORK/tls/ca.pem" "$WORK/tls/server.pem" "$WORK/tls/server.key" >>"$WORK/mosquitto.conf" ;;
    esac
    {
        echo 'log_level = "warn"'
        echo
        case "$mode" in
            passwd) printf '[[authenticator]]\nname = "passwd"\npassword_file = { path = "%s" }\n\n' "$WORK/passwd" ;;
            passwd-cached) printf '[[authenticator]]\nname = "passwd"\ncache_ttl = 300\npassword_file = { path = "%s" }\n\n' "$WORK/passwd" ;;
            scram-*) printf '[[authenticator]]\nname = "scram"\npassword_file = { path = "%s" }\n\n' "$WORK/scram-passwd" ;;
            ace-*) printf '[[authenticator]]\nname = "ace"\nace = { verify = { algorithms = ["HS256"], secret = "bench-hmac-secret-of-32-bytes!!" } }\n\n' ;;
            acl10k) printf '[[authorizer]]\nname = "rules"\npolicy_file = { path = "%s" }\n\n' "$WORK/policy10k.toml" ;;
            jwt-*) make_token "${mode#jwt-}"
                   printf '[[authenticator]]\nname = "jwt"\njwt = { username_marker = "JWT", algorithms = ["%s"], %s }\n\n' "$JWT_ALG" "$JWT_KEY_SETTING" ;;
        esac
        # One machine is every client here: the per-address and rate limits are lifted, as
        # Mosquitto has none.
        printf '[[listener]]\nbind = "127.0.0.1:%s"\nallow_anonymous = %s\ntcp_nodelay = true\nmax_connection_rate = 0\nmax_connection_rate_per_address = 0\nmax_connections_per_address = 0\nmax_pending_authentications_per_address = 0\n' "$T_PORT" "$t_anonymous"
        if [ "$mode" = tls ]; then
            printf 'tls = { cert = "%s", key = "%s" }\n' "$WORK/tls/server.pem" "$WORK/tls/server.key"
        fi
        echo
        printf '[limits]\nmax_inflight_messages = %s\nreceive_maximum = %s\nmax_queued_messages = %s\n' "$INFLIGHT" "$INFLIGHT" "$QUEUED"
        if [ "$mode" = durable ]; then
            # Room for the restart scenario's million retained messages (Mosquitto has no
            # bound on them, nor on memory).
            printf 'max_retained_messages = 2000000\nmax_retained_bytes = 1073741824\nmax_memory = 2147483648\n'
        fi
        # The connect loops all log in at once, as one user from one address, and Mosquitto has
        # no throttle: Tollgate's is off here. (With it on, a proven key runs its attempts in
        # parallel, docs/authentication.md "Proven keys", but about 1 cycle in 5 000 still got
        # 0x9F with 32 loops: see the note on issue 10.)
        printf '\n[throttle]\nenabled = false\n'
        if [ "$mode" = durable ]; then
            # The store: every acknowledgement waits for its fsync.
            printf '\n[persistence]\npath = "%s"\nfsync = "always"\n' "$WORK/tollgate-data"
        fi
    } >"$WORK/tollgate.toml"
    # The report shows the first configuration of each mode (the stock-inflight check is last).
    [ -e "$WORK/mosquitto.$mode.conf" ] || cp "$WORK/mosquitto.conf" "$WORK/mosquitto.$mode.conf"
    [ -e "$WORK/tollgate.$mode.toml" ] || cp "$WORK/tollgate.toml" "$WORK/tollgate.$mode.toml"
}

CUR_MODE=anon
RESTARTS=0
start_brokers() { # mode
    CUR_MODE=${1:-anon}
    write_configs "$CUR_MODE"
    # Every start of the durable mode begins with empty stores (the restart scenario restarts
    # one broker by hand instead).
    rm -rf "$WORK/mosquitto-data" "$WORK/tollgate-data"
    mkdir -p "$WORK/mosquitto-data"
    "$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>>"$WORK/mosquitto.log" &
    M_PID=$!
    PIDS+=("$M_PID")
    "$TOLLGATE" serve --config "$WORK/tollgate.toml" 2>>"$WORK/tollgate.log" &
    T_PID=$!
    PIDS+=("$T_PID")
    wait_port "$M_PORT" || { log "mosquitto did not start"; cat "$WORK/mosquitto.log" >&2; exit 1; }
    wait_port "$T_PORT" || { log "tollgate did not start"; cat "$WORK/tollgate.log" >&2; exit 1; }
}

stop_brokers() {
    kill "$M_PID" "$T_PID" 2>/dev/null || true
    wait "$M_PID" "$T_PID" 2>/dev/null || true
    # Let the kernel retire the closed connections before the next brokers start.
    sleep 1
}

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# On a shared machine a broker can vanish (a stray signal, a recycled pid): then both are
# restarted and the run is done again; the report says how often that happened.
brokers_alive() { kill -0 "$M_PID" 2>/dev/null && kill -0 "$T_PID" 2>/dev/null; }
restart_brokers() {
    local status
    for pid in "$M_PID" "$T_PID"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null && status=0 || status=$?
            log "broker pid $pid is gone (exit status $status); restarting both"
        fi
    done
    RESTARTS=$((RESTARTS + 1))
    stop_brokers
    start_brokers "$CUR_MODE"
}

# --- Scenarios ------------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    TIMING="--warmup 0.5 --duration 1"
    PAIRS=4; FANOUT=100; FANIN=20; IDLE=1000; CLIENTS=16
    RESTART_SESSIONS=2000; RESTART_RETAINED=20000
else
    TIMING="--warmup 1 --duration 3"
    PAIRS=10; FANOUT=1000; FANIN=100; IDLE=19960; CLIENTS=32
    RESTART_SESSIONS=100000; RESTART_RETAINED=1000000
fi
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$IDLE" -gt $((NOFILE - 40)) ]; then IDLE=$((NOFILE - 40)); fi

# name|mode|arguments (the broker's --port/--broker-pid/--label are added per run)
SCENARIOS=(
    "connect|anon|connect --clients $CLIENTS $TIMING"
    "connect-passwd|passwd|connect --clients $CLIENTS --username $BENCH_USER --password $BENCH_PASS $TIMING"
    "connect-passwd-cached|passwd-cached|connect --clients $CLIENTS --username $BENCH_USER --password $BENCH_PASS $TIMING"
    "connect-jwt-hs256|jwt-HS256|connect --clients $CLIENTS --username JWT --password @JWT $TIMING"
    "connect-jwt-rs256|jwt-RS256|connect --clients $CLIENTS --username JWT --password @JWT $TIMING"
    "connect-jwt-es256|jwt-ES256|connect --clients $CLIENTS --username JWT --password @JWT $TIMING"
    "connect-jwt-eddsa|jwt-EdDSA|connect --clients $CLIENTS --username JWT --password @JWT $TIMING"
    "connect-jwt-es256-v5|jwt-ES256|connect --mqtt 5 --clients $CLIENTS --username JWT --password @JWT $TIMING"
    "connect-scram-sha256|scram-sha-256|connect --mqtt 5 --clients $CLIENTS --username $BENCH_USER --password $BENCH_PASS --scram SCRAM-SHA-256 $TIMING"
    "connect-scram-sha512|scram-sha-512|connect --mqtt 5 --clients $CLIENTS --username $BENCH_USER --password $BENCH_PASS --scram SCRAM-SHA-512 $TIMING"
    "connect-ace-ed25519|ace-ed25519|connect --mqtt 5 --clients $CLIENTS --ace-token @ACE --ace-key @ACEKEY $TIMING"
    "connect-tls|tls|connect --clients $CLIENTS --tls-ca @CA $TIMING"
    "pairs-qos1-tls|tls|pairs --pairs $PAIRS --qos 1 --tls-ca @CA $TIMING"
    "pairs-qos0|anon|pairs --pairs $PAIRS --qos 0 $TIMING"
    "pairs-qos1|anon|pairs --pairs $PAIRS --qos 1 $TIMING"
    "pairs-qos2|anon|pairs --pairs $PAIRS --qos 2 $TIMING"
    "pairs-qos1-v5|anon|pairs --mqtt 5 --pairs $PAIRS --qos 1 $TIMING"
    "pairs-qos2-v5|anon|pairs --mqtt 5 --pairs $PAIRS --qos 2 $TIMING"
    "fan-out-qos0|anon|fan-out --subscribers $FANOUT --qos 0 $TIMING"
    "fan-in-qos1|anon|fan-in --publishers $FANIN --qos 1 $TIMING"
    "pairs-qos1-rules|acl10k|pairs --pairs $PAIRS --qos 1 $TIMING"
    "pairs-qos1-persistent|anon|pairs --pairs $PAIRS --qos 1 --persistent-subscribers $TIMING"
    "pairs-qos1-durable|durable|pairs --pairs $PAIRS --qos 1 --persistent-subscribers $TIMING"
    "pairs-qos2-durable|durable|pairs --pairs $PAIRS --qos 2 --persistent-subscribers $TIMING"
)

: >"$WORK/commands.txt"
run_one() { # name args broker run
    local name=$1 args=$2 broker=$3 run=$4 port pid
    if [ "$broker" = mosquitto ]; then port=$M_PORT; pid=$M_PID; else port=$T_PORT; pid=$T_PID; fi
    local out="$WORK/runs/$name.$broker.$run.json"
    if [ "$run" = 1 ]; then echo "$name|$broker|tollgate-bench $args --port \$PORT --broker-pid \$PID --label $broker --json" >>"$WORK/commands.txt"; fi
    local c0 c1 t0 t1 attempt
    for attempt in 1 2 3; do
        brokers_alive || restart_brokers
        if [ "$broker" = mosquitto ]; then port=$M_PORT; pid=$M_PID; else port=$T_PORT; pid=$T_PID; fi
        c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$BENCH" $args --port "$port" --broker-pid "$pid" --label "$broker" --json >"$out.tmp" 2>"$out.err" || true
        c1=$(cpu_ticks "$pid"); t1=$(date +%s.%N)
        if kill -0 "$pid" 2>/dev/null; then break; fi
        log "$broker died during $name run $run (attempt $attempt)"
    done
    local cmd="tollgate-bench $args --port $port --broker-pid $pid --label $broker --json"
    python3 - "$out.tmp" "$out" "$c0" "$c1" "$CLK_TCK" "$t0" "$t1" "$cmd" <<'PY'
import json, sys
src, dst, c0, c1, tck, t0, t1, cmd = sys.argv[1:]
try:
    report = json.load(open(src))
except Exception as e:
    report = {"ok": False, "failures": [f"no report from tollgate-bench ({e})"]}
report["compare"] = {
    "broker_cpu_s": (int(c1) - int(c0)) / int(tck),
    "wall_s": float(t1) - float(t0),
    "command": cmd,
}
json.dump(report, open(dst, "w"), indent=1)
PY
    rm -f "$out.tmp"
    local status
    status=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("ok" if r.get("ok") else "FAILED: " + "; ".join(r.get("failures", [])))' "$out")
    log "$name $broker run $run: $status"
}

run_scenario() { # name args
    local r
    for r in $(seq 1 "$RUNS"); do
        # Mosquitto has no SCRAM (it refuses the method, 0x8C): Tollgate only.
        case "$CUR_MODE" in scram-* | ace-*) ;; *) run_one "$1" "$2" mosquitto "$r" ;; esac
        run_one "$1" "$2" tollgate "$r"
    done
}

median_rate() { # name broker -> median delivery rate
    python3 - "$WORK/runs" "$1" "$2" <<'PY'
import glob, json, statistics, sys
d, name, broker = sys.argv[1:]
rates = [json.load(open(f)).get("messages", {}).get("delivery_rate", 0) for f in glob.glob(f"{d}/{name}.{broker}.*.json")]
print(int(statistics.median(rates)) if rates else 0)
PY
}

wanted() { [ -z "$ONLY" ] || grep -qE -- "$ONLY" <<<"$1"; }

START=$(date +%s)
for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r name mode args <<<"$entry"
    wanted "$name" || continue
    log "scenario $name"
    start_brokers "$mode"
    args=${args//@JWT/$JWT_TOKEN}
    args=${args//@CA/$WORK/tls/ca.pem}
    args=${args//@ACEKEY/$ACE_KEY}
    args=${args//@ACE/$ACE_TOKEN}
    run_scenario "$name" "$args"
    stop_brokers
done

# Latency at half of Mosquitto's maximum rate (its median QoS 1 pairs throughput).
HALF=$(( $(median_rate pairs-qos1 mosquitto) / 2 ))
[ "$HALF" -gt 0 ] || HALF=1000
if wanted latency-qos1; then
    log "scenario latency-qos1 at $HALF msg/s"
    start_brokers
    run_scenario latency-qos1 "latency --pairs $PAIRS --qos 1 --rate $HALF $TIMING"
    stop_brokers
fi
if wanted latency-qos1-durable; then
    log "scenario latency-qos1-durable at $HALF msg/s"
    start_brokers durable
    run_scenario latency-qos1-durable "latency --pairs $PAIRS --qos 1 --persistent-subscribers --rate $HALF $TIMING"
    stop_brokers
fi

# Restart: each broker, alone and on empty stores, is filled with persistent sessions and
# retained messages and stopped cleanly (Mosquitto writes mosquitto.db as it exits); then it
# is started again with the probe, which times how long it takes to serve that state.
# Tollgate is also killed with SIGKILL right after a fill and restarted from its journal
# (Mosquitto, killed, would come back with what its last autosave held: nothing here).
wanted restart-durable && log "scenario restart-durable ($RESTART_SESSIONS sessions, $RESTART_RETAINED retained messages)"
fill_broker() { # broker name
    local broker=$1 name=$2 port pid
    if [ "$broker" = mosquitto ]; then port=$M_PORT; pid=$M_PID; else port=$T_PORT; pid=$T_PID; fi
    "$BENCH" fill --sessions "$RESTART_SESSIONS" --retained "$RESTART_RETAINED" --payload 32 \
        --port "$port" --broker-pid "$pid" --label "$broker" --json >"$WORK/runs/$name.$broker.1.json" 2>>"$WORK/fill.err" || true
    echo "$name|$broker|tollgate-bench fill --sessions $RESTART_SESSIONS --retained $RESTART_RETAINED --payload 32 --port \$PORT --broker-pid \$PID --label $broker --json" >>"$WORK/commands.txt"
}
probe_restart() { # broker name: starts the broker on the state left, with the probe
    local broker=$1 name=$2 port pid
    if [ "$broker" = mosquitto ]; then
        port=$M_PORT
        "$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>>"$WORK/mosquitto.log" &
        M_PID=$!; pid=$M_PID
    else
        port=$T_PORT
        "$TOLLGATE" serve --config "$WORK/tollgate.toml" 2>>"$WORK/tollgate.log" &
        T_PID=$!; pid=$T_PID
    fi
    PIDS+=("$pid")
    "$BENCH" probe --sessions "$RESTART_SESSIONS" --retained "$RESTART_RETAINED" --port "$port" \
        --broker-pid "$pid" --label "$broker" --json >"$WORK/runs/$name.$broker.1.json" 2>>"$WORK/probe.err" || true
    echo "$name|$broker|tollgate-bench probe --sessions $RESTART_SESSIONS --retained $RESTART_RETAINED --port \$PORT --broker-pid \$PID --label $broker --json" >>"$WORK/commands.txt"
    log "$name $broker: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); s=r.get("state") or {}; print("serving after", s.get("ready_secs"), "s; restored after", s.get("restored_secs"), "s;", "ok" if r.get("ok") else "FAILED: " + "; ".join(r.get("failures", [])))' "$WORK/runs/$name.$broker.1.json")"
}
stop_one() { # pid signal
    kill "-$2" "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
if wanted restart-durable; then
    for broker in mosquitto tollgate; do
        start_brokers durable
        # Only this broker runs the scenario.
        if [ "$broker" = mosquitto ]; then stop_one "$T_PID" TERM; else stop_one "$M_PID" TERM; fi
        fill_broker "$broker" fill
        if [ "$broker" = mosquitto ]; then stop_one "$M_PID" TERM; else stop_one "$T_PID" TERM; fi
        probe_restart "$broker" restart
        if [ "$broker" = mosquitto ]; then stop_one "$M_PID" TERM; else stop_one "$T_PID" TERM; fi
    done
    start_brokers durable
    stop_one "$M_PID" TERM
    fill_broker tollgate fill-before-kill
    stop_one "$T_PID" KILL
    probe_restart tollgate restart-after-kill
    stop_one "$T_PID" TERM
    sleep 1
fi

# Idle connections: fresh brokers for every run, so the baseline RSS is a new process's.
if wanted idle; then
    log "scenario idle ($IDLE connections)"
    for r in $(seq 1 "$RUNS"); do
        for broker in mosquitto tollgate; do
            start_brokers
            sleep 1
            run_one idle "idle --connections $IDLE --settle 3" "$broker" "$r"
            stop_brokers
        done
    done
fi

# Debian's Mosquitto with its stock in-flight limit (20) and 3.1.1 QoS 2: one run, for the record.
if wanted stock-inflight-qos2; then
    log "check: stock Mosquitto max_inflight_messages, 3.1.1 QoS 2, window 64"
    INFLIGHT_SAVED=$INFLIGHT
    INFLIGHT=20
    start_brokers
    run_one stock-inflight-qos2 "pairs --pairs $PAIRS --qos 2 --window 64 $TIMING" mosquitto 1
    stop_brokers
    INFLIGHT=$INFLIGHT_SAVED
fi
ELAPSED=$(( $(date +%s) - START ))

# --- Report ---------------------------------------------------------------------------------
{
    echo "nproc=$(nproc)"
    echo "memory=$(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel=$(uname -sr)"
    echo "cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "mosquitto=$("$MOSQUITTO" -h 2>/dev/null | awk '/^mosquitto version/ {print $3; exit}')"
    echo "rustc=$(rustc --version)"
    echo "commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "runs=$RUNS"
    echo "quick=$QUICK"
    echo "elapsed=$ELAPSED"
    echo "nofile=$NOFILE"
    echo "store_fs=$(df -T "$WORK" | awk 'NR == 2 {print $2 " on " $1}')"
    echo "restarts=$RESTARTS"
    echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
} >"$WORK/meta.txt"

python3 "$ROOT/bench/report.py" "$WORK" "$OUT"
log "wrote $OUT (raw runs in $WORK/runs)"
