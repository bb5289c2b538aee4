#!/bin/sh
# Install the Debian packages of runner/host-packages.txt that are not installed
# yet, for the roles given (all by default). Runs apt-get only when something is
# missing, so a second run is silent and quick.
set -eu
here=$(dirname "$0")
missing=""
for pkg in $(python3 "$here/host_packages.py" "$@"); do
	status=$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "Installing Debian packages:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # the list is meant to split into words
$sudo apt-get install -y -qq --no-install-recommends $missing
