#!/usr/bin/env python3
"""Test "provider" SMTP server on loopback, built on aiosmtpd.

Listens (all optional):
  --starttls-port  STARTTLS required before AUTH/MAIL (submission style, 587)
  --smtps-port     implicit TLS (465 style)
  --plain-port     no TLS at all; AUTH allowed in clear (for relay-client tests)
AUTH: PLAIN, LOGIN (user:pass from --user), XOAUTH2 and OAUTHBEARER
(bearer tokens from --token or lines of --token-file, re-read on every AUTH).
Every accepted message is written to --spool as NNNN.eml + NNNN.json (envelope);
the .json is written first and both appear atomically (rename), so a reader that finds a
message in NNNN.eml can read NNNN.json at once. Numbering goes on from the highest NNNN already
in the spool, so a restarted server never overwrites its predecessor's messages.

Extras for client tests:
  --refuse-rcpt ADDR   answer RCPT TO:<ADDR> with `550 5.1.1 <ADDR>: Recipient address rejected`
  --gmail-account USER:ACCOUNT_PASSWORD:APP_PASSWORD
                       behave like smtp.gmail.com: its greeting, EHLO lines (PIPELINING,
                       ENHANCEDSTATUSCODES, SIZE 35882577), replies and AUTH failures. AUTH PLAIN/LOGIN
                       with the account password gets Gmail's `534 5.7.9 Application-specific
                       password required`, a wrong password `535 5.7.8 ... BadCredentials`, the app
                       password (16 letters, spaces ignored as Google does) `235 2.7.0 Accepted`.
  --control-file PATH  fault injection, driven at run time by a JSON file that the tests write
                       (atomically: write a temporary file and rename it over PATH). The file is
                       re-read at every new connection and at every end of DATA; a missing file
                       means no faults. Keys (all optional):
                         "down": true        every new connection gets the greeting
                                             `421 4.3.2 Service not available, closing transmission
                                             channel` and is closed; a connection opened before
                                             gets the same 421 at its next end of DATA (nothing
                                             stored), so a client's pooled connection cannot
                                             outlive the outage
                         "fail_rate": 0.3    probability that an end of DATA fails; the message is
                                             then NOT stored
                         "modes": [...]      how it fails, one picked at random among
                                             "451" (`451 4.3.0 Temporary failure, try again later`,
                                             the session goes on), "421" (`421 4.4.2 Closing
                                             connection`, then the connection is closed) and
                                             "drop" (the TCP connection is closed without any
                                             reply); default: all three
                         "seed": 7           seed of the random draws (random.Random(seed) is
                                             created anew whenever the file's content changes,
                                             so a given file gives a reproducible sequence)
                         "refuse_rcpt": [..] addresses refused like --refuse-rcpt, on top of them
                         "auth_reply": "535 ..."  every AUTH with a user name and password is
                                             refused with this reply (CRLF between the lines of a
                                             multi-line one)
                         "mail_reply": "530 ..."  every MAIL FROM gets this reply
                         "data_reply": "550 ..."  every end of DATA gets this reply; nothing stored
                         "data_delay": 8     seconds to wait at every end of DATA before going on
                                             as the other keys say (a slow server, or a large
                                             message on a slow link); counted in "delayed"
                                             when the wait starts
                       Counters go to PATH.stats (JSON, rewritten atomically after every event):
                       connections, transactions (ends of DATA reached), stored, refused_rcpt,
                       failures {"down", "451", "421", "drop"}, replied {"auth", "mail", "data"}
                       (fixed replies given), delayed (ends of DATA held back). They start at zero when the server
                       starts and are never reset: tests compare before/after.
"""
import logging, warnings
import argparse, asyncio, base64, binascii, collections, json, os, random, signal, ssl, sys, time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, MISSING


class BigSMTP(SMTP):
    # RFC 4954: AUTH lines may be up to 12288 octets; JWT bearer tokens are long.
    line_length_limit = 16384
    command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.command_size_limits["AUTH"] = 16384

    async def _handle_client(self):
        # aiosmtpd runs this once per TCP connection (not again after STARTTLS) and its first act
        # is the 220 greeting: the place to refuse the whole connection when the control file
        # says the service is down.
        if self.event_handler.faults is not None and self.event_handler.faults.on_connect():
            await self.push(DOWN_GREETING)
            self.transport.close()
            return
        await super()._handle_client()


# Gmail's exact replies (provider-facts.md 1.1 and 1.2); GSMTP_ID stands for its per-session token.
GSMTP_ID = "h26sm30121397pfq.64"
GMAIL_SIZE = 35882577
GMAIL_APP_PASSWORD_REQUIRED = (
    "534-5.7.9 Application-specific password required. For more information, go to\r\n"
    "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor %s - gsmtp" % GSMTP_ID)
