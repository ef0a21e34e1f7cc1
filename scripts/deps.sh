#!/usr/bin/env bash
# Installs the system packages the tests need when they are missing. The
# machines run as root; elsewhere run this with sudo or install by hand.
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)          # the race detector needs cgo
command -v git >/dev/null || need+=(git)
command -v sipp >/dev/null || need+=(sip-tester) # SIPp: the SIP peer of the SIP edge's tests
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
echo "deps: ok"
