#!/usr/bin/env bash
# The OpenSSL command-line pipeline a user would otherwise script for soft
# ÖKC certificates, timed against `certmint bench --batch` in the same run.
#
#   bash benches/openssl-pipeline.sh [OPENSSL_DEVICES] [CERTMINT_DEVICES]
#
# Per device: genpkey (EC P-256) + req + x509 (signed by the issuing CA with
# the ÖKC extensions) + pkcs12 (OpenSSL 3 defaults: AES-256-CBC, PBKDF2) with
# a random password — one process after another, as such a script runs.
# certmint's batch: the same order with a durable journal (WAL,
# synchronous=FULL), PKCS#12 output and its default workers.
# Prints both per-device times and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
openssl_devices=${1:-300}
certmint_devices=${2:-10000}
cargo build --release --quiet
certmint="$(realpath "${CARGO_TARGET_DIR:-target}")/release/certmint"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$certmint" ca init --dir ca --key-type p256 >/dev/null
cat > ext.cnf <<'CNF'
[okc]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
certificatePolicies = 2.16.792.1.2.1.1.5.7.4.1
CNF

start=$(date +%s.%N)
for i in $(seq 1 "$openssl_devices"); do
  s=$(printf "FU%08d" $((10000000 + i)))
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$s.key" 2>/dev/null
  openssl req -new -key "$s.key" -subj "/serialNumber=$s/CN=$s" -out "$s.csr"
  openssl x509 -req -in "$s.csr" -CA ca/issuing.pem -CAkey ca/issuing-key.pem -CAcreateserial \
    -days 1826 -sha256 -extfile ext.cnf -extensions okc -out "$s.pem" 2>/dev/null
  P12_PASSWORD=$(openssl rand -hex 10) openssl pkcs12 -export -inkey "$s.key" -in "$s.pem" \
    -certfile ca/issuing.pem -passout env:P12_PASSWORD -out "$s.p12"
done
end=$(date +%s.%N)
openssl_ms=$(awk "BEGIN{printf \"%.3f\", 1000 * ($end - $start) / $openssl_devices}")

certmint_json=$("$certmint" bench --key-type p256 --seconds 0.2 --batch "$certmint_devices" --json)
certmint_rate=$(printf '%s' "$certmint_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["batch"]["devices_per_second"])')
certmint_ms=$(awk "BEGIN{printf \"%.3f\", 1000 / $certmint_rate}")
peak=$(printf '%s' "$certmint_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["batch"]["peak_rss_kib"])')

echo "OpenSSL command-line pipeline: $openssl_devices devices, $openssl_ms ms per device"
echo "certmint batch:                $certmint_devices devices, $certmint_ms ms per device (peak memory $peak KiB)"
awk "BEGIN{printf \"certmint is %.1fx faster per device\\n\", $openssl_ms / $certmint_ms}"
