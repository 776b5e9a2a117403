"""The Python API over postie's core against the independent mail peers: many messages on one
session, per-recipient refusals, exceptions by kind, threads, and no secret in any exception,
repr or log record."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import smtplib
import threading
import time
from email.message import EmailMessage

import pytest

import postie
from conftest import postie as run_postie
from conftest import token

SECRET_PW = None  # the peers' distinctive password, set by the fixture


def add_account(peers, name: str, prefix: str, *, password: str | None = None, user: str | None = None,
                email: str = "api@example.test") -> None:
    """An account for peer `prefix` (AIOSMTPD, FLAKY ...) with its password in postie's secret
    store."""
    run_postie(
        "account", "add", name, "--provider", "generic", "--host", "127.0.0.1",
        "--port", peers[f"{prefix}_STARTTLS"], "--tls", "starttls", "--email", email,
        "--user", user or peers[f"{prefix}_USER"], "--ca-file", peers["MAIL_PEERS_CA"],
        "--password-stdin",
        input=(password if password is not None else peers[f"{prefix}_PASSWORD"]).encode(),
    )


def message(subject: str, to="bob@example.test", frm="api@example.test") -> EmailMessage:
    m = EmailMessage()
    m["From"], m["Subject"] = frm, subject
    m["To"] = to if isinstance(to, str) else ", ".join(to)
    m.set_content(f"A test message.\n{subject}\n")
    return m


def flaky(peers, conf: dict) -> None:
    """The flaky peer's faults (none with {}), written as its control file wants."""
    path = peers["FLAKY_CONTROL"]
    with open(path + ".tmp", "w") as f:
        json.dump(conf, f)
    os.rename(path + ".tmp", path)


def flaky_stats(peers) -> dict:
    with open(peers["FLAKY_STATS"]) as f:
        return json.load(f)


def test_send_many_tries_every_message_and_says_which_failed(peers):
    """Three messages pipelined on one session, the second's only recipient refused: the
    others are sent on the same connection, and the refusal stands in its place
    (return_exceptions) or is raised once all were tried, with every result attached."""
    flaky(peers, {"run": token("py-many-refused"), "refuse_rcpt": ["nobody@example.test"]})
    try:
        add_account(peers, "fl", "FLAKY")
        before = flaky_stats(peers)
        subjects = [token(f"py-mr-{i}") for i in range(4)]
        msgs = [message(subjects[0]), message(subjects[1], to="nobody@example.test"),
                message(subjects[2])]
        with postie.Session("fl") as s:
            results = s.send_many(msgs, return_exceptions=True)
            assert [type(r).__name__ for r in results] == ["Report", "PermanentError", "Report"]
            assert results[1].code == 550 and results[1].explanation, results[1]
            with pytest.raises(postie.PermanentError) as e:
                s.send_many([msgs[1], message(subjects[3])])
            assert [type(r).__name__ for r in e.value.results] == ["PermanentError", "Report"]
            assert e.value.results[1].status == "sent"
        after = flaky_stats(peers)
        assert after["connections"] - before["connections"] == 1
        for x in (subjects[0], subjects[2], subjects[3]):
            assert peers.stored("FLAKY_SPOOL", x), x
        assert not peers.stored("FLAKY_SPOOL", subjects[1], timeout=0.5)
    finally:
        flaky(peers, {})


def test_a_message_refused_before_it_leaves_keeps_the_connection(peers):
    """A message larger than the server's SIZE is refused before any of it is sent; the next
    message of the session goes on the same connection (it was dropped and opened anew)."""
    flaky(peers, {"run": token("py-size")})
    add_account(peers, "fl", "FLAKY")
    before = flaky_stats(peers)
    big = message(token("py-size-big"))
    big.set_content(("x" * 76 + "\n") * 480_000)  # 37 MB, above the SIZE the peer offers
    small = token("py-size-small")
    with postie.Session("fl") as s:
        with pytest.raises(postie.PermanentError) as e:
            s.send(big)
        assert "the server accepts at most" in e.value.message, e.value
        assert s.send(message(small)).status == "sent"
    after = flaky_stats(peers)
    assert after["connections"] - before["connections"] == 1
    assert peers.stored("FLAKY_SPOOL", small)


def test_many_messages_on_one_session_use_one_connection(peers):
    flaky(peers, {"run": token("py-many")})
    add_account(peers, "fl", "FLAKY")
    before = flaky_stats(peers)
    subjects = [token(f"py-many-{i}") for i in range(3)]
    with postie.Session("fl") as s:
        reports = s.send_many(message(x) for x in subjects)
    assert [r.status for r in reports] == ["sent"] * 3
    assert all(r.auth in ("PLAIN", "LOGIN") for r in reports), reports
    after = flaky_stats(peers)
    assert after["connections"] - before["connections"] == 1
    assert after["stored"] - before["stored"] == 3
    for x in subjects:
        assert peers.stored("FLAKY_SPOOL", x)


