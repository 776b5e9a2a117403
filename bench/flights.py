"""Count the round trips of a one-shot `postie send -v` after connect, from its transcript.

    python3 bench/flights.py TRANSCRIPT

A flight is a wait for the server: each run of received lines (`<-`, `<~`) that follows lines the
client sent (or the start: the greeting), plus the TLS handshake, which the transcript shows as a
note (`***`), counted as the one round trip a TLS 1.3 handshake takes. Prints the count.
"""
import re
import sys

flights, last = 0, None
for raw in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = re.sub(r"^\[\s*[\d.]+s\]\s*", "", raw.strip())
    kind = line[:3].strip()
    if kind in ("<-", "<~"):
        if last != "received":
            flights += 1
        last = "received"
    elif kind in ("->", "~>"):
        last = "sent"
    elif kind == "***" and re.search(r"handshake|TLS ?1\.[23]|TLSv1", line, re.I):
        flights += 1
        last = "handshake"
print(flights)
