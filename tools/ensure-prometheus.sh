#!/usr/bin/env bash
# Make Debian's `prometheus` available for the demo and the integration tests.
# Prints one line saying what it did. Never fails the set-up: without Prometheus the demo falls back
# to the embedded metrics source and says so, and the Prometheus tests say why they cannot run.
set -u
if command -v prometheus >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "prometheus: not installed and apt-get is not available; the demo will use embedded metrics"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "prometheus: not installed and apt-get needs root; the demo will use embedded metrics"
  exit 0
fi
echo "prometheus: installing Debian's package with apt-get (once)"
# Keep the package's service from starting: tests start their own server on a free port.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
{ $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends prometheus; } >/tmp/canaryflow-apt.log 2>&1
rc=$?
[ -n "$made_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
if [ $rc -ne 0 ] || ! command -v prometheus >/dev/null 2>&1; then
  echo "prometheus: apt-get install failed (see /tmp/canaryflow-apt.log); the demo will use embedded metrics"
fi
exit 0
