#!/usr/bin/env python3
"""Load client for crash tests of an SMTP server (postie relay), standard library only.

usage: load.py --host 127.0.0.1 --port P --count N --clients K --run-id R --acked FILE
               [--deadline SECONDS] [--from a@b] [--to c@d] [--user U --password P] [--starttls]

K threads share the N messages 0..N-1. Message i has `Subject: load R i`,
`Message-ID: <R.i@load.test>` and a body naming i. A thread keeps one SMTP connection and reuses
it for message after message until an error; then it drops that connection and opens a new one
for the retry (so a server restart costs each thread one failed attempt, not one per message).

The acked file is the test's evidence: the index i is appended to it (one line, then flush and
fsync) ONLY after sendmail() returned without an exception, i.e. the server answered 250 to the
end of DATA. A line in it therefore means "the server took responsibility for this message"; a
message sent but not listed may or may not have been accepted (the 250 may have been lost in a
crash), so a checker should expect every acked index delivered and tolerate extra deliveries,
including duplicates of a message retried after a lost 250. The file is appended to, never
truncated.

On any error (connection refused while the server restarts, disconnect, timeout, 4xx, even 5xx)
the thread sleeps 50-200 ms and retries the same message, until --deadline seconds after the
start. Exit status 0 when all N are acked, 1 otherwise; stdout gets one JSON line
{"acked": n, "attempts": m, "errors": e}; stderr gets the count of each kind of error.
"""
import argparse, collections, json, os, random, smtplib, sys, threading, time
from email.message import EmailMessage

# Per-connection socket timeout: a hung server must not keep a thread past the deadline for long.
IO_TIMEOUT = 10.0


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True, help="N messages")
    ap.add_argument("--clients", type=int, default=1, help="K threads")
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--acked", required=True, help="file the acked indices are appended to")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds (default 120)")
    ap.add_argument("--from", dest="sender", default="load@load.test")
    ap.add_argument("--to", dest="rcpt", default="sink@load.test")
    ap.add_argument("--user", help="AUTH login (no AUTH without it)")
    ap.add_argument("--password", default="")
    ap.add_argument("--starttls", action="store_true",
                    help="STARTTLS before AUTH (certificate not verified: loopback tests only)")
    return ap.parse_args()


class Load:
    def __init__(self, a):
        self.a = a
        self.end = time.monotonic() + a.deadline
        self.lock = threading.Lock()
        self.next = 0                      # next message index nobody has taken yet
        self.acked = self.attempts = self.errors = 0
        self.kinds = collections.Counter()  # error kinds, for the stderr summary
        self.fd = os.open(a.acked, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def take(self):
        with self.lock:
            if self.next >= self.a.count:
                return None
            self.next += 1
            return self.next - 1

    def message(self, i):
        m = EmailMessage()
        m["From"] = self.a.sender
        m["To"] = self.a.rcpt
        m["Subject"] = "load %s %d" % (self.a.run_id, i)
        m["Message-ID"] = "<%s.%d@load.test>" % (self.a.run_id, i)
        m.set_content("load test message %d of run %s\n" % (i, self.a.run_id))
        return m.as_bytes()

    def ack(self, i):
        # One write() of a whole line on an O_APPEND descriptor, then fsync: the line is on disk
        # before we count it, and lines of different threads never interleave.
        with self.lock:
            os.write(self.fd, b"%d\n" % i)
            os.fsync(self.fd)
            self.acked += 1

    def connect(self):
        timeout = max(0.1, min(IO_TIMEOUT, self.end - time.monotonic()))
        s = smtplib.SMTP(self.a.host, self.a.port, timeout=timeout)
        try:
            if self.a.starttls:
                s.starttls()
            if self.a.user:
                s.login(self.a.user, self.a.password)
        except BaseException:
            close(s)
            raise
        return s

    def worker(self):
        conn = None
        while True:
            i = self.take()
            if i is None:
                break
            data = self.message(i)
            while True:
                if time.monotonic() >= self.end:
                    close(conn)
                    return
                with self.lock:
                    self.attempts += 1
                try:
                    if conn is None:
                        conn = self.connect()
                    # raises unless the server answered 250 to the end of DATA (one recipient:
                    # a refused recipient raises SMTPRecipientsRefused)
                    conn.sendmail(self.a.sender, [self.a.rcpt], data)
                except (OSError, smtplib.SMTPException) as e:
                    # OSError covers refused/reset connections and timeouts; SMTPException the
                    # 4xx/5xx replies and SMTPServerDisconnected.
                    with self.lock:
                        self.errors += 1
                        self.kinds[error_kind(e)] += 1
                    close(conn)
                    conn = None
                    time.sleep(random.uniform(0.05, 0.2))
                    continue
                self.ack(i)
                break
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                close(conn)

    def run(self):
        threads = [threading.Thread(target=self.worker, daemon=True)
                   for _ in range(max(1, self.a.clients))]
        for t in threads:
            t.start()
        for t in threads:
            # a thread stuck in I/O past the deadline (IO_TIMEOUT at most) is left behind
            t.join(max(0.0, self.end - time.monotonic()) + IO_TIMEOUT + 1)
        with self.lock:
            summary = {"acked": self.acked, "attempts": self.attempts, "errors": self.errors}
            kinds = dict(self.kinds)
        os.close(self.fd)
        print(json.dumps(summary), flush=True)
        if kinds:
            print("load.py errors: %s" % json.dumps(kinds), file=sys.stderr, flush=True)
        return 0 if summary["acked"] == self.a.count else 1


def error_kind(e):
    code = getattr(e, "smtp_code", None)
    if code is None and isinstance(e, smtplib.SMTPRecipientsRefused) and e.recipients:
        code = next(iter(e.recipients.values()))[0]
    return type(e).__name__ + (" %s" % code if code else "")


def close(conn):
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(Load(parse_args()).run())
