"""The sandbox's emulation of the Gmail API and Microsoft Graph, checked by clients no one here
wrote: Google's API client (whose packaged discovery document defines the request) and
`requests` following Graph's reference for MIME sendMail. Then postie's own transports, from
Python, against the same emulation."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from email.message import EmailMessage

import pytest
import requests

import postie
from conftest import SandboxProc, sign_in, token
from conftest import postie as run_postie


def https_account(sb, name: str, transport: str, email: str | None = None) -> str:
    """An account of the sandbox sending through `transport`, signed in on its consent page;
    returns its access token."""
    email = email or sb.user
    run_postie("account", "add", name, "--provider", "sandbox", "--email", email, "--auth", "oauth",
               "--port", str(sb.port), "--issuer", sb.info["issuer"], "--transport", transport,
               "--api-url", sb.info["http"])
    sign_in(name)
    return postie.token(name)


def message(subject: str, sender: str, attach: int = 0) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "bob@example.com", subject
    m.set_content(f"Hello.\n{subject}\n")
    if attach:
        m.add_attachment(os.urandom(attach), maintype="application", subtype="octet-stream",
                         filename="data.bin")
    return m


def test_googles_api_client_sends_through_the_gmail_api_emulation(sandbox):
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build
    from google.auth.exceptions import RefreshError
    from googleapiclient.http import MediaIoBaseUpload

    tok = https_account(sandbox, "ga", "gmail-api")
    gmail = build("gmail", "v1", credentials=Credentials(tok), static_discovery=True,
                  client_options={"api_endpoint": sandbox.info["http"]}, cache_discovery=False)
    # users.messages.send with the message in the metadata (base64url "raw")
    small = token("gac-raw")
    raw = base64.urlsafe_b64encode(message(small, sandbox.user).as_bytes()).decode()
    sent = gmail.users().messages().send(userId="me", body={"raw": raw}).execute()
    assert sent["id"] and "SENT" in sent["labelIds"], sent
    [m] = sandbox.message_with(small)
    assert m["mechanism"] == "gmail-api" and m["user"] == sandbox.user

    # The upload endpoint: the client builds its URL as https:// on the endpoint's host (it
    # would not reach the sandbox's plain-HTTP port), so its request is checked, and the upload
    # is made with requests as Google's upload guide describes it: the session, then the bytes.
    media = MediaIoBaseUpload(io.BytesIO(b"x"), mimetype="message/rfc822", resumable=True)
    planned = gmail.users().messages().send(userId="me", body={}, media_body=media)
    assert planned.method == "POST"
    assert planned.uri.split("?")[0].endswith("/upload/gmail/v1/users/me/messages/send")
    assert "uploadType=resumable" in planned.uri
    big = token("gac-upload")
    data = message(big, sandbox.user, attach=6 * 1024 * 1024).as_bytes()
    start = requests.post(
        sandbox.info["http"] + "/upload/gmail/v1/users/me/messages/send?uploadType=resumable",
        headers={"Authorization": f"Bearer {tok}", "X-Upload-Content-Type": "message/rfc822",
                 "X-Upload-Content-Length": str(len(data)),
                 "Content-Type": "application/json; charset=UTF-8"},
        data=b"{}", timeout=30)
    assert start.status_code == 200 and start.headers["Location"], start.text
    put = requests.put(start.headers["Location"], data=data, timeout=60,
                       headers={"Content-Type": "message/rfc822"})
    assert put.status_code == 200 and put.json()["id"], put.text
    [m] = sandbox.message_with(big)
    assert m["size"] >= len(data) - 64, m

    # A token the emulation never issued: the client takes the 401 for an expired token and
    # tries to refresh it (it has nothing to refresh with); the body is Google's.
    bad = build("gmail", "v1", credentials=Credentials(tok + "x"), static_discovery=True,
                client_options={"api_endpoint": sandbox.info["http"]}, cache_discovery=False)
    with pytest.raises(RefreshError):
        bad.users().messages().send(userId="me", body={"raw": raw}).execute()
    r = requests.post(sandbox.info["http"] + "/gmail/v1/users/me/messages/send", json={"raw": raw},
                      headers={"Authorization": f"Bearer {tok}x"}, timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["errors"][0]["reason"] == "authError"
    assert r.json()["error"]["status"] == "UNAUTHENTICATED"


def test_googles_client_reads_the_emulations_refusals_as_googles(home, tmp_path):
    """The Gmail API's refusals for a project that never enabled it (403 accessNotConfigured)
    and for an account without a mailbox (400 failedPrecondition), as Google's client reads
    them (HttpError: status, message, error details); postie explains both."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build
    from googleapiclient.errors import HttpError

    def gmail(sb, tok):
        return build("gmail", "v1", credentials=Credentials(tok), static_discovery=True,
                     client_options={"api_endpoint": sb.info["http"]}, cache_discovery=False)

    ghost = "ghost@sandbox.postie.test"
    user = f'[[users]]\nemail = "{ghost}"\npassword = "pw"\nmailbox = false\n'

    def refused(settings: str, name: str):
        """(Google's client's HttpError, postie's error) for one send each, nothing stored."""
        (tmp_path / f"{name}.toml").write_text(settings)
        sb = SandboxProc("--settings", str(tmp_path / f"{name}.toml"))
        try:
            tok = https_account(sb, name, "gmail-api", email=ghost)
            raw = base64.urlsafe_b64encode(message(token(name), ghost).as_bytes()).decode()
            with pytest.raises(HttpError) as google:
                gmail(sb, tok).users().messages().send(userId="me", body={"raw": raw}).execute()
            with pytest.raises(postie.ConfigurationError) as ours:
                postie.send(message(token(name + "-postie"), ghost), account=name)
            assert sb.messages() == []
            return google.value, ours.value
        finally:
            sb.stop()

    google, ours = refused("gmail_api_enabled = false\n" + user, "ga")
    assert google.status_code == 403
    assert google.reason.startswith("Gmail API has not been used in project")
    assert {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
            "domain": "googleapis.com",
            "metadata": {"service": "gmail.googleapis.com", "consumer": "projects/sandbox"}
            } in google.error_details
    assert ours.explanation.id == "api-gmail-disabled"
    assert any("Gmail API > Enable" in f for f in ours.explanation.fix)

    google, ours = refused(user, "gp")
    assert google.status_code == 400 and google.reason == "Precondition check failed."
    assert google.error_details[0]["reason"] == "failedPrecondition"
    assert ours.explanation.id == "api-gmail-failed-precondition"


