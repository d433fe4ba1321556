#!/usr/bin/env bash
# Usage: tools/ensure-debian-package.sh COMMAND PACKAGE WITHOUT-IT
# Make the Debian PACKAGE that provides COMMAND available (apt-get, once), e.g. `prometheus` for
# the demo and the integration tests, `chromium` for the test that looks at the Prefect UI.
# Prints one line saying what it did. Never fails the set-up: WITHOUT-IT says what happens instead
# (the demo falls back to embedded metrics; the tests that need it say why they cannot run, and
# fail on CI).
set -u
command=$1 package=$2 without=$3
if command -v "$command" >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$package: not installed and apt-get is not available; $without"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "$package: not installed and apt-get needs root; $without"
  exit 0
fi
echo "$package: installing Debian's package with apt-get (once)"
# Keep a package's service from starting: tests start their own server on a free port.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
log="/tmp/canaryflow-apt-$package.log"
{ $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "$package"; } >"$log" 2>&1
rc=$?
[ -n "$made_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
if [ $rc -ne 0 ] || ! command -v "$command" >/dev/null 2>&1; then
  echo "$package: apt-get install failed (see $log); $without"
fi
exit 0
