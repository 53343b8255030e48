#!/usr/bin/env bash
# Makes a bearer token for the coordinator's public API and records only its SHA-256 in an auth
# file (created if missing). The token itself is printed once, on stdout, and stored nowhere.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/new-token.sh SUBJECT ROLE [AUTH_FILE]

  SUBJECT    who holds the token, as the audit log names them (e.g. alice, ci-pipeline)
  ROLE       admin (train, forget, cancel, and read) or viewer (read only)
  AUTH_FILE  the coordinator's --auth-file (default .lethe/auth.json)

Prints the new token on stdout; hand it to its holder (LETHE_TOKEN=... lethe forget ...).
USAGE
}

case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] && [ $# -le 3 ] || { usage >&2; exit 2; }
subject="$1"
role="$2"
file="${3:-.lethe/auth.json}"
case "$role" in admin | viewer) ;; *) echo "new-token.sh: role must be admin or viewer" >&2; exit 2 ;; esac
if ! [[ "$subject" =~ ^[A-Za-z0-9][A-Za-z0-9@._:-]{0,127}$ ]]; then
  echo "new-token.sh: subject must be 1-128 of A-Z a-z 0-9 @ . _ : -" >&2
  exit 2
fi

token="lethe_$(openssl rand -hex 32)"
hash="$(printf '%s' "$token" | openssl dgst -sha256 -r | cut -d' ' -f1)"
mkdir -p "$(dirname "$file")"
# node is what the coordinator runs on, so it is here; it merges the entry into the JSON file.
LETHE_AUTH_FILE="$file" LETHE_ENTRY_HASH="$hash" LETHE_ENTRY_SUBJECT="$subject" \
  LETHE_ENTRY_ROLE="$role" node -e '
const fs = require("node:fs");
const file = process.env.LETHE_AUTH_FILE;
const auth = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
auth.tokens ??= {};
auth.tokens[`sha256:${process.env.LETHE_ENTRY_HASH}`] = {
  subject: process.env.LETHE_ENTRY_SUBJECT,
  role: process.env.LETHE_ENTRY_ROLE,
};
fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(auth, null, 2)}\n`, { mode: 0o600 });
fs.renameSync(`${file}.tmp`, file);
'
echo "new-token.sh: $subject ($role) added to $file" >&2
printf '%s\n' "$token"