def test_requests_sends_mime_to_the_graph_emulation(sandbox):
    tok = https_account(sandbox, "gr", "graph")
    url = sandbox.info["http"] + "/v1.0/me/sendMail"
    subject = token("graph-requests")
    body = base64.b64encode(message(subject, sandbox.user).as_bytes())
    r = requests.post(url, data=body, timeout=30,
                      headers={"Authorization": f"Bearer {tok}", "Content-Type": "text/plain"})
    assert r.status_code == 202, r.text
    [m] = sandbox.message_with(subject)
    assert m["mechanism"] == "graph"
    # the error shapes of the reference: 401 for a token it never issued, 413 over 4 MB
    r = requests.post(url, data=body, timeout=30,
                      headers={"Authorization": f"Bearer {tok}x", "Content-Type": "text/plain"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    huge = base64.b64encode(os.urandom(3_200_000))
    r = requests.post(url, data=huge, timeout=60,
                      headers={"Authorization": f"Bearer {tok}", "Content-Type": "text/plain"})
    assert r.status_code == 413, r.status_code


# the SDK's generated request builders warn about their own deprecated classes
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_microsofts_sdk_sends_through_the_graph_emulation(home, tmp_path):
    """Microsoft's Graph SDK for Python (msgraph-sdk, its own models and serializer: it sends
    sendMail's parameters as "Message" and "SaveToSentItems") sends the JSON form with a blind
    copy, and reads the emulation's refusals as Graph's (ODataError: status, code): a token it
    never issued, a From the user may not send as, a user without a mailbox."""
    from kiota_abstractions.authentication import (AccessTokenProvider, AllowedHostsValidator,
                                                   BaseBearerTokenAuthenticationProvider)
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
        SendMailPostRequestBody)

    class Fixed(AccessTokenProvider):
        def __init__(self, tok):
            self.tok = tok

        async def get_authorization_token(self, uri, additional_authentication_context=None):
            return self.tok

        def get_allowed_hosts_validator(self):
            return AllowedHostsValidator(["127.0.0.1"])

    def send(tok: str, subject: str, sender: str | None = None):
        adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(Fixed(tok)))
        adapter.base_url = sb.info["http"] + "/v1.0"
        to = lambda a: Recipient(email_address=EmailAddress(address=a))  # noqa: E731
        body = SendMailPostRequestBody(
            message=Message(subject=subject,
                            body=ItemBody(content_type=BodyType.Text, content="Hello.\n"),
                            to_recipients=[to("bob@example.com")],
                            bcc_recipients=[to("hidden@example.com")],
                            from_=to(sender) if sender else None),
            save_to_sent_items=False)
        return asyncio.run(GraphServiceClient(request_adapter=adapter).me.send_mail.post(body))

    ghost = "ghost@sandbox.postie.test"
    settings = tmp_path / "sandbox.toml"
    settings.write_text('[[users]]\nemail = "me@sandbox.postie.test"\npassword = "pw"\n'
                        f'[[users]]\nemail = "{ghost}"\npassword = "pw"\nmailbox = false\n')
    sb = SandboxProc("--settings", str(settings))
    try:
        tok = https_account(sb, "gr", "graph")
        subject = token("msgraph-sdk")
        assert send(tok, subject) is None  # 202, no content
        [m] = sb.message_with(subject)
        assert m["mechanism"] == "graph" and m["from"] == sb.user, m
        assert sorted(m["recipients"]) == ["bob@example.com", "hidden@example.com"], m
        shown = json.loads(run_postie("sandbox", "messages", "show", str(m["id"]), "--json").stdout)
        assert "hidden@example.com" not in json.dumps(shown["headers"]).lower(), shown

        for tok_, sender, status, code in [
            (tok + "x", None, 401, "InvalidAuthenticationToken"),
            (tok, "boss@sandbox.postie.test", 403, "ErrorSendAsDenied"),
            (https_account(sb, "rg", "graph", email=ghost), None, 404,
             "MailboxNotEnabledForRESTAPI"),
        ]:
            with pytest.raises(ODataError) as e:
                send(tok_, token("msgraph-refused"), sender)
            assert (e.value.response_status_code, e.value.error.code) == (status, code)
        assert len(sb.messages()) == 1
    finally:
        sb.stop()


