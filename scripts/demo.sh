#!/usr/bin/env bash
# certmint's main job, end to end on the embedded defaults: an ÖKC batch.
#
# A demo CA (Kamu SM profiles), the manufacturer's serial list of 3,000
# fiscal devices (fixtures/orders/demo-okc-3000.csv: a semicolon CSV with a
# BOM and CRLF, as spreadsheets export it), the order imported and marked
# paid (its manufacturer registered first), produced with software keys delivered as PKCS#12 files, then checked
# with OpenSSL: every certificate against the CA chain, PKCS#12 files opened
# with their passwords, the audit chain verified. Output: ./demo-output.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-debian.sh
# CERTMINT_BIN runs another build of certmint (the test suite runs this
# script with its own debug build); by default the release build.
if [ -n "${CERTMINT_BIN:-}" ]; then
  certmint="$CERTMINT_BIN"
  build="the build at $CERTMINT_BIN"
else
  cargo build --release --quiet
  certmint="$PWD/target/release/certmint"
  build="release build"
fi
list="$PWD/fixtures/orders/demo-okc-3000.csv"

out="${1:-demo-output}"
rm -rf "$out"
mkdir -p "$out"
cd "$out"
export CERTMINT_JOURNAL="$PWD/certmint-journal.sqlite"
export CERTMINT_OPERATOR="demo-operator"

echo "== 1. CA: root + issuing CAs, one per product line (EC P-256)"
"$certmint" ca init --dir ca --key-type p256 >/dev/null
echo "   ca/ written"

echo "== 2. Register the manufacturer (GİB model approval, secure-area audit), import its order"
"$certmint" manufacturer register --vkn 4540536920 --name "Örnek Yazarkasa A.Ş." \
  --prefixes FU,JI --model-approval GIB-ONAY-2026/17 --secure-area-audit 2026-11-30
"$certmint" order import --manufacturer-vkn 4540536920 --ca ca \
  --prefixes FU,JI --target soft --key-type p256 --serials "$list"

echo "== 3. Production refuses the unpaid order"
if "$certmint" okc produce --order 1 --ca ca --deliveries deliveries 2>&1; then
  echo "unpaid order was produced" >&2; exit 1
fi

echo "== 4. Record the payment, then produce"
"$certmint" order pay --order 1
start=$(date +%s.%N)
"$certmint" okc produce --order 1 --ca ca --deliveries deliveries
end=$(date +%s.%N)

echo "== 5. A re-run issues nothing"
"$certmint" okc produce --order 1 --ca ca --deliveries deliveries | sed -n 1p

echo "== 6. Independent checks with OpenSSL"
cd deliveries/order-1
ls certs/*.pem | xargs -n 500 openssl verify -CAfile ../../ca/root.pem -untrusted ../../ca/okc-issuing.pem \
  | grep -c ': OK$' | sed 's/^/   certificates verified: /'
checked=0
while IFS=, read -r serial file password; do
  [ "$serial" = device_serial ] && continue
  key=$(P12PW="$password" openssl pkcs12 -in "$file" -passin env:P12PW -nodes -nocerts 2>/dev/null | openssl pkey -pubout)
  cert=$(openssl x509 -in "certs/$serial.pem" -pubkey -noout)
  [ "$key" = "$cert" ] || { echo "PKCS#12 of $serial does not match its certificate" >&2; exit 1; }
  checked=$((checked + 1))
  [ $checked -ge 200 ] && break
done < ../order-1.passwords.csv
echo "   PKCS#12 files opened with their manifest passwords, key = certificate key: $checked (a sample)"
cd ../..
"$certmint" audit verify

echo "== 7. Summary"
"$certmint" order status --order 1
devices=$(($(wc -l < deliveries/order-1/manifest.csv) - 1))
echo "   $devices devices in $(awk "BEGIN{printf \"%.1f\", $end - $start}") s ($build, this machine)"
echo "   delivery: $PWD/deliveries/order-1  passwords: $PWD/deliveries/order-1.passwords.csv"
echo "   purge:    certmint okc purge --deliveries deliveries   (after 10 Turkish business days)"
