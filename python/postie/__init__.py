"""postie for Python: send mail through the accounts postie knows, with app passwords or OAuth 2.0
tokens that postie obtains, stores and refreshes.

The accounts are the ``postie`` command's (``postie account add``, ``postie login``): the same
config file, secret store and tokens. Nothing here asks for a password or a token::

    import postie
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "me@gmail.com", "you@example.com", "Hello"
    msg.set_content("Sent with the token postie keeps fresh.")
    report = postie.send(msg, account="gmail")          # one message
    with postie.Session("gmail") as s:                  # many on one connection
        for m in messages:
            s.send(m)

An smtplib script changes one line, ``import postie.smtplib as smtplib`` (see
:mod:`postie.smtplib`). Failures raise the classes of :mod:`postie.errors`, each with postie's
explanation. The network waits run with the GIL released; sessions may be used from several
threads (one send at a time per session).
"""

from __future__ import annotations

import email.message
import email.policy
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, List, NoReturn, Optional, Union

from . import _core
from .errors import (
    ConfigurationError,
    CredentialsError,
    Explanation,
    PermanentError,
    PostieError,
    TransientError,
    from_report,
)

__version__: str = _core.__version__

__all__ = [
    "Account",
    "Check",
    "ConfigurationError",
    "CredentialsError",
    "DoctorReport",
    "Explanation",
    "PermanentError",
    "PostieError",
    "Recipient",
    "Report",
    "Session",
    "TransientError",
    "accounts",
    "doctor",
    "login",
    "send",
    "token",
]

#: What can be sent: an :class:`email.message.Message` (``EmailMessage``, ``MIMEMultipart`` ...),
#: or the message's RFC 5322 text as bytes or str.
Message = Union[email.message.Message, bytes, str]

# The core's diagnostics go to this logger (never a secret, at any level).
logging.getLogger("postie").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Account:
    """An account of postie's config file (as ``postie account list --json`` shows it)."""

    name: str
    #: True for the ``default_account``.
    default: bool
    #: ``gmail``, ``office365``, ``generic`` ...
    provider: str
    #: The address it sends as.
    email: str
    #: The name it logs in with.
    user: str
    #: ``oauth``, ``app-password``, ``password`` or ``none``.
    auth: str
    #: ``host:port``.
    server: Optional[str]
    #: ``starttls``, ``implicit`` or ``none``.
    tls: Optional[str]
    #: Where the password comes from: ``oauth``, ``env``, ``command`` or ``store``.
    password_from: str


@dataclass(frozen=True)
class Recipient:
    """What the server said about one recipient."""

    address: str
    #: True when the server took the message for this recipient.
    accepted: bool
    code: int
    enhanced: Optional[str]
    text: str


@dataclass(frozen=True)
class Report:
    """What happened to one message."""

    #: ``"sent"`` (every recipient), ``"partial"`` (some refused) or ``"failed"``.
    status: str
    message_id: str
    #: ``host:port`` of the server.
    server: str
    #: The SASL mechanism used (``XOAUTH2``, ``PLAIN`` ...), if any.
    auth: Optional[str]
    #: The message's size in bytes.
    size: int
    #: True when the server refused the access token first and postie refreshed it.
    token_refreshed: bool
    recipients: List[Recipient] = field(default_factory=list)

    @property
    def refused(self) -> List[Recipient]:
        """The recipients that will not get the message."""
        return [r for r in self.recipients if not r.accepted]

    @classmethod
    def _from_json(cls, text: str) -> "Report":
        return cls._from_dict(json.loads(text))

    @classmethod
    def _from_dict(cls, v: dict) -> "Report":
        return cls(
            status=v["status"],
            message_id=v["message_id"],
            server=v["server"],
            auth=v.get("auth"),
            size=v.get("size", 0),
            token_refreshed=bool(v.get("token_refreshed")),
            recipients=[
                Recipient(
                    address=r["address"],
                    accepted=r["accepted"],
                    code=r["code"],
                    enhanced=r.get("enhanced"),
                    text=r["text"],
                )
                for r in v.get("recipients", [])
            ],
        )


@dataclass(frozen=True)
class Check:
    """One stage of :func:`doctor`."""

    #: ``config``, ``dns``, ``connect``, ``tls``, ``ehlo``, ``credentials``, ``auth``.
    stage: str
    #: ``ok``, ``warning``, ``failed`` or ``skipped``.
    status: str
    summary: str
    details: List[str] = field(default_factory=list)
    explanation: Optional[Explanation] = None


@dataclass(frozen=True)
class DoctorReport:
    """Every stage of sending through an account, checked without sending mail."""

    account: str
    server: str
    checks: List[Check]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.status != "failed" for c in self.checks)

    @property
    def failed(self) -> Optional[Check]:
        """The check that failed, if any."""
        return next((c for c in self.checks if c.status == "failed"), None)


def _raise(e: BaseException) -> NoReturn:
    raise from_report(e.args[0]) from None


def _raw(message: Message) -> bytes:
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, email.message.Message):
        return message.as_bytes(policy=email.policy.SMTP)
    raise TypeError(f"cannot send a {type(message).__name__}: give an email.message.Message, bytes or str")


def _addresses(to_addrs: Union[str, Iterable[str], None]) -> List[str]:
    if to_addrs is None:
        return []
    if isinstance(to_addrs, str):
        return [to_addrs]
    return list(to_addrs)


