#!/usr/bin/env bash
# Every test: formatting and lints, the Rust tests (including the header staleness check),
# then the pytest suite (C programs, under valgrind too, against private mosquitto brokers).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prerequisites.sh
eq1_need_cargo
eq1_need_cargo_components fmt clippy
eq1_need_debian_packages mosquitto:mosquitto mosquitto_pub:mosquitto-clients \
    valgrind:valgrind cmake:cmake pkg-config:pkg-config cc:gcc c++:g++ openssl:openssl \
    strace:strace socat:socat tinyproxy:tinyproxy microsocks:microsocks \
    losetup:mount fallocate:util-linux mkfs.ext4:e2fsprogs e2fsck:e2fsprogs
eq1_need_debian_headers openssl/evp.h:libssl-dev
eq1_need_python_packages pytest:pytest cryptography:cryptography mypy:mypy \
    prometheus_client:prometheus-client pymodbus:pymodbus==3.8.6 serial:pyserial==3.5

step() { printf '\n=== %s ===\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
step "cargo test (unit, scripted broker, header up to date)"
cargo test --quiet
step "src/core and src/protocol.rs build without src/mqtt"
./scripts/check-core-alone.sh
step "cargo build --release"
cargo build --release --quiet
step "mypy --strict (the communicator package's type hints)"
(cd bindings/python && python3 -m mypy --strict --no-error-summary communicator)
step "pytest"
python3 -m pytest -q -p no:cacheprovider tests "$@"
