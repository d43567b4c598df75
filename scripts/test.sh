#!/usr/bin/env bash
# Runs every test of the workspace, the PromQL conformance suite and the Prometheus interop
# test included, after installing what they need. Extra arguments go to `cargo test`.
# An existing CARGO_TARGET_DIR is used as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh
# The committed web console bundle (ui/dist, embedded in the binary) must be a build of ui/app.
bash ui/build.sh --check
# The console's pure logic (autocomplete, matchers, traces); its pages run in tests/ui_e2e.rs.
node --test ui/tests/unit.test.mjs
cargo test --workspace --all-targets --no-fail-fast "$@"
