#!/bin/sh
# Installs what mqscope needs to build and test on Debian 12: libpcap (linked by the
# pcap crate), tshark (the independent decoder the tests and the benchmark compare
# against), mosquitto (a real broker for integration tests), and a Rust toolchain if
# none is present (Debian's own rustc is too old for edition 2024).
set -eu
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=""
for p in libpcap-dev tshark mosquitto mosquitto-clients openssl prometheus curl pkg-config gcc python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
