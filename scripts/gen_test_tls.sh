#!/bin/bash
# Test-only TLS material for tests/remote_workers.rs: a CA, a learner certificate it signs for
# 127.0.0.1 and localhost, and an unrelated CA a worker must not accept it under. Valid 100 years.
# Regenerate with: bash scripts/gen_test_tls.sh   (needs openssl)
set -euo pipefail
dir=tests/fixtures/tls
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
  -keyout ca.key -out ca.pem -subj "/CN=srlm test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout learner.key -out learner.csr -subj "/CN=srlm learner"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' > learner.ext
openssl x509 -req -in learner.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 -out learner.pem -extfile learner.ext
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
  -keyout other-ca.key -out other-ca.pem -subj "/CN=some other CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
rm -f learner.csr learner.ext ca.srl ca.key other-ca.key
