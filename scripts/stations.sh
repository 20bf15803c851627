#!/usr/bin/env bash
# Several stations on one PostgreSQL journal, measured with the release
# build on this machine, against a throwaway PostgreSQL cluster (initdb and
# pg_ctl in a temporary folder, a private Unix socket, stopped at the end):
#
# 1. `certmint bench --batch N` on SQLite and on PostgreSQL, back to back:
#    devices/s of each and their ratio (one station);
# 2. one `okc produce` of an N-device soft order on PostgreSQL, then two at
#    once on another such order: the wall time of each and 2 stations ÷ 1;
# 3. three `okc produce` at once on a third order: each device certified
#    once (`cert list`), every certificate checked with `openssl verify`,
#    the audit chain verified, and the stations' counts (`order status`).
# 4. two `okc produce` at work while a third is started and killed with
#    SIGKILL ten times at random moments: the survivors take its devices
#    over; one issued certificate per device, every void intent revoked,
#    no file but one certificate and one PKCS#12 per device.
#
# Usage: bash scripts/stations.sh [N]   (default 10000). Output: ./stations-output.
set -euo pipefail
cd "$(dirname "$0")/.."

devices="${1:-10000}"
out="$PWD/stations-output"
bash scripts/setup-debian.sh
cargo build --release --quiet
certmint="$PWD/target/release/certmint"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

rm -rf "$out"
mkdir -p "$out"
cluster="$(mktemp -d /tmp/certmint-stations-pg.XXXXXX)"
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$cluster"
as_server_user "$bin/initdb" -D "$cluster/data" --auth=trust -U postgres -E UTF8 --no-locale >/dev/null
as_server_user "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories=$cluster" start >/dev/null
stop() {
    as_server_user "$bin/pg_ctl" -D "$cluster/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$cluster"
}
trap stop EXIT
database() {
    psql -X -q -h "$cluster" -U postgres -d postgres -c "CREATE DATABASE $1"
    echo "postgresql://postgres@/$1?host=$cluster"
}

cd "$out"
export CERTMINT_OPERATOR=stations CERTMINT_AUDIT_DIR="$out/audit"

echo "== 1. bench --batch $devices: SQLite, then PostgreSQL, three rounds back to back"
for round in 1 2 3; do
    "$certmint" bench --batch "$devices" --seconds 0.1 --json > "bench-sqlite-$round.json"
    "$certmint" bench --batch "$devices" --seconds 0.1 --json \
        --batch-journal "$(database "bench$round")" > "bench-postgresql-$round.json"
done
python3 - <<'EOF'
import json, statistics
rate = lambda name: [json.load(open(f"bench-{name}-{r}.json"))["batch"]["devices_per_second"] for r in (1, 2, 3)]
s, p = rate("sqlite"), rate("postgresql")
print("SQLite devices/s:     " + ", ".join(f"{x:.0f}" for x in s) + f"  (median {statistics.median(s):.0f})")
print("PostgreSQL devices/s: " + ", ".join(f"{x:.0f}" for x in p) + f"  (median {statistics.median(p):.0f})")
print("PostgreSQL / SQLite, each round: " + ", ".join(f"{b / a:.2f}" for a, b in zip(s, p))
      + f"; of the medians: {statistics.median(p) / statistics.median(s):.2f}")
EOF

# The lab CA's own certificates go on record in a journal of their own: each
# round below starts a fresh one.
CERTMINT_JOURNAL=ca-journal.sqlite CERTMINT_OPERATOR=lab "$certmint" ca init --dir ca --key-type p256 >/dev/null
python3 -c "
for i in range($devices): print('FU%08d' % (10000000 + i))" > list.txt
# An order of the list on the journal $1, paid.
order() {
    CERTMINT_JOURNAL="$1" "$certmint" manufacturer register --vkn 4540536920 --name "Örnek Yazarkasa A.Ş." \
        --prefixes FU,JI --model-approval GIB-ONAY-2026/17 --secure-area-audit 2026-11-30 >/dev/null
    CERTMINT_JOURNAL="$1" "$certmint" order import --manufacturer-vkn 4540536920 --ca ca \
        --prefixes FU --target soft --key-type p256 --serials list.txt >/dev/null
    CERTMINT_JOURNAL="$1" "$certmint" order pay --order 1 >/dev/null
}
# Runs $2 stations of `okc produce` at once on the journal $1; prints the wall time.
produce() {
    local start end
    start=$(date +%s.%N)
    for s in $(seq "$2"); do
        CERTMINT_JOURNAL="$1" CERTMINT_OPERATOR="station-$s" "$certmint" okc produce --order 1 --ca ca \
            --deliveries "deliveries-$3" > "produce-$3-$s.txt" 2>&1 &
    done
    wait
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.2f}')"
}

