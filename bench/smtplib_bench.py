"""Python smtplib throughput on reused connections, timed like postie-bench's clients.

    python3 bench/smtplib_bench.py PORT CONNS COUNT MESSAGE_FILE

One smtplib.SMTP per connection, each in its own thread (smtplib waits for every reply, so the
GIL is not what limits it); one untimed message per connection first; the clock stops at the last
message's reply. Prints one JSON line like the Rust clients.
"""
import json
import smtplib
import sys
import threading
import time

port, conns, count, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
msg = open(path, "rb").read()
FROM, TO = "alice@example.test", ["bob@example.test"]
barrier = threading.Barrier(conns + 1)
ends, errors = [], []


def sender(share):
    try:
        s = smtplib.SMTP("127.0.0.1", port)
        s.sendmail(FROM, TO, msg)
    except Exception as e:  # reported after the barrier, so the others are not left waiting
        errors.append(e)
        barrier.wait()
        return
    barrier.wait()
    try:
        for _ in range(share):
            s.sendmail(FROM, TO, msg)
        ends.append(time.perf_counter())
        s.quit()
    except Exception as e:
        errors.append(e)


threads = [threading.Thread(target=sender, args=(count // conns + (i < count % conns),)) for i in range(conns)]
for t in threads:
    t.start()
barrier.wait()
start = time.perf_counter()
for t in threads:
    t.join()
if errors:
    sys.exit(f"smtplib: {errors[0]!r}")
secs = max(ends) - start
print(json.dumps({"client": "smtplib", "msgs": count, "secs": round(secs, 4), "rate": round(count / secs, 2)}))
