#!/usr/bin/env bash
# What building etcd-audit needs besides cargo: protoc, for the build scripts
# of prost/tonic and etcd-client (Debian's protobuf-compiler). Nothing else.
# Idempotent: does nothing when protoc is already there.
set -euo pipefail
command -v protoc >/dev/null && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq protobuf-compiler >/dev/null
