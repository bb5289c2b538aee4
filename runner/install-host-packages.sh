#!/bin/sh
# Install the Debian packages of runner/host-packages.txt that are not installed
# yet, for the sets or roles given (html, test, bundle, ...; every package when
# none is given). Runs apt-get only when something is missing, so a second run is
# silent and quick.
set -eu
here=$(dirname "$0")
# Read the list first: a failing command in a for's word list would not stop
# set -e, and a misspelt set would then install nothing and succeed.
wanted=$(python3 "$here/host_packages.py" "$@")
missing=""
for pkg in $wanted; do
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
