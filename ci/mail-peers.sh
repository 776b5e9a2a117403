#!/usr/bin/env bash
# mail-peers.sh install|start|stop|all — loopback-only SMTP + OAuth test peers for CI.
# Every listener binds 127.0.0.1. Ports, credentials and paths are written to $W/env for tests.
#   MAIL_PEERS_DIR    run-time state: certificates, spools, logs, pids, env (default $TMPDIR/mail-peers)
#   MAIL_PEERS_TOOLS  the Python venv and node_modules installed by `install` (default $MAIL_PEERS_DIR)
# `install` is idempotent and skips apt, pip and npm when what they would install is already there.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); PEERS=$HERE/peers
W=${MAIL_PEERS_DIR:-${TMPDIR:-/tmp}/mail-peers}
T=${MAIL_PEERS_TOOLS:-$W}
export DEBIAN_FRONTEND=noninteractive
APT_PKGS="swaks msmtp mutt neomutt s-nail mailutils git-email libmailtools-perl
  libio-socket-ssl-perl libauthen-sasl-perl postfix sasl2-bin libsasl2-modules dovecot-core openssl
  dbus gnome-keyring libsecret-tools chromium systemd strace postgresql dovecot-imapd"
PIP_PKGS="aiosmtpd==1.4.6 authlib==1.9.10 flask==3.1.3"
NPM_PKGS="smtp-server@3.21.6 oauth2-mock-server@8.2.3"

# Fixed loopback ports (the env file is the only place tests read them from).
OAUTH_AS_PORT=18190 OAUTH_MOCK_PORT=18180
AIO_STARTTLS=12587 AIO_SMTPS=12465 AIO_PLAIN=12525
NODE_STARTTLS=13587 NODE_SMTPS=13465
PF_SUBMIT=14587 PF_SMTPS=14465 PF_OAUTH=14588 PF_SMALL=14589 PF_BIG=14590 PF_PIPELINING=14591 PF_IDLE=14592
DC_IMAP=14143
PF_SIZE_LIMIT=20971520 PF_SMALL_LIMIT=1048576 PF_BIG_LIMIT=104857600
GMAIL_STARTTLS=15587 GMAIL_SMTPS=15465
EXPIRED_STARTTLS=16587 EXPIRED_SMTPS=16465 OTHERNAME_STARTTLS=16588 OTHERNAME_SMTPS=16466
EXPIRING_SMTPS=16467
FLAKY_STARTTLS=17587 FLAKY_PLAIN=17525
PG_PORT=15432 PG_USER=postie PG_PASSWORD=pg-outbox-Kx7-test PG_DB=postie
OTHER_NAME=other.test
REFUSED=refused@example.test
GMAIL_USER=postie.user@gmail.test GMAIL_ACCOUNT_PW=correct-horse-battery GMAIL_APP_PW=abcdefghijklmnop
# a second login on aiosmtpd and smtp-server whose password is distinctive enough to grep for leaks
SECRET_USER=dave SECRET_PW=Tr0ub4dor-xyzzy-9Qw7

