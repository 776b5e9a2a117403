"""Drives headless Chromium through a consent page: loads URL, clicks the button with the given
id (allow / deny), waits until the browser has left the page, and prints JSON with the final URL
and the text of the page it ended on. Exits 1, saying why on stderr, when the page has no such
button.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on
fd 3, replies on fd 4, each a JSON text ending in NUL), so nothing beyond the standard library.

    python3 consent.py URL BUTTON_ID PROFILE_DIR
"""
import fcntl
import json
import os
import subprocess
import sys
import time

url, button, profile = sys.argv[1], sys.argv[2], sys.argv[3]
to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()


def _pipes_to_3_and_4():
    # Out of the way first, so that neither dup2 overwrites the other's source.
    a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
    b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
    os.dup2(a, 3)
    os.dup2(b, 4)


proc = subprocess.Popen(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     "--disable-dev-shm-usage", "--remote-debugging-pipe", "--user-data-dir=" + profile,
     "about:blank"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    preexec_fn=lambda: _pipes_to_3_and_4(),
    close_fds=False,
)
os.close(to_chrome_r)
os.close(from_chrome_w)
inbox = b""
next_id = 0


def send(method, params=None, session=None):
    global next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
    return next_id


def reply(want):
    global inbox
    deadline = time.time() + 30
    while time.time() < deadline:
        while b"\0" in inbox:
            raw, inbox = inbox.split(b"\0", 1)
            m = json.loads(raw)
            if m.get("id") == want:
                if "error" in m:
                    raise SystemExit("devtools error: %s" % m["error"])
                return m.get("result", {})
        chunk = os.read(from_chrome_r, 65536)
        if not chunk:
            raise SystemExit("chromium closed the pipe")
        inbox += chunk
    raise SystemExit("no reply from chromium")


def call(method, params=None, session=None):
    return reply(send(method, params, session))


def evaluate(session, expr, navigating=False):
    """The value of `expr` in the page. `navigating`: the page may be between two documents
    (after a click, while loading); an evaluation cut short by that is None, not an error."""
    try:
        r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
    except SystemExit as e:
        if navigating and "navigated or closed" in str(e):
            return None
        raise
    return r.get("result", {}).get("value")


try:
    target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    call("Page.navigate", {"url": url}, session)
    deadline = time.time() + 20
    while time.time() < deadline:
        ready = evaluate(session, "document.readyState === 'complete' && !!document.getElementById(%s)"
                         % json.dumps(button), navigating=True)
        if ready:
            break
        time.sleep(0.1)
    else:
        print("consent.py: no button #%s on the page after 20 s; the browser is at %s:\n%s"
              % (button, evaluate(session, "location.href"),
                 evaluate(session, "document.body ? document.body.innerText : ''")),
              file=sys.stderr)
        sys.exit(1)
    consent_url = evaluate(session, "location.href")
    # the click runs after this evaluation returns: the navigation it starts cannot cut it short
    evaluate(session, "setTimeout(() => document.getElementById(%s).click(), 0)" % json.dumps(button))
    deadline = time.time() + 20
    while time.time() < deadline:
        here = evaluate(session, "document.readyState === 'complete' ? location.href : ''",
                        navigating=True)
        if here and here != consent_url:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    print(json.dumps({"url": evaluate(session, "location.href"),
                      "text": evaluate(session, "document.body ? document.body.innerText : ''")}))
finally:
    try:
        call("Browser.close")
    except BaseException:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
