#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: makes sure the tools they need are installed. As root on
# Debian it installs what is missing; otherwise it stops with one line saying what to install.
set -euo pipefail

eq1_need_debian_packages() {
    # "command:package" pairs; only missing commands trigger an install.
    local missing=() pair cmd pkg
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing tools: please install the Debian packages: ${missing[*]}" >&2
        exit 1
    fi
}

eq1_need_debian_headers() {
    # "header:package" pairs (header under /usr/include), for C test programs that link
    # system libraries (libcrypto's signing in tests/c/eq1tls.c).
    local pairs=() pair
    for pair in "$@"; do
        [ -e "/usr/include/${pair%%:*}" ] || pairs+=("/nonexistent-${pair%%:*}:${pair#*:}")
    done
    [ ${#pairs[@]} -eq 0 ] || eq1_need_debian_packages "${pairs[@]}"
}

eq1_need_python_packages() {
    # "module:pip-package" pairs.
    local missing=() pair mod pkg
    for pair in "$@"; do
        mod=${pair%%:*}
        pkg=${pair#*:}
        python3 -c "import $mod" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Python packages: ${missing[*]}" >&2
    python3 -m pip install -q "${missing[@]}" || {
        echo "missing Python packages: please run: python3 -m pip install ${missing[*]}" >&2
        exit 1
    }
}

eq1_need_cargo() {
    command -v cargo >/dev/null 2>&1 || {
        echo "missing tool: please install Rust (cargo) 1.80 or newer" >&2
        exit 1
    }
}

eq1_need_cargo_components() {
    # rustfmt and clippy come with rustup's default profile, but not with every install.
    local component
    for component in "$@"; do
        if ! cargo "$component" --version >/dev/null 2>&1; then
            command -v rustup >/dev/null 2>&1 && rustup component add "${component/fmt/rustfmt}" >/dev/null 2>&1 \
                || { echo "missing tool: please install the Rust component ${component/fmt/rustfmt}" >&2; exit 1; }
        fi
    done
}