GMAIL_BAD_CREDENTIALS = (
    "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials %s - gsmtp" % GSMTP_ID)
GMAIL_AUTH_OK = "235 2.7.0 Accepted"

# --control-file replies
DOWN_GREETING = "421 4.3.2 Service not available, closing transmission channel"
FAIL_451 = "451 4.3.0 Temporary failure, try again later"
FAIL_421 = "421 4.4.2 Closing connection"
FAIL_MODES = ("451", "421", "drop")


class Faults:
    """Fault injection driven by --control-file, with its counters in <control-file>.stats."""

    def __init__(self, path):
        self.path = path
        self.raw = None            # the file's bytes when last parsed (None: no file)
        self.conf = {}
        self.rng = random.Random()
        self.stats = {"connections": 0, "transactions": 0, "stored": 0, "refused_rcpt": 0,
                      "failures": {"down": 0, "451": 0, "421": 0, "drop": 0},
                      "replied": {"auth": 0, "mail": 0, "data": 0}, "delayed": 0}
        self.reload()
        self.save()                # a stats file exists (all zeros) as soon as the server is up

    def reload(self):
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = None
        if raw == self.raw:
            return                 # unchanged: keep the random sequence going
        if raw is None:
            conf = {}
        else:
            try:
                conf = json.loads(raw)
                if not isinstance(conf, dict):
                    raise ValueError("not a JSON object")
                modes = conf.get("modes", FAIL_MODES)
                if not modes or any(m not in FAIL_MODES for m in modes):
                    raise ValueError("modes must be a non-empty list of %s" % (FAIL_MODES,))
            except ValueError as e:
                # Most likely a file caught half-written: keep the previous faults and leave
                # self.raw alone, so that the next read parses it again.
                print("CONTROL-FILE ignored (%s): %r" % (e, raw[:200]), file=sys.stderr, flush=True)
                return
        self.raw, self.conf = raw, conf
        # A new generator for every new content, so that a test writing {"seed": 7, ...} gets
        # the same sequence of failures each run (given the same order of transactions).
        self.rng = random.Random(conf.get("seed"))
        print("CONTROL-FILE", conf, flush=True)

    def save(self):
        write_atomic(self.path + ".stats", json.dumps(self.stats).encode())

    def refused(self):
        return {a.lower() for a in self.conf.get("refuse_rcpt", [])}

    def fixed_reply(self, stage):
        """The reply the control file fixes for `stage` (auth, mail, data), counted; or None."""
        self.reload()
        reply = self.conf.get(stage + "_reply")
        if reply:
            self.stats["replied"][stage] += 1
            self.save()
            print("FIXED REPLY", stage, reply.splitlines()[0], flush=True)
        return reply or None

    def data_delay(self):
        """Seconds to wait at this end of DATA (counted when non-zero)."""
        self.reload()
        delay = float(self.conf.get("data_delay", 0))
        if delay > 0:
            self.stats["delayed"] += 1
            self.save()
            print("DELAY", delay, flush=True)
        return delay

    def count_refused_rcpt(self):
        self.stats["refused_rcpt"] += 1
        self.save()

    def on_connect(self):
        """A new TCP connection. True: refuse it with DOWN_GREETING."""
        self.reload()
        self.stats["connections"] += 1
        down = bool(self.conf.get("down"))
        if down:
            self.stats["failures"]["down"] += 1
        self.save()
        return down

    def on_data_end(self):
        """The end of DATA. Returns None (store the message) or the failure mode to act out."""
        self.reload()
        self.stats["transactions"] += 1
        if self.conf.get("down"):
            self.stats["failures"]["down"] += 1
            self.save()
            return "down"
        mode = None
        # Draw only when a rate is set: the sequence then starts at the first transaction after
        # the file gained its fail_rate, whatever went through before.
        rate = float(self.conf.get("fail_rate", 0))
        if rate > 0 and self.rng.random() < rate:
            mode = self.rng.choice(list(self.conf.get("modes", FAIL_MODES)))
            self.stats["failures"][mode] += 1
        else:
            self.stats["stored"] += 1
        self.save()
        return mode


def is_tls(server):
    if server._tls_protocol is not None:
        return True
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None


