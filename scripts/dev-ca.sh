#!/usr/bin/env bash
# A development certificate authority for Lethe, made with openssl: a CA, a certificate for the
# coordinator, one per worker, and client certificates for people using the API.
#
# Not for production: every private key is an unencrypted file, and the CA key sits next to the
# certificates it signs. See docs/SECURITY.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/dev-ca.sh [--out DIR] [--host NAME]... [--worker NAME]... [--client CN]... [--days N]

Writes, into DIR (default .lethe/tls):
  ca.pem, ca-key.pem                    the CA (reused when DIR already holds one)
  coordinator.pem, coordinator-key.pem  CN "coordinator": server certificate of the coordinator,
                                        and its client certificate when it calls workers
  NAME.pem, NAME-key.pem                one per --worker (default: a single "worker"): server
                                        certificate of the worker and its client certificate
                                        for the coordinator's Registry
  CN.pem, CN-key.pem                    one per --client: a client certificate with common name
                                        CN, for a person or program calling the public API (map
                                        the CN to a role in the auth file)

Coordinator and worker certificates name localhost, 127.0.0.1 and ::1, each --host (a DNS name
or an IP address) and, for a worker, its NAME. Keys are EC P-256; files are mode 600.

Options:
  --out DIR      output directory (created if missing)
  --host NAME    add a DNS name or IP address to the server certificates (repeatable)
  --worker NAME  issue a worker certificate (repeatable)
  --client CN    issue a client certificate (repeatable)
  --days N       validity in days (default 825)
  -h, --help     this text
USAGE
}

out=.lethe/tls
days=825
hosts=()
workers=()
clients=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --host) hosts+=("${2:?--host needs a name}"); shift 2 ;;
    --worker) workers+=("${2:?--worker needs a name}"); shift 2 ;;
    --client) clients+=("${2:?--client needs a common name}"); shift 2 ;;
    --days) days="${2:?--days needs a number}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "dev-ca.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#workers[@]} -gt 0 ] || workers=(worker)

command -v openssl >/dev/null 2>&1 || { echo "dev-ca.sh: openssl not found" >&2; exit 1; }
case "$days" in '' | *[!0-9]*) echo "dev-ca.sh: --days must be a number" >&2; exit 2 ;; esac
for name in coordinator ca "${workers[@]}" "${clients[@]}"; do
  if ! [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]]; then
    echo "dev-ca.sh: '$name' is not a usable name (1-63 of A-Z a-z 0-9 . _ -)" >&2
    exit 2
  fi
done

umask 077
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/req.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = Lethe development CA
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF

newkey() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

if [ -f "$out/ca.pem" ] && [ -f "$out/ca-key.pem" ]; then
  echo "dev-ca.sh: reusing the CA in $out"
else
  newkey "$out/ca-key.pem"
  openssl req -x509 -new -key "$out/ca-key.pem" -config "$work/req.cnf" -extensions ca \
    -sha256 -days "$days" -out "$out/ca.pem"
  echo "dev-ca.sh: new CA $out/ca.pem"
fi

is_ip() {
  [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || [[ "$1" == *:* ]]
}

# issue NAME CN USAGE [SAN...]: NAME.pem / NAME-key.pem signed by the CA.
issue() {
  local name="$1" cn="$2" usage="$3"
  shift 3
  local san="" entry
  for entry in "$@"; do
    if is_ip "$entry"; then entry="IP:$entry"; else entry="DNS:$entry"; fi
    case ",$san," in *",$entry,"*) ;; *) san="${san:+$san,}$entry" ;; esac
  done
  {
    echo "[leaf]"
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = $usage"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid, issuer"
    [ -z "$san" ] || echo "subjectAltName = $san"
  } >"$work/$name.ext"
  newkey "$out/$name-key.pem"
  openssl req -new -key "$out/$name-key.pem" -subj "/CN=$cn" -config "$work/req.cnf" \
    -out "$work/$name.csr"
  openssl x509 -req -in "$work/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$days" \
    -extfile "$work/$name.ext" -extensions leaf -out "$out/$name.pem" 2>/dev/null
  echo "dev-ca.sh: $out/$name.pem (CN=$cn${san:+; $san})"
}

servers=(localhost 127.0.0.1 ::1 "${hosts[@]}")
issue coordinator coordinator "serverAuth, clientAuth" "${servers[@]}"
for worker in "${workers[@]}"; do
  issue "$worker" "$worker" "serverAuth, clientAuth" "${servers[@]}" "$worker"
done
for client in "${clients[@]}"; do
  issue "$client" "$client" "clientAuth"
done
chmod 644 "$out"/*.pem
chmod 600 "$out"/*-key.pem
