#!/usr/bin/env python3
"""Parse a delivered message with Python's own `email` package (an independent MIME parser).

usage: mime.py MESSAGE.eml OUTDIR
Prints one JSON object on stdout:
  headers      [[name, decoded value], ...] in order (RFC 2047 words decoded; raw UTF-8 accepted)
  content_type the top-level type, e.g. "multipart/mixed"
  parts        [{content_type, filename, disposition, charset, cte, size, path, text}, ...] for
               every leaf part; its decoded payload is written to OUTDIR/part-N.bin ("path"),
               "text" is the decoded text for text/* parts
  defects      parser defects, as strings
"""
import email, email.policy, json, os, sys


def fix(value):
    # raw UTF-8 in headers (RFC 6532) arrives as surrogate escapes in the default policy
    s = str(value)
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return s


def main():
    path, outdir = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    out = {
        "headers": [[k, fix(v)] for k, v in msg.items()],
        "content_type": msg.get_content_type(),
        "parts": [],
        "defects": [repr(d) for d in msg.defects],
    }
    for i, part in enumerate(p for p in msg.walk() if not p.is_multipart()):
        payload = part.get_payload(decode=True) or b""
        target = os.path.join(outdir, "part-%d.bin" % i)
        with open(target, "wb") as f:
            f.write(payload)
        text = None
        if part.get_content_maintype() == "text":
            text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        filename = part.get_filename()
        out["parts"].append({
            "content_type": part.get_content_type(),
            "filename": fix(filename) if filename is not None else None,
            "disposition": part.get_content_disposition(),
            "charset": part.get_content_charset(),
            "cte": part.get("Content-Transfer-Encoding", None) and str(part["Content-Transfer-Encoding"]).lower(),
            "size": len(payload),
            "path": target,
            "text": text,
        })
        out["defects"] += [repr(d) for d in part.defects]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
