#!/usr/bin/env bash
# ci/try.sh — postie's main job on a fresh machine, offline: send a message through a local SMTP
# server with `postie send`, the way it is sent through Gmail or Fastmail with an app password.
#
# Starts aiosmtpd (an independent SMTP server, from PyPI) on 127.0.0.1 with STARTTLS and a
# certificate from a throw-away CA, adds a postie account for it (password kept in postie's
# encrypted secret store), sends a message with the SMTP transcript shown, prints what the server
# stored, shows what postie says when the password is wrong, and stops the server.
# Nothing leaves 127.0.0.1. Files go to ${TMPDIR:-/tmp}/postie-try.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${TMPDIR:-/tmp}/postie-try
PORT=${POSTIE_TRY_PORT:-19587}
mkdir -p "$W"
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi

if [ ! -x "$W/venv/bin/python" ] || ! "$W/venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  say "installing aiosmtpd into $W/venv"
  python3 -m venv "$W/venv"
  "$W/venv/bin/pip" install -q --disable-pip-version-check aiosmtpd==1.4.6
fi
if [ ! -f "$W/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=postie try CA" -keyout "$W/ca-key.pem" -out "$W/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$W/key.pem" -out "$W/leaf.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$W/ext.cnf"
  openssl x509 -req -in "$W/leaf.csr" -CA "$W/ca.pem" -CAkey "$W/ca-key.pem" -CAcreateserial \
    -days 30 -extfile "$W/ext.cnf" -out "$W/cert.pem" 2>/dev/null
fi

say "building postie (release)"
cargo build --release --quiet --bin postie
POSTIE=$PWD/target/release/postie

if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
  echo "port $PORT on 127.0.0.1 is already in use; set POSTIE_TRY_PORT to a free port" >&2
  exit 1
fi
rm -rf "$W/spool" "$W/home"
"$W/venv/bin/python" ci/peers/provider_smtpd.py --starttls-port "$PORT" --cert "$W/cert.pem" \
  --key "$W/key.pem" --user 'alice@example.test:abcdefghijklmnop' --spool "$W/spool" >"$W/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

# postie's files for this run only; the passphrase protects the encrypted secret store.
export HOME=$W/home XDG_CONFIG_HOME=$W/home/config XDG_DATA_HOME=$W/home/data
export POSTIE_PASSPHRASE=try-passphrase NO_COLOR=${NO_COLOR:-}

say "postie account add (the app password is stored encrypted, never in the config file)"
printf 'abcd efgh ijkl mnop' | "$POSTIE" account add local --provider generic --host 127.0.0.1 \
  --port "$PORT" --tls starttls --email alice@example.test --auth app-password \
  --ca-file "$W/ca.pem" --password-stdin
echo "--- $XDG_CONFIG_HOME/postie/config.toml"; cat "$XDG_CONFIG_HOME/postie/config.toml"

say "postie send -v (the SMTP conversation; AUTH is redacted)"
"$POSTIE" send -v --to bob@example.test --bcc carol@example.test \
  --subject 'Grüße from postie ✉' --text 'Hello! Sent by postie over STARTTLS with an app password.'

say "what the server stored (note: no Bcc header; carol is in the envelope only)"
cat "$W"/spool/0001.json; echo
sed -n '1,/^\r\{0,1\}$/p' "$W"/spool/0001.eml

say "and a wrong password: postie says what happened and what to do (exit code 77, EX_NOPERM)"
set +e
WRONG=nope "$POSTIE" send --password-env WRONG --to bob@example.test --text 'this one fails'
echo "exit code: $?"
set -e
say "done; the local server is stopped"
