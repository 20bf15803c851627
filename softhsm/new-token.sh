#!/usr/bin/env bash
# Creates a SoftHSM2 token in its own directory, for tests and the demo.
#
#   softhsm/new-token.sh DIR LABEL [MECHANISMS]
#
# DIR gets softhsm2.conf, tokens/, user.pin and so.pin (mode 0600, fresh
# random PINs each run). MECHANISMS is SoftHSM's slots.mechanisms allow-list,
# e.g. "CKM_RSA_PKCS_KEY_PAIR_GEN,CKM_SHA256_RSA_PKCS" (default: ALL).
# Prints the line to export: SOFTHSM2_CONF=DIR/softhsm2.conf
#
# softhsm2-util takes PINs only as arguments or at a prompt; these are
# throwaway PINs of a test token, never a customer's. certmint itself reads
# PINs from pin-source files, an environment variable or a prompt only.
set -euo pipefail
dir=${1:?usage: new-token.sh DIR LABEL [MECHANISMS]}
label=${2:?usage: new-token.sh DIR LABEL [MECHANISMS]}
mechanisms=${3:-ALL}
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
sed -e "s|@TOKENDIR@|$dir/tokens|" -e "s|@MECHANISMS@|$mechanisms|" "$here/softhsm2.conf.template" > "$dir/softhsm2.conf"
umask 077
[ -f "$dir/user.pin" ] || od -An -N6 -tu2 /dev/urandom | tr -d ' \n' | cut -c1-8 > "$dir/user.pin"
[ -f "$dir/so.pin" ] || od -An -N6 -tu2 /dev/urandom | tr -d ' \n' | cut -c1-8 > "$dir/so.pin"
SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free --label "$label" \
  --so-pin "$(cat "$dir/so.pin")" --pin "$(cat "$dir/user.pin")" >/dev/null
echo "SOFTHSM2_CONF=$dir/softhsm2.conf"
