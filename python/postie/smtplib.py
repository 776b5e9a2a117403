"""A drop-in for the standard library's smtplib: change ``import smtplib`` to
``import postie.smtplib as smtplib`` and the script keeps its code.

``SMTP`` and ``SMTP_SSL`` are smtplib's classes with two differences:

- ``login(user, password)`` looks up the postie account of ``user`` (its address or login name).
  An OAuth account authenticates with its stored token, refreshed as needed (XOAUTH2 or
  OAUTHBEARER), whatever ``password`` says; an app-password account with its stored app
  password. The messages of the session then go out through that account's server, with
  postie's sending core. With no postie account for ``user``, this is smtplib's own login.
  A hand-made ``docmd("AUTH", "XOAUTH2 ...")`` for a postie account is taken as that login too.
- Every refusal raises smtplib's exception (a subclass of it, with the same code), its message
  followed by postie's explanation of the reply: what happened, the causes and the fix. The
  explanation is also the exception's ``explanation`` attribute.

Everything else (``ehlo``, ``starttls``, ``sendmail``, ``send_message``, ``quit``, ``with``) is
smtplib's, and so are the exception classes' names.
"""

from __future__ import annotations

import base64
import binascii
import json
import smtplib as _std
from smtplib import *  # noqa: F401,F403  (constants, quotedata, the classes not overridden)
from typing import Dict, Optional, Sequence, Tuple, Union

from . import _core
from .errors import Explanation, PostieError

__all__ = list(_std.__all__)

_REPLY = Tuple[int, bytes]


def _explanation(code: int, text: Union[bytes, str], host: Optional[str]) -> Optional[Explanation]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    x = _core.explain_reply(code, text, host)
    return Explanation.from_json(json.loads(x)) if x else None


def _with_explanation(text: bytes, x: Optional[Explanation]) -> bytes:
    if x is None:
        return text
    return text + b"\n" + f"postie: {x}".encode("utf-8", "replace")


class SMTPResponseException(_std.SMTPResponseException):
    """smtplib's, with postie's :class:`~postie.errors.Explanation` of the reply."""

    explanation: Optional[Explanation] = None


class SMTPAuthenticationError(_std.SMTPAuthenticationError, SMTPResponseException):
    """smtplib's, with postie's explanation."""


class SMTPSenderRefused(_std.SMTPSenderRefused, SMTPResponseException):
    """smtplib's, with postie's explanation."""


class SMTPDataError(_std.SMTPDataError, SMTPResponseException):
    """smtplib's, with postie's explanation."""


class SMTPConnectError(_std.SMTPConnectError, SMTPResponseException):
    """smtplib's, with postie's explanation."""


class SMTPHeloError(_std.SMTPHeloError, SMTPResponseException):
    """smtplib's, with postie's explanation."""


class SMTPRecipientsRefused(_std.SMTPRecipientsRefused):
    """smtplib's: ``recipients`` maps each refused address to its ``(code, text)`` (the text
    with postie's explanation)."""


_SUBCLASS = {
    _std.SMTPAuthenticationError: SMTPAuthenticationError,
    _std.SMTPSenderRefused: SMTPSenderRefused,
    _std.SMTPDataError: SMTPDataError,
    _std.SMTPConnectError: SMTPConnectError,
    _std.SMTPHeloError: SMTPHeloError,
    _std.SMTPResponseException: SMTPResponseException,
}


def _explained(e: BaseException, host: Optional[str]) -> BaseException:
    """smtplib's exception `e` as the subclass that carries the explanation (or `e`)."""
    if isinstance(e, (SMTPResponseException, PostieError)):
        return e
    if isinstance(e, _std.SMTPRecipientsRefused):
        refused = {
            addr: (code, _with_explanation(text, _explanation(code, text, host)))
            for addr, (code, text) in e.recipients.items()
        }
        out: BaseException = SMTPRecipientsRefused(refused)
    elif isinstance(e, _std.SMTPResponseException):
        cls = _SUBCLASS.get(type(e))
        if cls is None:
            return e
        x = _explanation(e.smtp_code, e.smtp_error, host)
        text = _with_explanation(e.smtp_error, x)
        if isinstance(e, _std.SMTPSenderRefused):
            out = cls(e.smtp_code, text, e.sender)
        else:
            out = cls(e.smtp_code, text)
        out.explanation = x  # type: ignore[attr-defined]
    else:
        return e
    out.__cause__ = None
    return out


def _oauth_user(args: str) -> Optional[str]:
    """The user of an XOAUTH2 / OAUTHBEARER initial response, base64 or (as often written by
    hand) not."""
    payload = args.split(None, 1)[1] if " " in args.strip() else ""
    candidates = [payload]
    try:
        candidates.insert(0, base64.b64decode(payload, validate=True).decode("utf-8", "replace"))
    except (binascii.Error, ValueError):
        pass
    for text in candidates:
        for part in text.replace(",", "\x01").split("\x01"):
            part = part.strip()
            if part.startswith("user="):
                return part[5:]
            if part.startswith("a="):
                return part[2:]
    return None