echo "== 2. one station, then two, on $devices devices (PostgreSQL), two rounds"
for round in 1 2; do
    one="$(database "one$round")"; order "$one"
    two="$(database "two$round")"; order "$two"
    t1=$(produce "$one" 1 "one$round")
    t2=$(produce "$two" 2 "two$round")
    python3 -c "print(f'round $round: 1 station {$t1} s ({$devices / $t1:.0f} devices/s); 2 stations {$t2} s ({$devices / $t2:.0f} devices/s); 2 stations ÷ 1: {$t1 / $t2:.2f}')"
done

echo "== 3. three stations at once on $devices devices (PostgreSQL)"
three="$(database three)"; order "$three"
t3=$(produce "$three" 3 three)
export CERTMINT_JOURNAL="$three"
"$certmint" cert list --order 1 --json > certs.json
python3 - "$devices" <<'EOF'
import json, sys
certs = [json.loads(l) for l in open("certs.json")]
issued = [c["device_serial"] for c in certs if c["status"] == "issued"]
assert len(issued) == int(sys.argv[1]) == len(set(issued)), (len(issued), len(set(issued)))
print(f"one issued certificate for each of {len(set(issued))} devices")
EOF
verified=0
for chunk in $(ls deliveries-three/order-1/certs/*.pem | xargs -n 500 echo | tr ' ' ','); do
    files=${chunk//,/ }
    # shellcheck disable=SC2086
    verified=$((verified + $(openssl verify -CAfile ca/root.pem -untrusted ca/okc-issuing.pem $files | grep -c ': OK$')))
done
echo "openssl verify: $verified certificates OK"
[ "$verified" -eq "$devices" ]
"$certmint" audit verify | sed -n 1p
"$certmint" order status --order 1 | sed -n '/producers:/,$p'
echo "three stations: $t3 s"

echo "== 4. one station killed (SIGKILL) ten times at random moments while two run, on $devices devices (PostgreSQL)"
four="$(database four)"; order "$four"
export CERTMINT_JOURNAL="$four"
for s in 1 2; do
    CERTMINT_OPERATOR="survivor-$s" "$certmint" okc produce --order 1 --ca ca --deliveries deliveries-four \
        > "produce-four-$s.txt" 2>&1 &
done
for kill in $(seq 10); do
    CERTMINT_OPERATOR=victim "$certmint" okc produce --order 1 --ca ca --deliveries deliveries-four \
        > /dev/null 2>&1 &
    victim=$!
    sleep "0.$(( RANDOM % 9 + 1 ))"
    kill -KILL "$victim" 2>/dev/null || true
    wait "$victim" 2>/dev/null || true
done
wait
"$certmint" cert list --order 1 --json > certs-four.json
python3 - "$devices" <<'EOF'
import json, os, sys
devices = int(sys.argv[1])
certs = [json.loads(l) for l in open("certs-four.json")]
issued = [c["device_serial"] for c in certs if c["status"] == "issued"]
void = [c for c in certs if c["status"] == "void"]
assert len(issued) == devices == len(set(issued)), (len(issued), len(set(issued)))
assert all(c["revocation"] for c in void), "a void certificate not revoked"
files = sorted(os.listdir("deliveries-four/order-1/certs")) + sorted(os.listdir("deliveries-four/order-1/p12"))
expected = sorted(f"{s}.{e}" for s in issued for e in ("der", "pem")) + sorted(f"{s}.p12" for s in issued)
assert files == expected, "files other than one certificate and one PKCS#12 per device"
print(f"one issued certificate for each of {devices} devices; {len(void)} void intent(s) of the killed station, all revoked; no other file")
EOF
"$certmint" audit verify | sed -n 1p
"$certmint" order status --order 1 | sed -n '/state:/p;/producers:/,$p'