apt_missing() {
  local p missing=""
  for p in $APT_PKGS; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
  done
  echo "$missing"
}
pip_ok() {
  [ -x "$T/venv/bin/python" ] && "$T/venv/bin/python" - $PIP_PKGS <<'PY' 2>/dev/null
import sys, importlib.metadata as m
sys.exit(any(m.version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
}
npm_ok() {
  command -v node >/dev/null && node - "$T/node/node_modules" $NPM_PKGS <<'JS' 2>/dev/null
const [dir, ...pkgs] = process.argv.slice(2);
for (const p of pkgs) {
  const i = p.lastIndexOf('@');
  if (require(dir + '/' + p.slice(0, i) + '/package.json').version !== p.slice(i + 1)) process.exit(1);
}
JS
}

install() {
  mkdir -p "$T/node"
  local missing apt="" pip="" npm="" venv_after_apt=0
  missing=$(apt_missing)
  # Debian's python3 needs python3-venv for `python3 -m venv`
  if ! pip_ok && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing="$missing python3-venv"; venv_after_apt=1
  fi
  if [ -n "${missing// /}" ]; then
    [ "$(id -u)" = 0 ] || { echo "mail-peers: missing apt packages:$missing (run as root)" >&2; exit 1; }
    echo 'man-db man-db/auto-update boolean false' | debconf-set-selections   # skip slow man-db trigger
    # keep package postinsts from starting the system-wide postfix/dovecot (image already ships one)
    [ -e /usr/sbin/policy-rc.d ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    ( apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing ) >"$T/apt.log" 2>&1 &
    apt=$!
  fi
  pip_job() {
    ( rm -rf "$T/venv" && python3 -m venv "$T/venv" &&
      "$T/venv/bin/pip" install -q --disable-pip-version-check $PIP_PKGS ) >"$T/pip.log" 2>&1
  }
  if ! pip_ok && [ "$venv_after_apt" = 0 ]; then pip_job & pip=$!; fi
  if ! npm_ok; then
    ( cd "$T/node" && { [ -f package.json ] || echo '{"private":true}' > package.json; } &&
      npm install --no-audit --no-fund --loglevel=error $NPM_PKGS ) >"$T/npm.log" 2>&1 &
    npm=$!
  fi
  if [ -n "$apt" ]; then wait "$apt" || { tail -20 "$T/apt.log"; exit 1; }; fi
  if [ "$venv_after_apt" = 1 ]; then pip_job & pip=$!; fi
  if [ -n "$pip" ]; then wait "$pip" || { tail -20 "$T/pip.log"; exit 1; }; fi
  if [ -n "$npm" ]; then wait "$npm" || { tail -20 "$T/npm.log"; exit 1; }; fi
  echo "mail peers installed (tools in $T)"
}

wait_port() { # port [seconds]
  local i; for ((i = 0; i < ${2:-20} * 10; i++)); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 did not open; logs in $W/run" >&2; return 1
}
port_busy() { (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; }
bg() { local n=$1; shift; "$@" >"$W/run/$n.log" 2>&1 & echo $! >"$W/run/$n.pid"; }

# A private CA and leaf certificates signed by it (rustls refuses a CA certificate as a server's
# own): cert.pem for localhost/127.0.0.1/::1, expired.pem (valid 2020 only), other.pem (other.test),
# expiring.pem (valid for 7 days from now: the doctor warns under 14).
# A private PostgreSQL cluster (Debian's server binaries, initdb + pg_ctl, no system service) on
# loopback, for the shared outbox. As root, it runs as the postgres user the package created.
start_postgres() {
  local bin d=$W/pg run=()
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$bin/initdb" ] || { echo "mail-peers: PostgreSQL's server is not installed (apt postgresql)" >&2; exit 1; }
  rm -rf "$d"; mkdir -p "$d"
  printf '%s\n' "$PG_PASSWORD" > "$d/pwfile"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$d"; run=(runuser -u postgres --); fi
  "${run[@]}" "$bin/initdb" -D "$d/data" -U "$PG_USER" --auth=scram-sha-256 --pwfile="$d/pwfile" \
     -E UTF8 --locale=C.UTF-8 >"$W/run/postgres-initdb.log" 2>&1 || { cat "$W/run/postgres-initdb.log"; exit 1; }
  rm -f "$d/pwfile"
  # TLS with the peers' certificate (127.0.0.1, localhost), as a server on a network would have
  cp "$W/tls/cert.pem" "$d/server.crt"; cp "$W/tls/key.pem" "$d/server.key"; chmod 600 "$d/server.key"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$d/server.crt" "$d/server.key"; fi
  "${run[@]}" "$bin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 \
     -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $d -c max_connections=200 -c ssl=on -c ssl_cert_file=$d/server.crt -c ssl_key_file=$d/server.key" \
     start >/dev/null || { cat "$d/server.log"; exit 1; }
  PGPASSWORD=$PG_PASSWORD "$bin/psql" -qAt -h 127.0.0.1 -p $PG_PORT -U "$PG_USER" -d postgres \
     -c "CREATE DATABASE $PG_DB" >/dev/null
}
stop_postgres() {
  local bin run=()
  [ -f "$W/pg/data/postmaster.pid" ] || return 0
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
  "${run[@]}" "$bin/pg_ctl" -D "$W/pg/data" -m fast -w stop >/dev/null 2>&1 || true
}

make_certs() {
  local d=$W/tls; rm -rf "$d"; mkdir -p "$d/db"; : > "$d/db/index.txt"
  local ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  openssl req -x509 $ec -days 3650 -subj "/CN=postie test CA" -keyout "$d/ca-key.pem" -out "$d/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  cat > "$d/ca.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $d/db/index.txt
new_certs_dir = $d/db
certificate = $d/ca.pem
private_key = $d/ca-key.pem
rand_serial = yes
default_md = sha256
policy = any
unique_subject = no
email_in_dn = no
[any]
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = \$ENV::SAN
CNF
  leaf() { # name cn san ca-args...
    local n=$1 cn=$2 san=$3; shift 3
    openssl req $ec -subj "/CN=$cn" -keyout "$d/$n-key.pem" -out "$d/$n.csr" 2>/dev/null
    SAN=$san openssl ca -batch -notext -config "$d/ca.cnf" -extensions leaf -in "$d/$n.csr" \
      -out "$d/$n.pem" "$@" 2>"$d/$n.log" || { cat "$d/$n.log" >&2; return 1; }
  }
  leaf cert localhost "DNS:localhost,IP:127.0.0.1,IP:::1" -days 3650
  leaf expired localhost "DNS:localhost,IP:127.0.0.1,IP:::1" -startdate 20200101000000Z -enddate 20210101000000Z
  leaf other "$OTHER_NAME" "DNS:$OTHER_NAME" -days 3650
  leaf expiring localhost "DNS:localhost,IP:127.0.0.1,IP:::1" -days 7
  mv "$d/cert-key.pem" "$d/key.pem"
}

start() {
  stop >/dev/null 2>&1 || true          # leftovers of an interrupted run in the same directory
  mkdir -p "$W"; chmod 755 "$W"         # the postfix user must reach its queue and mail dirs
  # flaky.control.json*: no fault (nor stale counters) of a previous run carries over
  cd "$W"; rm -rf spool postfix run env flaky.control.json flaky.control.json.stats
  mkdir -p run spool; : > tokens.txt
  local p busy=""
  for p in $OAUTH_AS_PORT $OAUTH_MOCK_PORT $AIO_STARTTLS $AIO_SMTPS $AIO_PLAIN $NODE_STARTTLS $NODE_SMTPS \
           $PF_SUBMIT $PF_SMTPS $PF_OAUTH $PF_SMALL $PF_BIG $PF_PIPELINING $PF_IDLE $DC_IMAP $GMAIL_STARTTLS $GMAIL_SMTPS \
           $EXPIRED_STARTTLS $EXPIRED_SMTPS $OTHERNAME_STARTTLS $OTHERNAME_SMTPS $EXPIRING_SMTPS $FLAKY_STARTTLS \
           $FLAKY_PLAIN $PG_PORT; do
    port_busy "$p" && busy="$busy $p"
  done
  [ -z "$busy" ] || { echo "mail-peers: ports already in use:$busy (peers of another MAIL_PEERS_DIR still running?)" >&2; exit 1; }
  make_certs
  start_postgres
  local py=$T/venv/bin/python smtpd=$PEERS/provider_smtpd.py
  export NODE_PATH=$T/node/node_modules
  bg oauth-as "$py" "$PEERS/oauth_as.py" --port $OAUTH_AS_PORT --client test-client \
     --client conf-client:s3cret --token-file "$W/tokens.txt" --expires-in 3600
  bg oauth-mock node "$T/node/node_modules/oauth2-mock-server/dist/oauth2-mock-server.mjs" -a 127.0.0.1 -p $OAUTH_MOCK_PORT
  bg aiosmtpd "$py" "$smtpd" --starttls-port $AIO_STARTTLS --smtps-port $AIO_SMTPS \
     --plain-port $AIO_PLAIN --cert tls/cert.pem --key tls/key.pem --user alice:secret --user $SECRET_USER:$SECRET_PW \
     --token-file "$W/tokens.txt" --spool spool/aiosmtpd --refuse-rcpt $REFUSED
  bg gmaillike "$py" "$smtpd" --starttls-port $GMAIL_STARTTLS --smtps-port $GMAIL_SMTPS \
     --cert tls/cert.pem --key tls/key.pem --token-file "$W/tokens.txt" --spool spool/gmaillike \
     --gmail-account "$GMAIL_USER:$GMAIL_ACCOUNT_PW:$GMAIL_APP_PW" --refuse-rcpt $REFUSED
  bg tls-expired "$py" "$smtpd" --starttls-port $EXPIRED_STARTTLS --smtps-port $EXPIRED_SMTPS \
     --cert tls/expired.pem --key tls/expired-key.pem --user alice:secret --spool spool/tls-expired
  bg tls-othername "$py" "$smtpd" --starttls-port $OTHERNAME_STARTTLS --smtps-port $OTHERNAME_SMTPS \
     --cert tls/other.pem --key tls/other-key.pem --user alice:secret --spool spool/tls-othername
  bg tls-expiring "$py" "$smtpd" --smtps-port $EXPIRING_SMTPS \
     --cert tls/expiring.pem --key tls/expiring-key.pem --user alice:secret --spool spool/tls-expiring
  # faults injected at run time through the control file (see provider_smtpd.py --control-file)
  bg flaky "$py" "$smtpd" --starttls-port $FLAKY_STARTTLS --plain-port $FLAKY_PLAIN \
     --cert tls/cert.pem --key tls/key.pem --user alice:secret --token-file "$W/tokens.txt" \
     --spool spool/flaky --control-file "$W/flaky.control.json"
  STARTTLS_PORT=$NODE_STARTTLS SMTPS_PORT=$NODE_SMTPS CERT=$W/tls/cert.pem KEY=$W/tls/key.pem USERS=alice:secret,$SECRET_USER:$SECRET_PW \
     TOKEN_FILE=$W/tokens.txt SPOOL=$W/spool/smtp-server REFUSE_RCPT=$REFUSED bg smtp-server node "$PEERS/provider.js"
  if [ "${WITH_POSTFIX:-1}" = 1 ]; then
    BASE=$W/postfix CERT=$W/tls/cert.pem KEY=$W/tls/key.pem INTROSPECT_URL=http://127.0.0.1:$OAUTH_AS_PORT/introspect \
    PF_SUBMIT=$PF_SUBMIT PF_SMTPS=$PF_SMTPS PF_OAUTH=$PF_OAUTH PF_SMALL=$PF_SMALL PF_SMALL_LIMIT=$PF_SMALL_LIMIT \
    PF_BIG=$PF_BIG PF_BIG_LIMIT=$PF_BIG_LIMIT PF_PIPELINING=$PF_PIPELINING PF_IDLE=$PF_IDLE DC_IMAP=$DC_IMAP \
    PF_SIZE_LIMIT=$PF_SIZE_LIMIT REFUSE_RCPT=$REFUSED \
      "$PEERS/postfix-dovecot.sh" >"$W/run/postfix-setup.log" 2>&1 || { cat "$W/run/postfix-setup.log"; exit 1; }
  fi
  for p in $OAUTH_AS_PORT $OAUTH_MOCK_PORT $AIO_STARTTLS $AIO_SMTPS $AIO_PLAIN $NODE_STARTTLS $NODE_SMTPS \
           $GMAIL_STARTTLS $GMAIL_SMTPS $EXPIRED_STARTTLS $EXPIRED_SMTPS $OTHERNAME_STARTTLS $OTHERNAME_SMTPS \
           $EXPIRING_SMTPS $FLAKY_STARTTLS $FLAKY_PLAIN; do
    wait_port "$p"; done
  if [ "${WITH_POSTFIX:-1}" = 1 ]; then for p in $PF_SUBMIT $PF_SMTPS $PF_OAUTH $PF_SMALL $PF_BIG $PF_PIPELINING $PF_IDLE $DC_IMAP; do wait_port "$p"; done; fi
  # one KEY=value per line, no quoting: values never contain spaces
  cat > "$W/env.tmp" <<ENV
MAIL_PEERS_DIR=$W
MAIL_PEERS_CA=$W/tls/ca.pem
OAUTH_AS=http://127.0.0.1:$OAUTH_AS_PORT
OAUTH_MOCK=http://127.0.0.1:$OAUTH_MOCK_PORT
REFUSED_RCPT=$REFUSED
AIOSMTPD_STARTTLS=$AIO_STARTTLS
AIOSMTPD_SMTPS=$AIO_SMTPS
AIOSMTPD_PLAIN=$AIO_PLAIN
AIOSMTPD_SPOOL=$W/spool/aiosmtpd
AIOSMTPD_USER=alice
AIOSMTPD_PASSWORD=secret
SMTPSERVER_STARTTLS=$NODE_STARTTLS
SMTPSERVER_SMTPS=$NODE_SMTPS
SMTPSERVER_SPOOL=$W/spool/smtp-server
SMTPSERVER_USER=alice
SMTPSERVER_PASSWORD=secret
SECRET_USER=$SECRET_USER
SECRET_PASSWORD=$SECRET_PW
GMAILLIKE_STARTTLS=$GMAIL_STARTTLS
GMAILLIKE_SMTPS=$GMAIL_SMTPS
GMAILLIKE_SPOOL=$W/spool/gmaillike
GMAILLIKE_USER=$GMAIL_USER
GMAILLIKE_ACCOUNT_PASSWORD=$GMAIL_ACCOUNT_PW
GMAILLIKE_APP_PASSWORD=$GMAIL_APP_PW
TLS_EXPIRED_STARTTLS=$EXPIRED_STARTTLS
TLS_EXPIRED_SMTPS=$EXPIRED_SMTPS
TLS_EXPIRED_SPOOL=$W/spool/tls-expired
TLS_OTHERNAME=$OTHER_NAME
TLS_OTHERNAME_STARTTLS=$OTHERNAME_STARTTLS
TLS_OTHERNAME_SMTPS=$OTHERNAME_SMTPS
TLS_OTHERNAME_SPOOL=$W/spool/tls-othername
TLS_EXPIRING_SMTPS=$EXPIRING_SMTPS
TLS_EXPIRING_SPOOL=$W/spool/tls-expiring
TLS_PEERS_USER=alice
TLS_PEERS_PASSWORD=secret
FLAKY_STARTTLS=$FLAKY_STARTTLS
FLAKY_PLAIN=$FLAKY_PLAIN
FLAKY_SPOOL=$W/spool/flaky
FLAKY_CONTROL=$W/flaky.control.json
FLAKY_STATS=$W/flaky.control.json.stats
FLAKY_USER=alice
FLAKY_PASSWORD=secret
POSTGRES_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
POSTGRES_USER=$PG_USER
POSTGRES_PASSWORD=$PG_PASSWORD
POSTGRES_PORT=$PG_PORT
ENV
  if [ "${WITH_POSTFIX:-1}" = 1 ]; then cat >> "$W/env.tmp" <<ENV
POSTFIX_SUBMIT=$PF_SUBMIT
POSTFIX_SMTPS=$PF_SMTPS
POSTFIX_OAUTH=$PF_OAUTH
POSTFIX_PIPELINING=$PF_PIPELINING
POSTFIX_IDLE=$PF_IDLE
DOVECOT_IMAP=$DC_IMAP
POSTFIX_SMALL=$PF_SMALL
POSTFIX_SMALL_LIMIT=$PF_SMALL_LIMIT
POSTFIX_BIG=$PF_BIG
POSTFIX_BIG_LIMIT=$PF_BIG_LIMIT
POSTFIX_SIZE_LIMIT=$PF_SIZE_LIMIT
POSTFIX_MAILDIR=$W/postfix/mail/catchall/new
POSTFIX_USER=alice@provider.test
POSTFIX_PASSWORD=secret
ENV
  fi
  mv "$W/env.tmp" "$W/env"
  echo "mail peers up; source $W/env"
}

gone() { ! kill -0 "$1" 2>/dev/null; }
wait_gone() { local i; for ((i = 0; i < 50; i++)); do gone "$1" && return 0; sleep 0.1; done; kill -9 "$1" 2>/dev/null || true; }

stop() {
  rm -f "$W/env"
  stop_postgres
  local f pid pids=""
  for f in "$W"/run/*.pid; do
    [ -f "$f" ] || continue; pid=$(cat "$f"); rm -f "$f"
    kill "$pid" 2>/dev/null && pids="$pids $pid"
  done
  if [ -d "$W/postfix/etc" ]; then
    pid=$(tr -d ' ' < "$W/postfix/spool/pid/master.pid" 2>/dev/null || true)
    postfix -c "$W/postfix/etc" stop >/dev/null 2>&1 || true
    [ -n "$pid" ] && pids="$pids $pid"
    if [ -f "$W/postfix/dovecot/run/master.pid" ]; then
      pid=$(cat "$W/postfix/dovecot/run/master.pid"); kill "$pid" 2>/dev/null && pids="$pids $pid"
    fi
  fi
  for pid in $pids; do wait_gone "$pid"; done
  return 0
}

case "${1:-all}" in
  install) install ;; start) start ;; stop) stop ;;
  all) install; start ;;
  *) echo "usage: $0 install|start|stop|all" >&2; exit 2 ;;
esac
