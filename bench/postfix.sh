#!/usr/bin/env bash
# bench/postfix.sh start|stop DIR — the benchmark's own Postfix instance on 127.0.0.1, with its
# config, queue and logs under DIR (no system service, nothing shared with the test suite's peers
# of ci/mail-peers.sh, whose 12xxx-18xxx ports it leaves alone). The same approach as
# ci/peers/postfix-dovecot.sh, reduced to what the benchmark needs:
#
#   19025  plain SMTP, PIPELINING + CHUNKING, no AUTH (loopback is in mynetworks)
#   19026  plain SMTP, PIPELINING only (smtpd_discard_ehlo_keywords = chunking)
#   19027  plain SMTP, every message put on hold after it is queued: acceptance only, for the
#          relay comparison (smtp-source load)
#   19587  STARTTLS required + AUTH PLAIN/LOGIN (Cyrus sasldb), alice@provider.test / secret
#   19465  implicit TLS + AUTH, same login
#
# Mail for example.test is accepted (cleanup fsyncs the queue file before the 250, as always)
# and then discarded by the `discard` transport, so the queue stays small during long runs.
# Every port takes messages up to 100 MiB. Certificates: DIR/tls/ca.pem signs a leaf for
# localhost / 127.0.0.1.
set -euo pipefail
CMD=${1:?usage: postfix.sh start|stop DIR}
DIR=${2:?usage: postfix.sh start|stop DIR}
CONF=$DIR/postfix/etc
BASE=$DIR/postfix

certs() {
  local d=$DIR/tls ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  mkdir -p "$d"
  openssl req -x509 "${ec[@]}" -days 30 -subj "/CN=postie bench CA" -keyout "$d/ca-key.pem" \
    -out "$d/ca.pem" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req "${ec[@]}" -subj "/CN=localhost" -keyout "$d/key.pem" -out "$d/leaf.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/leaf.ext"
  openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial \
    -days 30 -extfile "$d/leaf.ext" -out "$d/cert.pem" 2>/dev/null
}

start() {
  stop
  rm -rf "$BASE" "$DIR/tls"
  mkdir -p "$CONF/sasl" "$BASE/spool" "$BASE/data"
  chmod 755 "$DIR"
  certs
  install -m 644 "$DIR/tls/cert.pem" "$CONF/cert.pem"
  install -m 600 "$DIR/tls/key.pem" "$CONF/key.pem"
  cat >"$CONF/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $BASE/spool
data_directory = $BASE/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.test
myorigin = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.1/32
relay_domains = example.test
transport_maps = static:discard:

alias_maps =
alias_database =
smtpd_tls_cert_file = $CONF/cert.pem
smtpd_tls_key_file = $CONF/key.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_security_options = noanonymous
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
message_size_limit = 104857600
maillog_file = $BASE/maillog
bench_hold = check_client_access static:HOLD
CF
  cat >"$CONF/master.cf" <<CF
127.0.0.1:19025 inet n - n - - smtpd
127.0.0.1:19026 inet n - n - - smtpd
  -o smtpd_discard_ehlo_keywords=chunking
127.0.0.1:19027 inet n - n - - smtpd
  -o smtpd_data_restrictions=\$bench_hold
127.0.0.1:19587 inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
127.0.0.1:19465 inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CF
  cat >"$CONF/sasl/smtpd.conf" <<CF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $CONF/sasl/sasldb2
mech_list: PLAIN LOGIN
CF
  echo secret | saslpasswd2 -p -c -f "$CONF/sasl/sasldb2" -u provider.test alice
  chown root:postfix "$CONF/sasl/sasldb2"; chmod 640 "$CONF/sasl/sasldb2"
  chown -R postfix "$BASE/data"
  # postfix reports errors on stderr only when it is a terminal: script(1) gives it one
  script -qec "postfix -c $CONF check && postfix -c $CONF start" /dev/null >"$DIR/postfix-start.log" 2>&1 \
    || { cat "$DIR/postfix-start.log" >&2; exit 1; }
  local p i
  for p in 19025 19026 19027 19587 19465; do
    for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
    ((i < 100)) || { echo "postfix port $p did not open (log: $BASE/maillog)" >&2; exit 1; }
  done
}

stop() {
  [ -f "$CONF/main.cf" ] || return 0
  local pid i
  pid=$(tr -d ' ' <"$BASE/spool/pid/master.pid" 2>/dev/null || true)
  postfix -c "$CONF" stop >/dev/null 2>&1 || true
  if [ -n "$pid" ]; then
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

# the messages the relay-comparison port put on hold
purge() { postsuper -c "$CONF" -d ALL hold >/dev/null 2>&1 || true; }

case $CMD in
  start) start ;; stop) stop ;; purge) purge ;;
  *) echo "usage: postfix.sh start|stop|purge DIR" >&2; exit 2 ;;
esac
