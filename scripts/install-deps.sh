#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that unlearn needs to build, test and run its demo.
#   scripts/install-deps.sh              install them (as root), or print the apt-get line otherwise
#   scripts/install-deps.sh --if-missing install only when something is missing (used by make)
#   scripts/install-deps.sh --print      print the package list and exit
set -euo pipefail
BUILD_PKGS="build-essential pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev libhdf5-dev hdf5-tools libopenblas-dev libyaml-dev"
TEST_PKGS="python3-torch python3-h5py python3-numpy python3-sklearn python3-matplotlib dataset-fashion-mnist"
SLURM_PKGS="slurm-wlm munge"
PKGS="$BUILD_PKGS $TEST_PKGS $SLURM_PKGS"

if [ "${1:-}" = "--print" ]; then echo "$PKGS"; exit 0; fi

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    [ "${1:-}" = "--if-missing" ] || echo "install-deps: all packages are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root:  apt-get install -y$missing" >&2
    echo "install-deps: (on a cluster, 'module load' Open MPI, HDF5, OpenBLAS and libyaml and pass the flags to make; see README)" >&2
    exit 1
fi
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
