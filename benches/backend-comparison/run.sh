#!/usr/bin/env bash
# Signing throughput of the candidate software backends, then `openssl speed`
# on the same machine, back to back. Needs libssl-dev and pkg-config for the
# openssl crate (apt-get install libssl-dev pkg-config).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
./target/release/backend-bench
openssl speed -seconds 3 ecdsap256 ecdsap384 rsa2048 2>/dev/null | tail -4
