"""Fixtures of the Python package's tests: an isolated home for postie (its config, secret store
and data), `postie sandbox` run by the package's own command, and the mail peers that
ci/mail-peers.sh started (Postfix + Dovecot, aiosmtpd, the Authlib OAuth server), read from
$MAIL_PEERS_DIR/env. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import secrets
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PEER_SCRIPTS = REPO / "crates" / "postie-cli" / "tests" / "peers"


def token(label: str) -> str:
    """A word no other test run uses: searched for in what servers stored."""
    return f"{label}-{os.getpid()}-{secrets.token_hex(4)}"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """postie's paths and secret store in a directory of the test's own; no POSTIE_* of the
    caller's leaks in."""
    for k in list(os.environ):
        if k.startswith("POSTIE_"):
            monkeypatch.delenv(k)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for kind in ("CONFIG", "DATA", "STATE", "CACHE"):
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(tmp_path / kind.lower()))
    monkeypatch.setenv("POSTIE_SECRET_STORE", "file")
    monkeypatch.setenv("POSTIE_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("BROWSER", raising=False)
    return tmp_path


def postie(*args: str, input: bytes | None = None, check: bool = True, env=None) -> subprocess.CompletedProcess:
    """The package's own `postie` command (python -m postie), in the test's environment."""
    p = subprocess.run(
        [sys.executable, "-m", "postie", *args],
        input=input,
        capture_output=True,
        env=env,
        timeout=120,
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"postie {' '.join(args)}: exit {p.returncode}\n{p.stdout.decode()}\n{p.stderr.decode()}"
        )
    return p


class SandboxProc:
    """A running `postie sandbox --json` on free ports."""

    def __init__(self, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "postie", "sandbox", "--json", "--smtp-port", "0",
             "--smtps-port", "0", "--http-port", "0", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.log: list[str] = []
        threading.Thread(target=self._read_log, daemon=True).start()
        lines: "queue.Queue[bytes]" = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            self.stop()
            raise AssertionError("postie sandbox printed nothing: " + "\n".join(self.log))
        try:
            self.info = json.loads(line)
            user = self.info["users"][0]
            self.user = user["email"]
            self.password = user["password"]
            self.app_password = (user["app_passwords"] or [None])[0]
            self.host, port = self.info["smtp"].split(":")
            self.port = int(port)
            self.smtps_port = int(self.info["smtps"].split(":")[1])
        except BaseException:
            # a ready line this helper cannot read: no sandbox left running behind the failure
            self.stop()
            raise

    def _read_log(self):
        for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def messages(self) -> list:
        """What the sandbox accepted, from its mailbox page's JSON."""
        with urllib.request.urlopen(self.info["http"] + "/messages.json", timeout=10) as r:
            return json.loads(r.read())["messages"]

    def message_with(self, word: str, timeout: float = 15) -> list:
        """The messages whose subject holds `word` (waits for one)."""
        deadline = time.time() + timeout
        while True:
            found = [m for m in self.messages() if word in json.dumps(m)]
            if found or time.time() > deadline:
                return found
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def sandbox(home):
    sp = SandboxProc()
    yield sp
    sp.stop()


@pytest.fixture
def short_token_sandbox(home):
    """A sandbox whose access tokens live 6 seconds."""
    sp = SandboxProc("--token-lifetime", "6s")
    yield sp
    sp.stop()


def sign_in(name: str, consent: bool = True) -> None:
    """`postie login NAME` in headless Chromium: the consent page's Allow clicked (the
    repository's consent.py drives it over the DevTools protocol), or, with `consent=False`,
    the authorization server's immediate redirect followed."""
    login = subprocess.Popen(
        [sys.executable, "-m", "postie", "login", name, "--no-browser", "--timeout", "60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    printed: list[str] = []
    url = None
    deadline = time.time() + 30
    while url is None and time.time() < deadline:
        line = login.stderr.readline().decode(errors="replace")
        if not line:
            break
        printed.append(line)
        if line.strip().startswith("http://"):
            url = line.strip()
    assert url, "postie login printed no URL:\n" + "".join(printed)
    profile = pathlib.Path(os.environ["HOME"]) / "chromium-profile"
    if consent:
        run = subprocess.run(
            [sys.executable, str(PEER_SCRIPTS / "consent.py"), url, "allow", str(profile)],
            capture_output=True, timeout=90,
        )
        page = run.stdout.decode() + run.stderr.decode()
    else:
        page = chromium_follow(url)
    rest = login.communicate(timeout=60)
    assert login.returncode == 0, "".join(printed) + rest[1].decode() + page


def chromium_follow(url: str) -> str:
    """Loads `url` in headless Chromium (an authorization server that approves at once);
    returns the DOM it ended on."""
    profile = pathlib.Path(os.environ["HOME"]) / "chromium-profile"
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True, timeout=90,
    )
    return out.stdout.decode(errors="replace")


class Peers:
    """The servers of ci/mail-peers.sh, from its env file."""

    def __init__(self, env: dict):
        self.env = env

    def __getitem__(self, key: str) -> str:
        return self.env[key]

    def port(self, key: str) -> int:
        return int(self.env[key])

    def stored(self, spool_key: str, word: str, timeout: float = 15) -> list:
        """Files of a peer's store (a spool of NNNN.eml, or Postfix's Maildir) holding `word`."""
        d = pathlib.Path(self.env[spool_key])
        deadline = time.time() + timeout
        while True:
            found = [
                p for p in (d.iterdir() if d.is_dir() else [])
                if (p.suffix == ".eml" or spool_key == "POSTFIX_MAILDIR") and word.encode() in p.read_bytes()
            ]
            if found or time.time() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="session")
def peers() -> Peers:
    d = os.environ.get("MAIL_PEERS_DIR") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "postie-test-peers")
    path = pathlib.Path(d) / "env"
    if not path.exists():
        pytest.fail(f"no mail peers ({path} is missing): run the tests with ci/test.sh, which starts them")
    env = dict(l.split("=", 1) for l in path.read_text().splitlines() if "=" in l)
    return Peers(env)
