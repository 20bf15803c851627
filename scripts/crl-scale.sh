#!/usr/bin/env bash
# The ÖKC issuing CA's CRL at scale, the way production makes it: a journal
# holding N revocations (default 1,000,000) of the ÖKC issuing CA, then
# `certmint ca crl --issuer okc` streaming them into a CRL, timed, with the
# process's peak memory (GNU time), and checked with `openssl crl -verify`.
#
# The revocations are written straight into the journal's table (16-octet
# serials with a positive first octet, as production draws them), so this
# measures the CRL's path alone; such a journal's audit log does not know
# them, which `audit verify` would report. Output: ./crl-scale-output.
set -euo pipefail
cd "$(dirname "$0")/.."

entries="${1:-1000000}"
out="${2:-crl-scale-output}"
bash scripts/setup-debian.sh
if ! command -v sqlite3 >/dev/null || [ ! -x /usr/bin/time ]; then
    apt-get update -qq && apt-get install -y -qq sqlite3 time >/dev/null
fi
cargo build --release --quiet
certmint="$PWD/target/release/certmint"

rm -rf "$out"
mkdir -p "$out"
cd "$out"
export CERTMINT_JOURNAL="$PWD/journal.sqlite"
export CERTMINT_OPERATOR="crl-scale"
"$certmint" ca init --dir ca --key-type p256 >/dev/null
# One certificate on record makes the journal, with its schema.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out device.key 2>/dev/null
openssl pkey -in device.key -pubout -out device.pub
"$certmint" issue --ca ca --profile okc-device --public-key device.pub \
    --device-serial FU00000001 --manufacturer "Örnek Yazarkasa" --out device.pem >/dev/null
ski=$(openssl x509 -in ca/okc-issuing.pem -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' :\n')
sqlite3 "$CERTMINT_JOURNAL" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $entries)
INSERT INTO revocations (serial_hex, issuer_key_id, revoked_at, reason, operator)
SELECT '4' || substr(upper(hex(randomblob(16))), 2), '$ski', '2026-12-01T00:00:00Z', 'key-compromise', 'crl-scale'
FROM n;
SQL
echo "== $entries revocations in the journal; the empty Mali Mühür CRL for the baseline"
/usr/bin/time -f "   wall %e s, peak memory %M KiB" "$certmint" ca crl --ca ca --issuer mali-muhur >/dev/null
echo "== the ÖKC issuing CA's CRL"
/usr/bin/time -f "   wall %e s, peak memory %M KiB" "$certmint" ca crl --ca ca --issuer okc
openssl crl -inform DER -in ca/crl/okcshs-s1.crl -CAfile ca/okc-issuing.pem -noout -verify
