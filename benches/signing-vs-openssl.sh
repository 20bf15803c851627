#!/usr/bin/env bash
# certmint's software signing next to `openssl speed`, back to back on the
# same machine, one thread, for the key types the issue names (ecdsap256,
# rsa2048; P-384 is shown too). Each round measures certmint, then OpenSSL,
# so that a change in the machine's load falls on both.
#
#   bash benches/signing-vs-openssl.sh [ROUNDS] [SECONDS]
#
# certmint's rate is `certmint bench`'s raw sign/s with 1 worker: ECDSA or
# RSA PKCS#1 v1.5 over a 600-byte message, SHA-2 included; `openssl speed`
# signs a digest (the hash of 600 bytes costs under 1 µs here).
set -euo pipefail
rounds=${1:-3}
seconds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
certmint=${CERTMINT:-$here/target/release/certmint}
if [ ! -x "$certmint" ]; then
  (cd "$here" && cargo build --release --quiet)
fi
command -v openssl >/dev/null || { echo "openssl is not installed (apt-get install openssl)" >&2; exit 1; }

certmint_sign_rate() {
  "$certmint" bench --key-type "$1" --workers 1 --seconds "$seconds" --json |
    python3 -c 'import json, sys; print(round(json.load(sys.stdin)["pipeline"]["single"]["raw_sign"]["per_second"]))'
}

openssl_sign_rate() {
  # The last line is "... sign/s verify/s" for the algorithm asked for.
  openssl speed -seconds "$seconds" "$1" 2>/dev/null | tail -1 | awk '{ printf "%d\n", $(NF-1) }'
}

printf '%-6s %-9s %12s %12s %7s\n' round key certmint/s openssl/s ratio
for round in $(seq "$rounds"); do
  for pair in p256:ecdsap256 rsa2048:rsa2048 p384:ecdsap384; do
    key=${pair%%:*}
    algorithm=${pair##*:}
    ours=$(certmint_sign_rate "$key")
    theirs=$(openssl_sign_rate "$algorithm")
    ratio=$(python3 -c "print(f'{$ours / $theirs:.3f}')")
    printf '%-6s %-9s %12s %12s %7s\n' "$round" "$key" "$ours" "$theirs" "$ratio"
  done
done