class Handler:
    def __init__(self, args):
        self.args = args
        self.users = dict(u.split(":", 1) for u in args.user)
        self.gmail = {}
        for acct in args.gmail_account:
            user, account_pw, app_pw = acct.rsplit(":", 2)
            self.gmail[user] = (account_pw, app_pw.replace(" ", ""))
        self.refused = {a.lower() for a in args.refuse_rcpt}
        self.faults = Faults(args.control_file) if args.control_file else None
        os.makedirs(args.spool, exist_ok=True)
        # Number on from what is already in the spool (normally empty), so that a provider
        # restarted by a test never overwrites the messages its predecessor accepted.
        self.n = max((int(f[:-5]) for f in os.listdir(args.spool)
                      if f.endswith(".json") and f[:-5].isdigit()), default=0)

    # ---- Gmail-like dialogue ----
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.gmail:
            return responses
        lines = ["smtp.gmail.com at your service, [%s]" % session.peer[0], "SIZE %d" % GMAIL_SIZE,
                 "8BITMIME"]
        if is_tls(server):
            lines.append("AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH")
        else:
            lines.append("STARTTLS")
        lines += ["ENHANCEDSTATUSCODES", "PIPELINING", "SMTPUTF8"]
        return ["250-" + l for l in lines[:-1]] + ["250 " + lines[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        fixed = self.faults.fixed_reply("mail") if self.faults else None
        if fixed:
            return fixed
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK %s - gsmtp" % GSMTP_ID if self.gmail else "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refused = self.refused | (self.faults.refused() if self.faults else set())
        if address.lower() in refused:
            if self.faults:
                self.faults.count_refused_rcpt()
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK %s - gsmtp" % GSMTP_ID if self.gmail else "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        return "221 2.0.0 closing connection %s - gsmtp" % GSMTP_ID if self.gmail else "221 Bye"

    # ---- bearer tokens ----
    def tokens(self):
        toks = set(self.args.token)
        if self.args.token_file and os.path.exists(self.args.token_file):
            with open(self.args.token_file) as f:
                toks |= {l.strip() for l in f if l.strip()}
        return toks

    def token_ok(self, tok):
        return self.args.accept_any_token or tok in self.tokens()

    async def _bearer_fail(self, server, mech):
        err = json.dumps({"status": "401", "schemes": "bearer",
                          "scope": "https://mail.example/"}).encode()
        # Gmail/Outlook style: 334 <b64 json error>, client answers (empty / ^A), then 535
        await server.challenge_auth(err, encode_to_b64=True)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted (%s)" % mech)

    async def _initial(self, server, args):
        if len(args) == 1:
            blob = await server.challenge_auth(b"", encode_to_b64=False)
            return blob
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await server.push("501 5.5.2 Can't decode base64")
            return MISSING

    async def auth_XOAUTH2(self, server, args):
        blob = await self._initial(server, args)
        if blob is MISSING:
            return AuthResult(success=False, handled=True)
        # user=<user>^Aauth=Bearer <token>^A^A
        fields = dict(p.split(b"=", 1) for p in blob.split(b"\x01") if b"=" in p)
        user = fields.get(b"user", b"").decode()
        auth = fields.get(b"auth", b"").decode()
        tok = auth[7:] if auth.lower().startswith("bearer ") else ""
        if user and self.token_ok(tok):
            server.session.auth_mechanism = "XOAUTH2"   # recorded in the spool's .json
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        return await self._bearer_fail(server, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server, args):
        blob = await self._initial(server, args)
        if blob is MISSING:
            return AuthResult(success=False, handled=True)
        # n,a=<user>,^Ahost=..^Aport=..^Aauth=Bearer <token>^A^A   (RFC 7628)
        gs2, _, rest = blob.partition(b"\x01")
        user = ""
        for part in gs2.split(b","):
            if part.startswith(b"a="):
                user = part[2:].decode()
        fields = dict(p.split(b"=", 1) for p in rest.split(b"\x01") if b"=" in p)
        auth = fields.get(b"auth", b"").decode()
        tok = auth[7:] if auth.lower().startswith("bearer ") else ""
        if self.token_ok(tok):
            server.session.auth_mechanism = "OAUTHBEARER"
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        return await self._bearer_fail(server, "OAUTHBEARER")

    # ---- delivery ----
    async def handle_DATA(self, server, session, envelope):
        delay = self.faults.data_delay() if self.faults else 0
        if delay:
            await asyncio.sleep(delay)
        fixed = self.faults.fixed_reply("data") if self.faults else None
        if fixed:
            return fixed           # nothing stored
        mode = self.faults.on_data_end() if self.faults else None
        if mode == "451":
            print("FAULT 451", envelope.mail_from, envelope.rcpt_tos, flush=True)
            return FAIL_451        # aiosmtpd sends it; the session goes on, nothing stored
        if mode in ("421", "drop", "down"):
            print("FAULT", mode, envelope.mail_from, envelope.rcpt_tos, flush=True)
            if mode in ("421", "down"):
                await server.push(FAIL_421 if mode == "421" else DOWN_GREETING)
                server.transport.close()   # flushes the 421 first
            else:
                server.transport.abort()   # no reply at all
            # Whatever this hook returned, aiosmtpd would try to send it as the reply. Instead,
            # wait here: closing the transport makes aiosmtpd's connection_lost() cancel the
            # task that runs this session (and so this sleep).
            await asyncio.sleep(3600)
        self.n += 1
        base = os.path.join(self.args.spool, "%04d" % self.n)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "auth_user": session.auth_data.login.decode(errors="replace")
                if isinstance(session.auth_data, LoginPassword) else None,
                "auth_mechanism": getattr(session, "auth_mechanism", None),
                "peer": list(session.peer), "tls": is_tls(server)}
        # .json first, each file renamed into place: a reader never sees a partial message
        write_atomic(base + ".json", json.dumps(meta).encode())
        write_atomic(base + ".eml", envelope.original_content or envelope.content)
        print("DELIVERED", base, meta, flush=True)
        if self.gmail:
            return "250 2.0.0 OK  %d %s - gsmtp" % (int(time.time()), GSMTP_ID)
        return "250 2.0.0 OK queued as %04d" % self.n


def write_atomic(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)


def password_authenticator(users, gmail, faults=None):
    def auth(server, session, envelope, mechanism, auth_data):
        session.auth_mechanism = mechanism
        fixed = faults.fixed_reply("auth") if faults and isinstance(auth_data, LoginPassword) else None
        if fixed:
            return AuthResult(success=False, handled=False, message=fixed)
        if isinstance(auth_data, LoginPassword):
            u = auth_data.login.decode(errors="replace")
            p = auth_data.password.decode(errors="replace")
            # Every login attempt, the user name only (tests check who tried, never the secret).
            print("AUTH", mechanism, "user=%s" % u, "tls=%s" % bool(getattr(session, "ssl", None)), flush=True)
            if gmail:
                account_pw, app_pw = gmail.get(u, (None, None))
                if app_pw is not None and p.replace(" ", "") == app_pw:
                    return AuthResult(success=True, auth_data=auth_data, message=GMAIL_AUTH_OK)
                if account_pw is not None and p == account_pw:
                    return AuthResult(success=False, handled=False,
                                      message=GMAIL_APP_PASSWORD_REQUIRED)
                return AuthResult(success=False, handled=False, message=GMAIL_BAD_CREDENTIALS)
            if users.get(u) == p:
                return AuthResult(success=True, auth_data=auth_data)
        if gmail:
            return AuthResult(success=False, handled=False, message=GMAIL_BAD_CREDENTIALS)
        return AuthResult(success=False, handled=False)
    return auth


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--starttls-port", type=int)
    ap.add_argument("--smtps-port", type=int)
    ap.add_argument("--plain-port", type=int)
    ap.add_argument("--cert"); ap.add_argument("--key")
    ap.add_argument("--user", action="append", default=[], help="user:pass")
    ap.add_argument("--token", action="append", default=[])
    ap.add_argument("--token-file")
    ap.add_argument("--accept-any-token", action="store_true")
    ap.add_argument("--no-auth-required", action="store_true")
    ap.add_argument("--spool", default="./spool")
    ap.add_argument("--exclude-mech", action="append", default=[], help="e.g. OAUTHBEARER")
    ap.add_argument("--refuse-rcpt", action="append", default=[], metavar="ADDR")
    ap.add_argument("--gmail-account", action="append", default=[],
                    metavar="USER:ACCOUNT_PASSWORD:APP_PASSWORD")
    ap.add_argument("--control-file", metavar="PATH", help="fault injection, see the docstring")
    args = ap.parse_args()
    logging.basicConfig(level=getattr(logging, os.environ.get("LOGLEVEL","ERROR")))
    warnings.simplefilter("ignore")
    assert args.host in ("127.0.0.1", "::1", "localhost"), "loopback only"

    handler = Handler(args)
    authn = password_authenticator(handler.users, handler.gmail, handler.faults)
    ctx = None
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()
    common = dict(authenticator=authn, auth_exclude_mechanism=args.exclude_mech,
                  auth_required=not args.no_auth_required, hostname="provider.test", loop=loop)
    if handler.gmail:
        common.update(hostname="smtp.gmail.com", ident="ESMTP %s - gsmtp" % GSMTP_ID,
                      data_size_limit=GMAIL_SIZE, enable_SMTPUTF8=True)
    servers = []
    if args.starttls_port:
        servers.append(await loop.create_server(
            lambda: BigSMTP(handler, tls_context=ctx, require_starttls=True,
                            auth_require_tls=True, **common),
            args.host, args.starttls_port))
    if args.smtps_port:
        servers.append(await loop.create_server(
            lambda: BigSMTP(handler, auth_require_tls=False, **common),
            args.host, args.smtps_port, ssl=ctx))
    if args.plain_port:
        servers.append(await loop.create_server(
            lambda: BigSMTP(handler, auth_require_tls=False, **common),
            args.host, args.plain_port))
    print("READY", flush=True)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