def test_postie_from_python_sends_through_both_apis_and_explains_the_size_limit(sandbox):
    https_account(sandbox, "ga", "gmail-api")
    https_account(sandbox, "gr", "graph")
    for name in ("ga", "gr"):
        subject = token(f"py-{name}")
        msg = message(subject, sandbox.user)
        msg["Bcc"] = "hidden@example.com"
        report = postie.send(msg, account=name)
        assert report.status == "sent"
        [m] = sandbox.message_with(subject)
        assert "hidden@example.com" in m["recipients"], m
    # over Graph's 4 MB (base64): refused before sending, with the explanation
    with pytest.raises(postie.PermanentError) as caught:
        postie.send(message(token("py-too-big"), sandbox.user, attach=3_500_000), account="gr")
    assert caught.value.kind == "message"
    assert caught.value.explanation.id == "api-too-large", caught.value
    assert "4 MB" in str(caught.value)


def test_requests_sends_a_json_message_to_the_graph_emulation(sandbox):
    """sendMail's JSON form, as Graph's reference (and Microsoft's SDKs) send it."""
    tok = https_account(sandbox, "gr", "graph")
    subject = token("graph-json")
    r = requests.post(
        sandbox.info["http"] + "/v1.0/me/sendMail",
        json={"message": {"subject": subject,
                          "body": {"contentType": "Text", "content": f"Hello.\n{subject}"},
                          "toRecipients": [{"emailAddress": {"address": "bob@example.com"}}],
                          "bccRecipients": [{"emailAddress": {"address": "hidden@example.com"}}]},
              "saveToSentItems": True},
        headers={"Authorization": f"Bearer {tok}"}, timeout=30)
    assert r.status_code == 202, r.text
    [m] = sandbox.message_with(subject)
    assert m["mechanism"] == "graph" and m["from"] == sandbox.user, m
    assert sorted(m["recipients"]) == ["bob@example.com", "hidden@example.com"], m


