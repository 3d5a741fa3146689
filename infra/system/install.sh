#!/usr/bin/env bash
# Installs the Debian packages tierflow's real components need, when they are missing:
# a JDK (the Kafka broker runs on Java 17+), Maven (resolves the broker from Maven Central),
# Prometheus (scrapes every tierflow process), openssl, iproute2 and Go (emulated tiers).
set -euo pipefail

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
# Debian's Prometheus: tierflow up --prometheus and the observability tests run it.
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# openssl: the throw-away CA and broker certificate of the SASL_SSL tests.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# iproute2 (ip, tc): the namespaces and shaped links of tierflow tiers.
command -v tc >/dev/null 2>&1 || need+=(iproute2)
# Go builds toxiproxy, the links' delay (tierflow tiers install); /usr/local/go counts.
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || need+=(golang-go)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "installing Debian packages: ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
