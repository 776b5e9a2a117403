#!/bin/bash
# Loopback-only Postfix "provider" with two SASL back ends:
#   127.0.0.1:$PF_SUBMIT (STARTTLS required) and :$PF_SMTPS (implicit TLS): Cyrus sasldb, PLAIN/LOGIN
#   127.0.0.1:$PF_OAUTH  (STARTTLS required): Dovecot SASL -> PLAIN LOGIN XOAUTH2 OAUTHBEARER,
#       bearer tokens checked by RFC 7662 introspection at $INTROSPECT_URL
#   127.0.0.1:$PF_SMALL  (STARTTLS required): like $PF_SUBMIT with SIZE $PF_SMALL_LIMIT, cheap to exceed
#   127.0.0.1:$PF_BIG    (STARTTLS required): like $PF_SUBMIT with SIZE $PF_BIG_LIMIT (the benchmark's 42 MB messages)
# All mail for example.test lands in $BASE/mail/catchall/new/ (Maildir); nothing is ever relayed out.
# Every port advertises PIPELINING, CHUNKING and SIZE ($PF_SIZE_LIMIT unless said otherwise). RCPT TO:<$REFUSE_RCPT>
# is refused with 550 5.1.1. Bcc headers are kept (message_drop_headers), so tests see what the client sent.
set -euo pipefail
BASE=${BASE:?}; CERT=${CERT:?}; KEY=${KEY:?}
PF_SUBMIT=${PF_SUBMIT:-14587}; PF_SMTPS=${PF_SMTPS:-14465}; PF_OAUTH=${PF_OAUTH:-14588}
PF_SMALL=${PF_SMALL:-14589}; PF_SMALL_LIMIT=${PF_SMALL_LIMIT:-1048576}; PF_SIZE_LIMIT=${PF_SIZE_LIMIT:-20971520}
PF_BIG=${PF_BIG:-14590}; PF_BIG_LIMIT=${PF_BIG_LIMIT:-104857600}
PF_PIPELINING=${PF_PIPELINING:-14591}; PF_IDLE=${PF_IDLE:-14592}; DC_IMAP=${DC_IMAP:-14143}
REFUSE_RCPT=${REFUSE_RCPT:-refused@example.test}
INTROSPECT_URL=${INTROSPECT_URL:-http://127.0.0.1:18190/introspect}
CONF=$BASE/etc; DC=$BASE/dovecot
mkdir -p $CONF/sasl $BASE/spool $BASE/data $BASE/mail $DC/run $DC/state
install -m 644 $CERT $CONF/cert.pem; install -m 600 $KEY $CONF/key.pem
cat > $CONF/main.cf <<CF
compatibility_level = 3.6
queue_directory = $BASE/spool
data_directory = $BASE/data
mail_owner = postfix
setgid_group = postdrop
myhostname = provider.test
myorigin = provider.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.1/32
relay_domains =
default_transport = error:outbound delivery disabled in tests
relay_transport = error:outbound delivery disabled in tests
virtual_mailbox_domains = example.test
virtual_mailbox_base = $BASE/mail
virtual_mailbox_maps = static:catchall/
virtual_uid_maps = static:$(id -u postfix)
virtual_gid_maps = static:$(id -g postfix)
alias_maps =
alias_database =
smtpd_tls_cert_file = $CONF/cert.pem
smtpd_tls_key_file = $CONF/key.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
# Debian's Postfix reads Cyrus config from \$config_directory/sasl/smtpd.conf
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_auth_enable = yes
smtpd_sasl_security_options = noanonymous
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access inline:{ { $REFUSE_RCPT = 550 5.1.1 no such user here } },
  permit_sasl_authenticated, reject
# the largest any port takes (cleanup enforces this one); each smtpd below has its own SIZE
message_size_limit = $PF_BIG_LIMIT
virtual_mailbox_limit = 0
# default is "bcc, content-length, resent-bcc, return-path": keep Bcc so a leaking client is caught
message_drop_headers = content-length, return-path
maillog_file_prefixes = /var, /dev/stdout, $BASE
maillog_file = $BASE/maillog
smtputf8_enable = yes
CF
cat > $CONF/master.cf <<CF
127.0.0.1:$PF_SUBMIT inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o message_size_limit=$PF_SIZE_LIMIT
127.0.0.1:$PF_SMTPS inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o message_size_limit=$PF_SIZE_LIMIT
127.0.0.1:$PF_SMALL inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o message_size_limit=$PF_SMALL_LIMIT
127.0.0.1:$PF_BIG inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o message_size_limit=$PF_BIG_LIMIT
127.0.0.1:$PF_PIPELINING inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o message_size_limit=$PF_SIZE_LIMIT
  -o smtpd_discard_ehlo_keywords=chunking
127.0.0.1:$PF_IDLE inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o message_size_limit=$PF_SIZE_LIMIT
  -o smtpd_timeout=2s
127.0.0.1:$PF_OAUTH inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o message_size_limit=$PF_SIZE_LIMIT
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=private/dovecot-auth
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
smtp      unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CF
cat > $CONF/sasl/smtpd.conf <<CF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $CONF/sasl/sasldb2
mech_list: PLAIN LOGIN
CF
echo secret | saslpasswd2 -p -c -f $CONF/sasl/sasldb2 -u provider.test alice   # login: alice@provider.test
chown root:postfix $CONF/sasl/sasldb2; chmod 640 $CONF/sasl/sasldb2
chown -R postfix $BASE/mail $BASE/data
# postfix logs errors only to syslog/maillog unless stderr is a tty: show them via script(1)
script -qec "postfix -c $CONF check && postfix -c $CONF start" /dev/null
cat > $DC/dovecot.conf <<CF
base_dir = $DC/run
state_dir = $DC/state
instance_name = dovecot-test
# IMAP for clients that log in with the same tokens (XOAUTH2 / OAUTHBEARER, checked by
# introspection like Postfix's); plain text on loopback
protocols = imap
listen = 127.0.0.1
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DC_IMAP
  }
  inet_listener imaps {
    port = 0
  }
}
mail_location = maildir:$DC/mail/%n
log_path = $DC/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_verbose = yes
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $DC/oauth2.conf.ext
}
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u $DC/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DC
}
service auth {
  unix_listener $BASE/spool/private/dovecot-auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
CF
cat > $DC/oauth2.conf.ext <<CF
introspection_mode = post
introspection_url = $INTROSPECT_URL
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
CF
echo 'alice@provider.test:{PLAIN}secret' > $DC/users
mkdir -p $DC/mail; chown nobody:nogroup $DC/mail   # the users' mailboxes (userdb: nobody)
dovecot -c $DC/dovecot.conf