class SMTP(_std.SMTP):
    """smtplib.SMTP that logs in through postie's accounts (see the module's documentation)."""

    #: Another config file than postie's usual one (set on the class or the instance).
    postie_config: Optional[str] = None

    def __init__(self, *args, **kwargs):
        self._postie: Optional[_core.Session] = None
        self._postie_host: Optional[str] = None
        super().__init__(*args, **kwargs)

    # ---- connecting ----

    def connect(self, host: str = "localhost", port: int = 0, source_address=None) -> _REPLY:
        self._postie_host = host
        try:
            return super().connect(host, port, source_address)
        except _std.SMTPException as e:
            raise _explained(e, host) from None

    def ehlo(self, name: str = "") -> _REPLY:
        if self._postie is not None:
            return (250, b"postie: the session goes through the account's server")
        return super().ehlo(name)

    def starttls(self, *args, **kwargs) -> _REPLY:
        if self._postie is not None:
            return (220, b"postie: TLS is the account's")
        return super().starttls(*args, **kwargs)

    # ---- logging in ----

    def _postie_login(self, user: str, mechanism: Optional[str] = None) -> Optional[_REPLY]:
        """Log in through the postie account of `user`; None when it has none."""
        try:
            name = _core.account_for(user, self.postie_config)
        except _core.Error as e:
            from .errors import from_report

            raise from_report(e.args[0]) from None
        if name is None:
            return None
        try:
            session = _core.Session(name, self.postie_config, mechanism)
            info = json.loads(session.connect())
        except _core.Error as e:
            from .errors import from_report

            raise from_report(e.args[0]) from None
        self._postie = session
        # The plain connection smtplib opened is not used for sending: said goodbye to.
        try:
            super().quit()
        except (_std.SMTPException, OSError):
            self.close()
        # smtplib's own checks (send_message's SMTPUTF8) look at the server postie sends
        # through, whether or not the script said EHLO before logging in.
        self.esmtp_features = dict(info.get("extensions") or {})
        self.does_esmtp = True
        mech = info.get("mechanism") or (
            info.get("transport") if info.get("transport") != "smtp" else "no AUTH"
        )
        return (235, f"2.7.0 Accepted: postie account {name} ({mech})".encode())

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> _REPLY:
        done = self._postie_login(user)
        if done is not None:
            return done
        try:
            return super().login(user, password, initial_response_ok=initial_response_ok)
        except _std.SMTPException as e:
            raise _explained(e, self._postie_host) from None

    def docmd(self, cmd: str, args: str = "") -> _REPLY:
        if self._postie is None and cmd.upper() == "AUTH":
            mech = args.split(None, 1)[0].upper() if args.strip() else ""
            if mech in ("XOAUTH2", "OAUTHBEARER"):
                user = _oauth_user(args)
                if user:
                    done = self._postie_login(user, mech)
                    if done is not None:
                        return done
        return super().docmd(cmd, args)

    # ---- sending ----

    def sendmail(
        self,
        from_addr: str,
        to_addrs: Union[str, Sequence[str]],
        msg: Union[str, bytes],
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> Dict[str, _REPLY]:
        if self._postie is None:
            try:
                return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
            except _std.SMTPException as e:
                raise _explained(e, self._postie_host) from None
        if isinstance(to_addrs, str):
            to_addrs = [to_addrs]
        if isinstance(msg, str):
            msg = _std._fix_eols(msg).encode("ascii" if "smtputf8" not in mail_options else "utf-8")
        try:
            report = json.loads(self._postie.send(msg, from_addr, list(to_addrs)))
        except _core.Error as e:
            from .errors import from_report

            raise from_report(e.args[0]) from None
        refused: Dict[str, _REPLY] = {}
        for r in report["recipients"]:
            if not r["accepted"]:
                text = r["text"].encode("utf-8", "replace")
                x = _explanation(r["code"], r["text"], None)
                refused[r["address"]] = (r["code"], _with_explanation(text, x))
        if report["status"] != "failed":
            return refused
        mail = report.get("mail_reply") or {}
        data = report.get("data_reply") or {}
        if mail.get("code", 250) >= 400:
            x = _explanation(mail["code"], mail["text"], None)
            e = SMTPSenderRefused(
                mail["code"], _with_explanation(mail["text"].encode(), x), from_addr
            )
            e.explanation = x
            raise e
        if data and data.get("code", 250) >= 400:
            x = _explanation(data["code"], data["text"], None)
            e2 = SMTPDataError(data["code"], _with_explanation(data["text"].encode(), x))
            e2.explanation = x
            raise e2
        raise SMTPRecipientsRefused(refused)

    def rset(self) -> _REPLY:
        if self._postie is not None:
            return (250, b"2.0.0 OK")
        return super().rset()

    def noop(self) -> _REPLY:
        if self._postie is not None:
            return (250, b"2.0.0 OK")
        return super().noop()

    def quit(self) -> _REPLY:
        if self._postie is not None:
            session, self._postie = self._postie, None
            session.close()
            self.close()
            return (221, b"2.0.0 closing connection")
        return super().quit()


class SMTP_SSL(SMTP, _std.SMTP_SSL):
    """smtplib.SMTP_SSL that logs in through postie's accounts."""


class LMTP(_std.LMTP):
    """smtplib's LMTP, unchanged (local delivery has no accounts)."""

