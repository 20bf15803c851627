#!/usr/bin/env bash
# Installs what certmint needs on a fresh Debian machine that has only the
# Rust toolchain (with its C compiler, which aws-lc-sys builds with):
# - openssl: the command line, the independent checker of what we issue;
# - softhsm2: the real PKCS#11 module the HSM tests and demo run against;
# - opensc, opensc-pkcs11: pkcs11-tool (an independent reader of tokens) and
#   pkcs11-spy (counts PKCS#11 calls, e.g. that a wrong PIN is tried once);
# - time: GNU time, which reports a child's peak memory (the flat-memory test);
# - pcscd, vsmartcard-vpcd, libpcsclite-dev: the PC/SC daemon, the virtual
#   reader driver that `certmint card virtual` plugs a virtual PIV card into,
#   and the PC/SC client library the pcsc crate links against;
# - yubico-piv-tool: an independent PIV client of the virtual card (the
#   interop tests), beside OpenSC's opensc-tool and pkcs11-tool;
# - postgresql: the server programs (initdb, pg_ctl) the tests make a
#   throwaway cluster with, and psql, for the shared journal's tests.
# Idempotent: installs nothing when everything is present.
set -euo pipefail

packages=(openssl softhsm2 opensc opensc-pkcs11 time pcscd vsmartcard-vpcd libpcsclite-dev yubico-piv-tool postgresql)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install the Rust toolchain first" >&2; exit 1; }
