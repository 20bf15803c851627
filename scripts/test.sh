#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, formatting, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-debian.sh

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets --quiet