def test_the_drop_in_sends_through_an_api_account(sandbox, monkeypatch, capsys):
    """An smtplib script whose account sends over the Gmail API: the script is unchanged, its
    login finds the account, the message goes over HTTPS."""
    import article

    https_account(sandbox, "ga", "gmail-api")
    monkeypatch.setenv("ARTICLE_SMTP_HOST", sandbox.host)
    monkeypatch.setenv("ARTICLE_SMTP_PORT", str(sandbox.port))
    subject = token("dropin-api")
    article.send_email_app_password(sandbox.user, "the-scripts-old-password", "friend@example.com", subject, "Hi")
    assert capsys.readouterr().out == "Email sent successfully using app password!\n"
    [m] = sandbox.message_with(subject)
    assert m["mechanism"] == "gmail-api", m


def test_postie_s_gmail_requests_are_those_of_the_discovery_document(monkeypatch):
    """postie's Gmail API requests, as a server that knows only the discovery document packaged
    with Google's client receives them: the method, the upload path with userId `me`, a media
    type the method accepts, the upload types, the size bound; a small message in one request,
    a large one resumable (session, then the bytes to the address given)."""
    import fnmatch
    import http.server
    import threading

    import googleapiclient

    doc_path = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents",
                            "gmail.v1.json")
    with open(doc_path) as f:
        send = json.load(f)["resources"]["users"]["resources"]["messages"]["methods"]["send"]
    upload = send["mediaUpload"]
    simple = upload["protocols"]["simple"]["path"].replace("{userId}", "me")
    seen, problems = [], []

    class Api(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _read(self):
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_POST(self):
            path, _, query = self.path.partition("?")
            body = self._read()
            seen.append(("POST", path, query, self.headers.get("Content-Type"), len(body)))
            if self.command != send["httpMethod"]:
                problems.append(f"method {self.command}")
            if path != simple:
                problems.append(f"path {path}, the document's is {simple}")
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                problems.append("no bearer token")
            if "uploadType=media" in query:
                kind = self.headers.get("Content-Type", "")
                if not any(fnmatch.fnmatch(kind, a) for a in upload["accept"]):
                    problems.append(f"media type {kind} is not one of {upload['accept']}")
                if len(body) > int(upload["maxSize"]):
                    problems.append("over maxSize")
                return self._ok()
            if "uploadType=resumable" in query:
                kind = self.headers.get("X-Upload-Content-Type", "")
                if not any(fnmatch.fnmatch(kind, a) for a in upload["accept"]):
                    problems.append(f"resumable media type {kind}")
                self.send_response(200)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}{simple}?uploadType=resumable&upload_id=1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            problems.append(f"uploadType in {query!r}")
            return self._ok()

        def do_PUT(self):
            body = self._read()
            seen.append(("PUT", self.path.partition("?")[0], "", self.headers.get("Content-Type"), len(body)))
            return self._ok()

        def _ok(self):
            out = json.dumps({"id": "1", "threadId": "1", "labelIds": ["SENT"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # the token comes from the sandbox's OAuth server; the requests go to the server above
        sb = _SandboxForToken()
        try:
            https = sb.account(server.server_port)
            small = postie.send(message(token("doc-small"), sb.user), account=https)
            big = postie.send(message(token("doc-big"), sb.user, attach=6 * 1024 * 1024), account=https)
        finally:
            sb.stop()
    finally:
        server.shutdown()
    assert small.status == "sent" and big.status == "sent"
    assert not problems, problems
    kinds = [(m, p, q.split("&")[0] if q else "") for m, p, q, _, _ in seen]
    assert kinds == [("POST", simple, "uploadType=media"), ("POST", simple, "uploadType=resumable"),
                     ("PUT", simple, "")], seen
    assert seen[2][4] > 6 * 1024 * 1024 and fnmatch.fnmatch(seen[2][3], "message/*"), seen


class _SandboxForToken:
    """A `postie sandbox` only for its OAuth server: an account signed in there, whose API
    requests go to another address (`api_url`)."""

    def __init__(self):
        from conftest import SandboxProc

        self.sp = SandboxProc()
        self.user = self.sp.user

    def account(self, api_port: int) -> str:
        run_postie("account", "add", "doc", "--provider", "sandbox", "--email", self.user, "--auth", "oauth",
                   "--port", str(self.sp.port), "--issuer", self.sp.info["issuer"], "--transport", "gmail-api",
                   "--api-url", f"http://127.0.0.1:{api_port}")
        sign_in("doc")
        return "doc"

    def stop(self):
        self.sp.stop()