def test_per_recipient_refusals_are_in_the_report_and_all_refused_raises(peers):
    add_account(peers, "aio", "AIOSMTPD")
    refused = peers["REFUSED_RCPT"]
    subject = token("py-partial")
    r = postie.send(message(subject, to=["bob@example.test", refused]), account="aio")
    assert r.status == "partial"
    [who] = r.refused
    assert (who.address, who.code, who.enhanced) == (refused, 550, "5.1.1"), r
    assert [x.address for x in r.recipients if x.accepted] == ["bob@example.test"]
    [stored] = peers.stored("AIOSMTPD_SPOOL", subject)
    assert json.loads(stored.with_suffix(".json").read_text())["rcpt_tos"] == ["bob@example.test"]

    with pytest.raises(postie.PermanentError) as caught:
        postie.send(message(token("py-none"), to=refused), account="aio")
    e = caught.value
    assert e.code == 550 and e.kind == "rejected", e
    assert e.explanation is not None and e.explanation.summary, e


def test_exceptions_by_kind(peers, tmp_path):
    # a wrong password: the server's 535, a CredentialsError that smtplib code also catches
    add_account(peers, "bad", "AIOSMTPD", password="not-the-password")
    with pytest.raises(postie.CredentialsError) as caught:
        postie.send(message(token("py-bad")), account="bad")
    assert isinstance(caught.value, smtplib.SMTPAuthenticationError)
    assert caught.value.code == 535 and caught.value.smtp_code == 535
    assert caught.value.explanation.fix
    # no such account: configuration, with what there is
    with pytest.raises(postie.ConfigurationError) as caught:
        postie.Session("nosuch")
    assert "nosuch" in str(caught.value)
    # nothing listens there: transient (trying later can help)
    run_postie("account", "add", "down", "--provider", "generic", "--host", "127.0.0.1",
               "--port", "9", "--tls", "starttls", "--email", "api@example.test", "--user", "x",
               "--password-env", "UNUSED_PW")
    os.environ["UNUSED_PW"] = "x"
    with pytest.raises(postie.TransientError) as caught:
        postie.send(message(token("py-down")), account="down")
    assert caught.value.kind == "unavailable"
    assert caught.value.explanation.retry == "later"
    # and every one is an smtplib.SMTPException
    assert issubclass(postie.PostieError, smtplib.SMTPException)


def test_threads_send_at_once_and_the_gil_is_free_while_waiting(peers):
    add_account(peers, "aio", "AIOSMTPD")
    subjects = [[token(f"py-thread-{t}-{i}") for i in range(3)] for t in range(4)]
    errors = []

    def worker(mine):
        try:
            with postie.Session("aio") as s:
                for x in mine:
                    assert s.send(message(x)).status == "sent"
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in subjects]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for x in sum(subjects, []):
        assert peers.stored("AIOSMTPD_SPOOL", x), x

    # A send the server holds for 2 s: meanwhile this thread runs Python freely.
    flaky(peers, {"run": token("py-gil"), "data_delay": 2})
    add_account(peers, "fl", "FLAKY")
    done = threading.Event()
    result = []
    t = threading.Thread(target=lambda: (result.append(postie.send(message(token("py-gil")), account="fl")), done.set()))
    t.start()
    spins, start = 0, time.monotonic()
    while not done.is_set() and time.monotonic() - start < 30:
        spins += 1
    t.join(30)
    flaky(peers, {})
    assert result and result[0].status == "sent"
    held = time.monotonic() - start
    assert held >= 1.9, held
    assert spins > 100_000, f"the main thread ran {spins} loops in {held:.1f}s: the GIL was held"


def _base64_words(text: str):
    for w in re.findall(r"[A-Za-z0-9+/=]{8,}", text):
        try:
            yield base64.b64decode(w + "=" * (-len(w) % 4), validate=False)
        except (binascii.Error, ValueError):
            pass


def test_no_secret_in_exceptions_reprs_or_log_records(peers, caplog):
    secret_user, secret = peers["SECRET_USER"], peers["SECRET_PASSWORD"]
    caplog.set_level(logging.DEBUG, logger="postie")
    add_account(peers, "sec", "AIOSMTPD", user=secret_user, password=secret)
    report = postie.send(message(token("py-secret")), account="sec")
    add_account(peers, "secbad", "AIOSMTPD", user=secret_user, password=secret + "-wrong")
    with pytest.raises(postie.CredentialsError) as caught:
        postie.send(message(token("py-secret-bad")), account="secbad")
    texts = [str(caught.value), repr(caught.value), str(caught.value.args), repr(report),
             str(caught.value.explanation)]
    records = [r.getMessage() for r in caplog.records]
    # the SMTP dialogue came through Python's logging, AUTH included (redacted)
    assert any(r.name == "postie.transcript" and "AUTH" in r.getMessage() for r in caplog.records), records
    for text in texts + records:
        for s in (secret, secret + "-wrong"):
            assert s not in text, text
            assert not any(s.encode() in d for d in _base64_words(text)), text


