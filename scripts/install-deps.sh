#!/usr/bin/env bash
# Installs the Debian packages SignTransfer builds against (and sqlite3, the shell the README uses to
# look at the artifacts), only those missing, without questions.
set -euo pipefail
wanted=(pkg-config libopenblas-dev libpng-dev libjpeg62-turbo-dev libsqlite3-dev libhdf5-dev sqlite3)
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing missing system packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
