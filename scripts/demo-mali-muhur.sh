#!/usr/bin/env bash
# Mali Mühür and single-certificate issuance, end to end on the embedded
# defaults: a demo CA, a Mali Mühür e-seal certificate from a CSR, an ÖKC
# device certificate from a public key, an on-site HSM provisioning rehearsed
# on a SoftHSM2 token, all checked with OpenSSL.
# Output goes to ./demo-mali-muhur (or the folder given).
set -euo pipefail
# The audit log names who did it; the demo runs as a demo operator unless told otherwise.
export CERTMINT_OPERATOR="${CERTMINT_OPERATOR:-demo-operator}"
cd "$(dirname "$0")/.."
repo="$PWD"

bash scripts/setup-debian.sh
# CERTMINT_BIN runs another build of certmint (the test suite runs this
# script with its own debug build); by default the release build.
if [ -n "${CERTMINT_BIN:-}" ]; then
  certmint="$CERTMINT_BIN"
else
  cargo build --release --quiet
  certmint="$PWD/target/release/certmint"
fi

out="${1:-demo-mali-muhur}"
rm -rf "$out"
mkdir -p "$out"
cd "$out"

echo "== 1. CA: root + one issuing CA per product line (EC P-384, Kamu SM names and URLs)"
"$certmint" ca init --dir ca

echo "== 2. The customer makes a key and a certificate request (OpenSSL, as a customer would)"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out company.key 2>/dev/null
openssl req -new -key company.key -subj "/CN=request" -out company.csr

echo "== 3. Mali Mühür e-seal certificate"
"$certmint" issue --ca ca --profile mali-muhur --csr company.csr \
  --vkn 4540536920 --unvan "Örnek Bilişim Anonim Şirketi" --out company.pem

echo "== 4. ÖKC device certificate"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out device.key 2>/dev/null
openssl pkey -in device.key -pubout -out device.pub
"$certmint" issue --ca ca --profile okc-device --public-key device.pub \
  --device-serial FU00022547 --out FU00022547.pem

echo "== 5. Independent check with OpenSSL"
openssl verify -CAfile ca/root.pem -untrusted ca/issuing.pem company.pem
openssl verify -CAfile ca/root.pem -untrusted ca/okc-issuing.pem FU00022547.pem

echo "== 6. On-site HSM session, rehearsed on a SoftHSM2 token: probe, provision, verify"
export SOFTHSM2_CONF
SOFTHSM2_CONF=$(bash "$repo/softhsm/new-token.sh" hsm musteri | cut -d= -f2)
token="pkcs11:token=musteri?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:$PWD/hsm/user.pin"
"$certmint" hsm probe --token "$token" --vkn 3230512384
"$certmint" hsm provision --ca ca --token "$token" --vkn 3230512384 \
  --unvan "Deneme Teknoloji Limited Şirketi" --key-type p384 --out 3230512384SIGN0.pem
openssl verify -CAfile ca/root.pem -untrusted ca/issuing.pem 3230512384SIGN0.pem

echo "== 7. What was issued"
"$certmint" inspect company.pem
echo
echo "Demo output is in $(pwd)"