def _failed(report: Report) -> PostieError:
    """The exception for a message nobody will get: by its first refusal."""
    r = report.refused[0] if report.refused else None
    code = r.code if r else 0
    text = r.text if r else ""
    x = _core.explain_reply(code, text, None)
    rep = {
        "kind": "transient" if 400 <= code < 500 else "rejected",
        "message": f"{report.server} refused the message: {code} {text}".strip(),
        "code": code or None,
        "enhanced": r.enhanced if r else None,
        "text": text or None,
    }
    if x:
        rep.update(json.loads(x))
    return from_report(rep)


def accounts(*, config: Optional[str] = None) -> List[Account]:
    """The accounts of postie's config file (``config``: another file than the usual one)."""
    try:
        return [Account(**a) for a in json.loads(_core.accounts(config))]
    except _core.Error as e:
        _raise(e)


class Session:
    """One authenticated connection through an account, reused for every message sent on it.

    ``account`` names an account of the config file; ``None`` is the default account. The
    connection opens at the first send (or :meth:`connect`) and closes with :meth:`close` or at
    the end of a ``with`` block.
    """

    def __init__(self, account: Optional[str] = None, *, config: Optional[str] = None):
        try:
            self._s = _core.Session(account, config)
        except _core.Error as e:
            _raise(e)

    @property
    def account(self) -> Optional[str]:
        """The account's name."""
        return self._s.account

    def connect(self) -> None:
        """Connect and log in now (checks the credentials before anything is sent)."""
        try:
            self._s.connect()
        except _core.Error as e:
            _raise(e)

    def send(
        self,
        message: Message,
        *,
        from_addr: Optional[str] = None,
        to_addrs: Union[str, Iterable[str], None] = None,
    ) -> Report:
        """Send one message; its envelope is ``from_addr`` and ``to_addrs``, or the message's
        From / To, Cc, Bcc headers (a Bcc header is never sent). Returns the report, which
        lists the recipients the server refused when it took the message for others; raises
        when nobody will get it."""
        try:
            text = self._s.send(_raw(message), from_addr, _addresses(to_addrs))
        except _core.Error as e:
            _raise(e)
        report = Report._from_json(text)
        if report.status == "failed":
            raise _failed(report)
        return report

    def send_many(
        self, messages: Iterable[Message], *, return_exceptions: bool = False
    ) -> List[Union[Report, PostieError]]:
        """Send the messages on this connection, pipelined where the server allows (each
        message's envelope leaves with the previous one's body: one round trip per message);
        envelopes from their headers. Each message is tried whatever happens to the others:
        those after a failed connection go on over a new one; when no connection can be opened
        at all, each of the rest gets that error (none of them was sent). Returns their reports,
        in order.

        A message nobody will get is an exception: with ``return_exceptions`` it stands in the
        list in place of its report (as :func:`asyncio.gather` does); without, the first one
        is raised once all were tried, with the whole list as its ``results`` attribute, so
        that what was sent is known and nothing is sent twice."""
        raws = [_raw(m) for m in messages]
        try:
            texts = self._s.send_many(raws)
        except _core.Error as e:
            _raise(e)
        results: List[Union[Report, PostieError]] = []
        for text in texts:
            v = json.loads(text)
            if "error" in v:
                results.append(from_report(v["error"]))
                continue
            report = Report._from_dict(v["report"])
            results.append(_failed(report) if report.status == "failed" else report)
        if not return_exceptions:
            failed = next((r for r in results if isinstance(r, PostieError)), None)
            if failed is not None:
                failed.results = results
                raise failed
        return results

    def close(self) -> None:
        """QUIT and close the connection."""
        self._s.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def send(
    message: Message,
    *,
    account: Optional[str] = None,
    from_addr: Optional[str] = None,
    to_addrs: Union[str, Iterable[str], None] = None,
    config: Optional[str] = None,
) -> Report:
    """Send one message through ``account`` (the default one when ``None``); see
    :meth:`Session.send`."""
    with Session(account, config=config) as s:
        return s.send(message, from_addr=from_addr, to_addrs=to_addrs)


def token(account: Optional[str] = None, *, config: Optional[str] = None) -> str:
    """A fresh OAuth 2.0 access token of ``account``, for other libraries (imaplib's
    ``authenticate('XOAUTH2', ...)``, an HTTP API): refreshed when near its expiry, the rotated
    refresh token saved."""
    try:
        return _core.token(account, config)
    except _core.Error as e:
        _raise(e)


def _command(*args: str, config: Optional[str]) -> int:
    argv = ["postie"] + (["--config", config] if config else []) + list(args)
    return _core.cli(argv, True)


def login(account: Optional[str] = None, *, config: Optional[str] = None) -> None:
    """Sign ``account`` in with OAuth 2.0, as ``postie login`` does (a browser on this machine,
    else the device code; it asks on the terminal). Raises :class:`CredentialsError` when the
    sign-in did not succeed."""
    code = _command("login", *([account] if account else []), config=config)
    if code != 0:
        raise (ConfigurationError if code == 78 else CredentialsError)(
            {"kind": "credentials", "message": f"postie login ended with exit status {code}"}
        )


def doctor(account: Optional[str] = None, *, config: Optional[str] = None) -> DoctorReport:
    """Check every stage of sending through ``account`` (config, DNS, connection, TLS, EHLO,
    credentials, AUTH) without sending mail; each failure explained."""
    try:
        v = json.loads(_core.doctor(account, config))
    except _core.Error as e:
        _raise(e)
    return DoctorReport(
        account=v["account"],
        server=v["server"],
        checks=[
            Check(
                stage=c["stage"],
                status=c["status"],
                summary=c["summary"],
                details=list(c.get("details") or []),
                explanation=Explanation.from_json(c.get("explanation")),
            )
            for c in v["checks"]
        ],
    )
