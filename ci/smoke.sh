#!/usr/bin/env bash
# smoke.sh — one message through each peer with independent clients (run after mail-peers.sh start)
set -uo pipefail
W=${MAIL_PEERS_DIR:-${TMPDIR:-/tmp}/mail-peers}; set -a; . "$W/env"; set +a
pass=0; fail=0
ok() { if "$@" >/dev/null 2>&1; then pass=$((pass+1)); echo "ok   $T"; else fail=$((fail+1)); echo "FAIL $T"; fi; }
MSG=$(mktemp); printf 'From: alice@example.test\r\nTo: bob@example.test\r\nSubject: smoke\r\n\r\nhi\r\n' > "$MSG"
# OAuth: device flow against the Authlib AS (user approval simulated by POST /device)
DEV=$(curl -s -d client_id=test-client -d scope=mail "$OAUTH_AS/device_authorization")
DC=$(echo "$DEV" | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_code"])')
UC=$(echo "$DEV" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user_code"])')
curl -s -d user_code="$UC" "$OAUTH_AS/device" >/dev/null; sleep 1.1
TOK=$(curl -s -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d device_code="$DC" \
      -d client_id=test-client "$OAUTH_AS/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
T="device-flow token from Authlib AS"; ok test -n "$TOK"
T="oauth2-mock-server client_credentials"; ok curl -sf -d grant_type=client_credentials -d client_id=x "$OAUTH_MOCK/token"
C="--ssl-reqd --cacert $MAIL_PEERS_CA --mail-from alice@example.test --mail-rcpt bob@example.test --upload-file $MSG"
T="curl OAUTHBEARER -> aiosmtpd STARTTLS"; ok curl -sS --url smtp://127.0.0.1:$AIOSMTPD_STARTTLS $C --oauth2-bearer "$TOK" --user alice@example.test:
T="curl XOAUTH2 -> smtp-server STARTTLS"; ok curl -sS --url smtp://127.0.0.1:$SMTPSERVER_STARTTLS $C --oauth2-bearer "$TOK" --user alice@example.test:
T="curl PLAIN -> smtp-server SMTPS"; ok curl -sS --url smtps://127.0.0.1:$SMTPSERVER_SMTPS --cacert $MAIL_PEERS_CA --mail-from a@example.test --mail-rcpt bob@example.test --upload-file $MSG --user alice:secret
T="swaks LOGIN -> aiosmtpd SMTPS"; ok swaks -s 127.0.0.1 -p $AIOSMTPD_SMTPS --tlsc -a LOGIN -au alice -ap secret -f alice@example.test -t bob@example.test
T="msmtp xoauth2 -> aiosmtpd STARTTLS"; ok sh -c "printf 'Subject: m\n\nx\n' | msmtp -C /dev/null --host=127.0.0.1 --port=$AIOSMTPD_STARTTLS --tls=on --tls-trust-file=$MAIL_PEERS_CA --auth=xoauth2 --user=alice@example.test --passwordeval='echo $TOK' --from=alice@example.test bob@example.test"
T="smtplib plain (no TLS) -> aiosmtpd"; ok python3 -c "
import smtplib; s=smtplib.SMTP('127.0.0.1',$AIOSMTPD_PLAIN); s.login('alice','secret'); s.sendmail('a@example.test',['bob@example.test'],'Subject: s\r\n\r\nx'); s.quit()"
if [ -n "${POSTFIX_SUBMIT:-}" ] && [ -d "$W/postfix" ]; then
  T="swaks PLAIN -> postfix STARTTLS (cyrus)"; ok swaks -s 127.0.0.1 -p $POSTFIX_SUBMIT -tls -a PLAIN -au alice@provider.test -ap secret -f alice@example.test -t bob@example.test
  T="smtplib -> postfix SMTPS"; ok python3 -c "
import smtplib,ssl; c=ssl.create_default_context(cafile='$MAIL_PEERS_CA'); s=smtplib.SMTP_SSL('127.0.0.1',$POSTFIX_SMTPS,context=c); s.login('alice@provider.test','secret'); s.sendmail('a@example.test',['bob@example.test'],'Subject: s\r\n\r\nx'); s.quit()"
  T="curl OAUTHBEARER -> postfix+dovecot (introspection)"; ok curl -sS --url smtp://127.0.0.1:$POSTFIX_OAUTH $C --oauth2-bearer "$TOK" --user alice@example.test:
  T="msmtp xoauth2 bad token rejected by postfix+dovecot"; ok sh -c "! printf 'Subject: m\n\nx\n' | msmtp -C /dev/null --host=127.0.0.1 --port=$POSTFIX_OAUTH --tls=on --tls-trust-file=$MAIL_PEERS_CA --auth=xoauth2 --user=alice@example.test --passwordeval='echo nope' --from=alice@example.test bob@example.test"
  sleep 1; T="postfix maildir has 3 messages"; ok test "$(ls "$POSTFIX_MAILDIR" | wc -l)" -eq 3
fi
T="aiosmtpd spool has 4 messages"; ok test "$(ls "$AIOSMTPD_SPOOL"/*.eml | wc -l)" -eq 4
T="smtp-server spool has 2 messages"; ok test "$(ls "$SMTPSERVER_SPOOL"/*.eml | wc -l)" -eq 2
# the extra peers: Gmail-like replies, refused recipients, broken certificates, Postfix limits
py() { python3 -c "import os,smtplib,socket,ssl,base64; E=os.environ; C=ssl.create_default_context(cafile=E['MAIL_PEERS_CA'])
$1"; }
T="gmail-like: account password -> Gmail's exact 534 5.7.9"; ok py "
s=C.wrap_socket(socket.create_connection(('127.0.0.1',int(E['GMAILLIKE_SMTPS']))),server_hostname='localhost'); f=s.makefile('rb')
f.readline(); s.sendall(b'EHLO x\r\n'); [f.readline() for _ in range(7)]
s.sendall(b'AUTH PLAIN '+base64.b64encode(('\0%s\0%s'%(E['GMAILLIKE_USER'],E['GMAILLIKE_ACCOUNT_PASSWORD'])).encode())+b'\r\n')
r=f.readline()+f.readline()
assert r==b'534-5.7.9 Application-specific password required. For more information, go to\r\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h26sm30121397pfq.64 - gsmtp\r\n', r"
T="gmail-like: wrong password -> 535 5.7.8 BadCredentials"; ok py "
s=smtplib.SMTP('127.0.0.1',int(E['GMAILLIKE_STARTTLS'])); s.starttls(context=C)
try: s.login(E['GMAILLIKE_USER'],'wrong'); raise SystemExit(1)
except smtplib.SMTPAuthenticationError as e: assert e.smtp_code==535 and b'p=BadCredentials' in e.smtp_error"
T="gmail-like: app password with spaces -> 235 2.7.0 Accepted, delivered"; ok py "
s=smtplib.SMTP_SSL('127.0.0.1',int(E['GMAILLIKE_SMTPS']),context=C)
a=E['GMAILLIKE_APP_PASSWORD']; assert s.login(E['GMAILLIKE_USER'],' '.join(a[i:i+4] for i in range(0,16,4)))==(235,b'2.7.0 Accepted')
s.sendmail('a@example.test',['bob@example.test'],'Subject: gm\r\n\r\nx'); s.quit(); assert os.path.exists(E['GMAILLIKE_SPOOL']+'/0001.json')"
for peer in AIOSMTPD_STARTTLS:alice SMTPSERVER_STARTTLS:alice POSTFIX_SUBMIT:alice@provider.test; do
  T="${peer%%:*}: RCPT $REFUSED_RCPT refused with 550 5.1.1, others accepted"; ok py "
s=smtplib.SMTP('127.0.0.1',int(E['${peer%%:*}'])); s.starttls(context=C); s.login('${peer#*:}','secret')
r=s.sendmail('a@example.test',['bob@example.test',E['REFUSED_RCPT'],'carol@example.test'],'Subject: r\r\n\r\nx'); s.quit()
assert list(r)==[E['REFUSED_RCPT']] and r[E['REFUSED_RCPT']][0]==550 and r[E['REFUSED_RCPT']][1].startswith(b'5.1.1'), r"
done
T="expired certificate is refused by Python's ssl"; ok py "
try: C.wrap_socket(socket.create_connection(('127.0.0.1',int(E['TLS_EXPIRED_SMTPS']))),server_hostname='localhost'); raise SystemExit(1)
except ssl.SSLCertVerificationError as e: assert 'expired' in str(e)"
T="expiring certificate is accepted by Python's ssl and ends within 14 days"; ok py "
t=C.wrap_socket(socket.create_connection(('127.0.0.1',int(E['TLS_EXPIRING_SMTPS']))),server_hostname='localhost')
left=ssl.cert_time_to_seconds(t.getpeercert()['notAfter'])-__import__('time').time(); t.close(); assert 0<left<14*86400, left"
T="other-name certificate: refused for 127.0.0.1, accepted for \$TLS_OTHERNAME"; ok py "
p=int(E['TLS_OTHERNAME_SMTPS'])
try: C.wrap_socket(socket.create_connection(('127.0.0.1',p)),server_hostname='127.0.0.1'); raise SystemExit(1)
except ssl.SSLCertVerificationError: pass
C.wrap_socket(socket.create_connection(('127.0.0.1',p)),server_hostname=E['TLS_OTHERNAME']).close()"
if [ -n "${POSTFIX_SUBMIT:-}" ]; then
  T="postfix EHLO: PIPELINING, CHUNKING, SIZE \$POSTFIX_SIZE_LIMIT"; ok py "
s=smtplib.SMTP('127.0.0.1',int(E['POSTFIX_SUBMIT'])); s.starttls(context=C); s.ehlo()
assert s.has_extn('pipelining') and s.has_extn('chunking') and s.esmtp_features['size']==E['POSTFIX_SIZE_LIMIT']"
  T="postfix small port: SIZE \$POSTFIX_SMALL_LIMIT, a larger message refused with 552"; ok py "
s=smtplib.SMTP('127.0.0.1',int(E['POSTFIX_SMALL'])); s.starttls(context=C); s.login('alice@provider.test','secret')
assert s.esmtp_features['size']==E['POSTFIX_SMALL_LIMIT']
try: s.sendmail('a@example.test',['bob@example.test'],'Subject: big\r\n\r\n'+('x'*998+'\r\n')*1100); raise SystemExit(1)
except smtplib.SMTPSenderRefused as e: assert e.smtp_code==552"
  T="postfix PIPELINING-only port: PIPELINING, no CHUNKING"; ok py "
s=smtplib.SMTP('127.0.0.1',int(E['POSTFIX_PIPELINING'])); s.starttls(context=C); s.ehlo()
assert s.has_extn('pipelining') and not s.has_extn('chunking')"
  T="postfix idle port: 421 once the client is silent for 2 s"; ok py "
import time
s=smtplib.SMTP('127.0.0.1',int(E['POSTFIX_IDLE'])); s.starttls(context=C); s.ehlo(); time.sleep(3)
try: code=s.noop()[0]
except smtplib.SMTPServerDisconnected: code=421
assert code==421, code"
fi
rm -f "$MSG"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
