"""postie's exceptions, by kind: catch the one you can act on.

Every exception carries the failure as postie explains it (the same catalog as the ``postie``
command): what happened, the likely causes and the fix, and whether retrying can help. None of
it contains a password, a token or an AUTH payload.

    try:
        postie.send(msg, account="work")
    except postie.CredentialsError as e:   # the server refused the login: e.explanation.fix
        ...
    except postie.TransientError:          # try again later
        ...
"""

from __future__ import annotations

import json
import smtplib
from dataclasses import dataclass, field
from typing import Any, List, Optional

__all__ = [
    "Explanation",
    "PostieError",
    "ConfigurationError",
    "CredentialsError",
    "TransientError",
    "PermanentError",
    "from_report",
]


@dataclass(frozen=True)
class Explanation:
    """Why something failed and what to do about it."""

    #: Stable identifier of the catalog entry (``gmail-app-password-required`` ...).
    id: str
    #: One sentence: what happened.
    summary: str
    #: The most likely causes, most likely first.
    causes: List[str] = field(default_factory=list)
    #: What to do: commands or URLs.
    fix: List[str] = field(default_factory=list)
    #: ``"no"`` (something must change first), ``"later"`` or ``"hours"``.
    retry: str = "no"

    def __str__(self) -> str:
        lines = [self.summary]
        if self.causes:
            lines.append("causes: " + "; ".join(self.causes))
        if self.fix:
            lines.append("fix: " + "; ".join(self.fix))
        return "\n".join(lines)

    @classmethod
    def from_json(cls, v: Any) -> Optional["Explanation"]:
        if not v:
            return None
        return cls(
            id=v.get("id") or v.get("explanation_id") or "",
            summary=v.get("summary", ""),
            causes=list(v.get("causes") or []),
            fix=list(v.get("fix") or []),
            retry=v.get("retry") or "no",
        )


class PostieError(smtplib.SMTPException):
    """A failure of postie: its kind, the server's reply when one caused it, and the
    explanation. An :class:`smtplib.SMTPException`, so code written for smtplib catches it."""

    #: ``credentials``, ``transient``, ``rejected``, ``configuration`` ... (as ``postie --json``)
    kind: str
    #: What failed, in one line.
    message: str
    #: The server's reply code, when a reply caused it.
    code: Optional[int]
    #: Its enhanced status code (``"5.7.8"``).
    enhanced: Optional[str]
    #: Its text.
    text: Optional[str]
    #: The SMTP stage (``"auth"``, ``"mail"``, ``"data"`` ...), when known.
    stage: Optional[str]
    explanation: Optional[Explanation]
    #: Raised by :meth:`postie.Session.send_many`: every message's report or exception, in order.
    results: Optional[list] = None

    def __init__(self, report: dict):
        self.kind = report.get("kind", "")
        self.message = report.get("message", "")
        self.code = report.get("code")
        self.enhanced = report.get("enhanced")
        self.text = report.get("text")
        self.stage = report.get("stage")
        self.explanation = Explanation.from_json(report)
        # smtplib's response exceptions carry (code, text): so do these
        self.smtp_code = self.code if self.code is not None else -1
        self.smtp_error = str(self).encode("utf-8", "replace")
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        if self.explanation is None:
            return self.message
        return f"{self.message}\n{self.explanation}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, code={self.code!r}, message={self.message!r})"


class ConfigurationError(PostieError):
    """postie's configuration or secret store is wrong or incomplete (an unknown account, a
    password variable that is not set, an account never signed in): fix it, then retry."""


class CredentialsError(PostieError, smtplib.SMTPAuthenticationError):
    """The server or the authorization server refused the credentials: a wrong or revoked
    password, an account password where an app password is required, an expired grant. Also an
    :class:`smtplib.SMTPAuthenticationError`."""


class TransientError(PostieError):
    """A temporary failure (the server is unreachable, busy, or answered 4xx): trying again
    later can succeed."""


class PermanentError(PostieError):
    """The message, the sender or the recipients were refused for good, or the server cannot be
    used as configured (TLS, protocol): retrying as is will not help."""


_BY_KIND = {
    "credentials": CredentialsError,
    "transient": TransientError,
    "unavailable": TransientError,
    "rejected": PermanentError,
    "message": PermanentError,
    "tls": PermanentError,
    "protocol": PermanentError,
    "configuration": ConfigurationError,
    "secret-store": ConfigurationError,
    "usage": ConfigurationError,
    "input": ConfigurationError,
}


def from_report(report: Any) -> PostieError:
    """The exception for an error report (a dict, or its JSON text)."""
    if isinstance(report, (str, bytes)):
        report = json.loads(report)
    return _BY_KIND.get(report.get("kind", ""), PostieError)(report)