def test_token_logs_imaplib_in_to_dovecot_with_xoauth2(peers):
    """postie.token() for another library: imaplib's XOAUTH2 against Dovecot, which checks the
    token at the authorization server (introspection)."""
    import imaplib

    from conftest import sign_in

    user = "alice@example.test"  # whom the test authorization server signs in
    run_postie("account", "add", "work", "--provider", "generic", "--auth", "oauth",
               "--client-id", "test-client", "--issuer", peers["OAUTH_AS"], "--host", "127.0.0.1",
               "--port", peers["POSTFIX_OAUTH"], "--tls", "starttls", "--email", user,
               "--ca-file", peers["MAIL_PEERS_CA"])
    sign_in("work", consent=False)
    tok = postie.token("work")
    assert tok and tok == postie.token("work"), "a valid token is reused, not refreshed"
    imap = imaplib.IMAP4("127.0.0.1", peers.port("DOVECOT_IMAP"))
    typ, _ = imap.authenticate("XOAUTH2", lambda _: f"user={user}\x01auth=Bearer {tok}\x01\x01".encode())
    assert typ == "OK"
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    # the check is real: a token the server never issued is refused
    imap = imaplib.IMAP4("127.0.0.1", peers.port("DOVECOT_IMAP"))
    with pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("XOAUTH2", lambda _: f"user={user}\x01auth=Bearer {tok}x\x01\x01".encode())
    imap.shutdown()


def test_the_postie_command_from_pip_and_doctor(peers):
    """pip put the command on the PATH (the CLI inside the extension); doctor() is structured."""
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "postie")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("postie "), out
    assert out.stdout.split()[1] == postie.__version__

    add_account(peers, "aio", "AIOSMTPD")
    report = postie.doctor("aio")
    assert report.ok, report
    assert [c.stage for c in report.checks] == ["config", "dns", "connect", "tls", "ehlo", "credentials", "auth"]
    add_account(peers, "wrongpw", "AIOSMTPD", password="nope")
    report = postie.doctor("wrongpw")
    assert not report.ok
    assert report.failed.stage == "auth", report
    assert report.failed.explanation and report.failed.explanation.fix, report


def test_the_drop_in_shows_smtplib_what_the_accounts_server_offers(peers):
    """A script that logs in without saying EHLO first, then send_message() to an address
    that needs SMTPUTF8: smtplib's own check sees the offer of the server postie sends
    through, Postfix (it saw none and refused the message before sending)."""
    import postie.smtplib as dropin

    run_postie("account", "add", "pf", "--provider", "generic", "--host", "127.0.0.1",
               "--port", peers["POSTFIX_SUBMIT"], "--tls", "starttls", "--email",
               "alice@provider.test", "--user", peers["POSTFIX_USER"], "--ca-file",
               peers["MAIL_PEERS_CA"], "--password-stdin", input=peers["POSTFIX_PASSWORD"].encode())
    subject = token("py-dropin-utf8")
    with dropin.SMTP("127.0.0.1", peers.port("POSTFIX_SUBMIT")) as s:
        s.login(peers["POSTFIX_USER"], "whatever")
        assert s.has_extn("smtputf8") and s.has_extn("size"), s.esmtp_features
        assert s.send_message(message(subject, to="josé@example.test",
                                      frm="alice@provider.test")) == {}
    [stored] = peers.stored("POSTFIX_MAILDIR", subject)
    assert "josé@example.test" in stored.read_bytes().decode("utf-8", "replace")


def test_the_drop_in_with_send_message_and_with_reports_refusals_as_smtplib(peers):
    """postie.smtplib through an account found by its login name: send_message() and the
    context manager as in smtplib, the refused recipients in sendmail's dict, all refused raises
    SMTPRecipientsRefused with the codes and postie's explanation."""
    import postie.smtplib as dropin

    add_account(peers, "aio", "AIOSMTPD")
    refused = peers["REFUSED_RCPT"]
    subject = token("py-dropin")
    with dropin.SMTP("127.0.0.1", peers.port("AIOSMTPD_STARTTLS")) as s:
        s.starttls()
        code, text = s.login(peers["AIOSMTPD_USER"], "not what the account has")
        assert code == 235 and b"postie account aio" in text, text
        got = s.send_message(message(subject, to=["bob@example.test", refused]))
        assert list(got) == [refused] and got[refused][0] == 550, got
        assert b"postie: " in got[refused][1]
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            s.sendmail("api@example.test", [refused], message(token("py-dropin-none")).as_string())
        assert caught.value.recipients[refused][0] == 550
    [stored] = peers.stored("AIOSMTPD_SPOOL", subject)
    assert json.loads(stored.with_suffix(".json").read_text())["rcpt_tos"] == ["bob@example.test"]
