#!/usr/bin/env bash
# What the test suite needs from Debian, installed as root; safe to run again. .ci/run calls it and the README links
# it, so that the two cannot list different packages.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
    echo "${0##*/}: run it as root (sudo bash $0): it installs Debian packages" >&2
    exit 1
fi

packages=(lmod tcl procps curl iproute2 cloud-init systemd python3-venv util-linux acl strace chromium
    mmdebstrap qemu-system-x86 qemu-utils cloud-image-utils socat e2fsprogs)
# Everything already here (CI ran this before the README's test command runs it again): nothing to fetch.
if dpkg -s "${packages[@]}" >/dev/null 2>&1 && ! dpkg -s environment-modules >/dev/null 2>&1 \
    && compgen -G "/opt/environment-modules/usr/lib/*/modulecmd.tcl" >/dev/null; then
    exit 0
fi

apt-get update -qq
# Lmod and Environment Modules conflict; purge (not remove) so that no profile script of the other is left behind.
if dpkg -s environment-modules >/dev/null 2>&1; then apt-get purge -y -qq environment-modules; fi
# procps: pgrep in the tests; curl and iproute2 (ss, ip): the old script the benchmark compares with;
# tcl: Environment Modules' modulecmd.tcl; cloud-init and systemd: their validators check the examples, and
# cloud-init boots each cloud-init example for real (util-linux's unshare; the examples' python3 -m venv);
# acl: setfacl, for the test that root will not act as root in a directory an ACL opens to an account;
# strace: records every program a run executes, with its whole argv, for the test that the token is on none;
# chromium: the real browser (headless) that opens the progress page early and must end on Jupyter's file browser.
# mmdebstrap, qemu-system-x86, qemu-utils, cloud-image-utils, socat, e2fsprogs: the VM tier (tests/e2e/vm) builds Debian
# images from the archive apt is set up with and boots the examples in them under QEMU.
apt-get install -y -qq "${packages[@]}" >/dev/null

# Environment Modules is tested too, but its package conflicts with lmod: unpack it instead of installing it.
# Its modulecmd.tcl runs with the system's tclsh exactly as an installed one does; the tests find it there.
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
chmod 0777 "$debs"  # apt downloads as _apt
(cd "$debs" && apt-get download -qq environment-modules)
# Unpacked beside the old copy and swapped in, so that a test run using it meanwhile finds it missing only an instant.
rm -rf /opt/environment-modules.new
dpkg-deb -x "$debs"/environment-modules_*.deb /opt/environment-modules.new
rm -rf /opt/environment-modules
mv /opt/environment-modules.new /opt/environment-modules
