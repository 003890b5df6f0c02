#!/usr/bin/env bash
# Soak run, separate from the test suite: QoS 1 and QoS 2 streams through a proxy cut and
# blackholed at random for the given minutes (default 10), then every message accounted for.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prerequisites.sh
eq1_need_cargo
eq1_need_debian_packages mosquitto:mosquitto cc:gcc
eq1_need_python_packages cryptography:cryptography
exec python3 tests/soak.py "${1:-10}"
