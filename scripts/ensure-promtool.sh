#!/bin/sh
# Make `promtool` available for the monitoring tests (tests/unit/test_monitoring.py):
# `promtool check rules`, `promtool test rules`, `promtool check config` and
# `promtool check metrics`. Debian's `prometheus` package ships /usr/bin/promtool.
#
# Installs that package only when promtool is missing AND we are root AND apt-get
# exists; otherwise prints a notice and leaves it to the tests, which skip with a
# visible reason. Never fails the build: always exits 0. Installing the package does not
# start a Prometheus server in a container (policy-rc.d / no systemd); on a real host
# the package enables prometheus.service, so prefer installing promtool yourself there.
# Set SWITCH_NO_INSTALL=1 to never install anything.

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

notice() {
    echo "ensure-promtool: $*; the promtool tests will be skipped" >&2
    exit 0
}

[ "${SWITCH_NO_INSTALL:-}" = "1" ] && notice "promtool not found and SWITCH_NO_INSTALL=1"
[ "$(id -u)" = "0" ] || notice "promtool not found and not root (install the Debian package 'prometheus')"
command -v apt-get >/dev/null 2>&1 || notice "promtool not found and no apt-get"

export DEBIAN_FRONTEND=noninteractive
install() {
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1
}

echo "ensure-promtool: installing the Debian package 'prometheus' for promtool" >&2
if ! install; then
    # The package lists may be missing or stale (fresh container): refresh once, retry.
    apt-get update -qq >/dev/null 2>&1 || true
    install || notice "apt-get install prometheus failed"
fi
command -v promtool >/dev/null 2>&1 || notice "the package 'prometheus' installed no promtool"
echo "ensure-promtool: $(promtool --version 2>&1 | head -n 1)" >&2
exit 0
