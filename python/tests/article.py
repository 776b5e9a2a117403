"""The three smtplib functions of the article this project answers ("What are the Python smtplib
problems when interacting with Gmail?"), from the same file the CLI's peer tests run
(crates/postie-cli/tests/peers/article.py: verbatim but for the server, which comes from
ARTICLE_SMTP_HOST and ARTICLE_SMTP_PORT), with one change: its `import smtplib` gets
postie.smtplib, as a script's author would change that one line.

Their bugs are kept: starttls() without a context (the certificate is not checked), the XOAUTH2
string sent without base64 and its reply never checked, every exception printed and swallowed
("An error occurred: ..." on stdout).
"""
import importlib.util
import pathlib
import sys

import postie.smtplib

_PATH = pathlib.Path(__file__).resolve().parents[2] / "crates" / "postie-cli" / "tests" / "peers" / "article.py"


def _load():
    spec = importlib.util.spec_from_file_location("article_of_the_seed", _PATH)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("smtplib")
    sys.modules["smtplib"] = postie.smtplib  # `import smtplib` in the file gets the drop-in
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["smtplib"] = saved
    assert module.smtplib is postie.smtplib
    return module


_article = _load()
send_email_plain_password = _article.send_email_plain_password
send_email_app_password = _article.send_email_app_password
send_email_oauth2 = _article.send_email_oauth2
