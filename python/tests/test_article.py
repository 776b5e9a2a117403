"""The article's three smtplib functions (tests/article.py: verbatim but for the import of
postie.smtplib and the server) against `postie sandbox`, which answers like smtp.gmail.com, and
against the independent mail peers. What a server stored is checked at the server."""

from __future__ import annotations

import smtplib as std_smtplib
import time

import pytest

import article
import postie.smtplib as smtplib
from conftest import postie, sign_in, token


@pytest.fixture
def at(monkeypatch):
    def point(host: str, port: int) -> None:
        monkeypatch.setenv("ARTICLE_SMTP_HOST", host)
        monkeypatch.setenv("ARTICLE_SMTP_PORT", str(port))

    return point


def test_the_account_password_is_refused_with_534_and_postie_explains(sandbox, at, capsys):
    at(sandbox.host, sandbox.port)
    subject = token("article-plain")
    article.send_email_plain_password(sandbox.user, sandbox.password, "friend@example.com", subject, "Hi")
    out = capsys.readouterr().out
    assert out.startswith("An error occurred: (534, "), out
    assert "5.7.9 Application-specific password required" in out, out
    # postie's explanation after the server's words: cause and fix
    assert "postie: " in out and "app password" in out.lower(), out
    assert "https://myaccount.google.com/apppasswords" in out, out
    assert sandbox.password not in out
    assert not sandbox.message_with(subject, timeout=0.5)

    # the exception itself: smtplib's class (and code), with the explanation as an attribute
    s = smtplib.SMTP(sandbox.host, sandbox.port)
    s.starttls()
    with pytest.raises(std_smtplib.SMTPAuthenticationError) as caught:
        s.login(sandbox.user, sandbox.password)
    s.close()
    e = caught.value
    assert isinstance(e, smtplib.SMTPAuthenticationError)
    assert e.smtp_code == 534
    assert e.explanation is not None and e.explanation.fix, e
    assert "app password" in str(e.explanation).lower()
    assert sandbox.password not in repr(e) and sandbox.password not in str(e)


def test_the_app_password_is_delivered_by_smtplibs_own_login(sandbox, at, capsys):
    at(sandbox.host, sandbox.port)
    subject = token("article-app")
    article.send_email_app_password(sandbox.user, sandbox.app_password, "friend@example.com", subject, "Hi")
    assert capsys.readouterr().out == "Email sent successfully using app password!\n"
    [m] = sandbox.message_with(subject)
    assert m["user"] == sandbox.user
    assert m["recipients"] == ["friend@example.com"]


def test_an_app_password_account_logs_in_with_its_stored_password(sandbox, at, capsys):
    postie("account", "add", "sb", "--provider", "sandbox", "--email", sandbox.user,
           "--port", str(sandbox.port), "--password-stdin", input=sandbox.app_password.encode())
    at(sandbox.host, sandbox.port)
    subject = token("article-stored")
    # whatever the script says the password is, the account's stored app password is used
    article.send_email_app_password(sandbox.user, "the-scripts-old-password", "friend@example.com", subject, "Hi")
    assert capsys.readouterr().out == "Email sent successfully using app password!\n"
    [m] = sandbox.message_with(subject)
    assert m["user"] == sandbox.user


def test_the_oauth_function_sends_with_the_accounts_token_and_xoauth2(short_token_sandbox, at, capsys):
    sb = short_token_sandbox
    postie("account", "add", "sbo", "--provider", "sandbox", "--email", sb.user, "--auth", "oauth",
           "--port", str(sb.port), "--issuer", sb.info["issuer"])
    sign_in("sbo")
    at(sb.host, sb.port)
    refreshes = lambda: sum("refresh_token grant for" in l and "tokens issued" in l for l in sb.log)
    before = refreshes()
    first = token("article-oauth")
    # The article's dummy token: postie's account has the real one.
    article.send_email_oauth2(sb.user, "this_is_a_token_from_google", "friend@example.com", first, "Hi")
    assert capsys.readouterr().out == "Email sent successfully using OAuth2!\n"
    [m] = sb.message_with(first)
    assert m["mechanism"] == "XOAUTH2", m
    assert m["user"] == sb.user

    # the access token (6 s) expires; the next send refreshes it, once
    time.sleep(7)
    second = token("article-oauth-expired")
    article.send_email_oauth2(sb.user, "this_is_a_token_from_google", "friend@example.com", second, "Hi")
    assert capsys.readouterr().out == "Email sent successfully using OAuth2!\n"
    [m] = sb.message_with(second)
    assert m["mechanism"] == "XOAUTH2", m
    assert refreshes() - before == 1, "\n".join(sb.log)


def test_against_aiosmtpd_and_postfix(peers, at, capsys):
    """smtplib's own login (no postie account) against aiosmtpd, and a Postfix account whose
    password is in postie's secret store."""
    at("127.0.0.1", peers.port("AIOSMTPD_STARTTLS"))
    subject = token("article-aiosmtpd")
    article.send_email_plain_password(
        peers["AIOSMTPD_USER"], peers["AIOSMTPD_PASSWORD"], "bob@example.test", subject, "Hi"
    )
    assert capsys.readouterr().out == "Email sent successfully!\n"
    assert peers.stored("AIOSMTPD_SPOOL", subject)

    # a wrong password there: aiosmtpd's 535, explained
    article.send_email_plain_password(peers["AIOSMTPD_USER"], "wrong", "bob@example.test", subject, "Hi")
    out = capsys.readouterr().out
    assert out.startswith("An error occurred: (535"), out
    assert "postie: " in out, out

    postie("account", "add", "pf", "--provider", "generic", "--host", "127.0.0.1",
           "--port", peers["POSTFIX_SUBMIT"], "--tls", "starttls", "--email", "alice@provider.test",
           "--user", peers["POSTFIX_USER"], "--ca-file", peers["MAIL_PEERS_CA"], "--password-stdin",
           input=peers["POSTFIX_PASSWORD"].encode())
    at("127.0.0.1", peers.port("POSTFIX_SUBMIT"))
    subject = token("article-postfix")
    article.send_email_app_password("alice@provider.test", "not-this-one", "bob@example.test", subject, "Hi")
    assert capsys.readouterr().out == "Email sent successfully using app password!\n"
    assert peers.stored("POSTFIX_MAILDIR", subject)
