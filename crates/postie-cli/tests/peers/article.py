#!/usr/bin/env python3
"""The three smtplib functions of the article "What are the Python smtplib problems when
interacting with Gmail?" (/work/shared/seed/smtplib-gmail-article.md), as a legacy program that
tests point at postie's relay or at the mail peers.

The functions are copied verbatim, bugs included, except for two lines in each:
    smtp_server = "smtp.gmail.com"   ->  smtp_server = os.environ["ARTICLE_SMTP_HOST"]
    port = 587                       ->  port = int(os.environ["ARTICLE_SMTP_PORT"])
Known properties of the article's code, kept on purpose:
  - server.starttls() gets no SSL context, so Python does not verify the certificate;
  - send_email_oauth2 sends the XOAUTH2 string raw, not base64-encoded, and never checks the
    reply of docmd(), so the AUTH fails and the following MAIL is what raises;
  - every exception is caught and printed; the exit status is 0 either way, so callers must
    look at stdout ("Email sent successfully..." / "An error occurred: ...").
send_email_oauth2_fixed is NOT from the article: see its comment.

usage: ARTICLE_SMTP_HOST=127.0.0.1 ARTICLE_SMTP_PORT=587 [ARTICLE_SMTP_DEBUG=1] \\
       article.py plain|app|oauth|oauth-fixed SENDER SECRET RECEIVER SUBJECT MESSAGE
  SECRET is the password (plain), the app password (app) or the access token (oauth*).
"""
import base64
import os
import sys
import smtplib
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart

# ---- Example 1 of the article ----

def send_email_plain_password(sender_email, sender_password, receiver_email, subject, message):
    try:
        # Gmail's SMTP Server with TLS
        smtp_server = os.environ["ARTICLE_SMTP_HOST"]
        port = int(os.environ["ARTICLE_SMTP_PORT"])

        # Create an email message
        email = MIMEMultipart()
        email['From'] = sender_email
        email['To'] = receiver_email
        email['Subject'] = subject
        email.attach(MIMEText(message, 'plain'))

        # Connect to the SMTP Server and Authenticate
        server = smtplib.SMTP(smtp_server, port)
        server.starttls()
        server.login(sender_email, sender_password) # This is the problem here!

        # Send the Email
        server.sendmail(sender_email, receiver_email, email.as_string())

        server.quit()
        print("Email sent successfully!")
    except Exception as e:
        print(f"An error occurred: {e}")

# ---- Example 2 of the article ----

def send_email_app_password(sender_email, app_password, receiver_email, subject, message):
    try:
        # Gmail's SMTP Server with TLS
        smtp_server = os.environ["ARTICLE_SMTP_HOST"]
        port = int(os.environ["ARTICLE_SMTP_PORT"])

        # Create an email message
        email = MIMEMultipart()
        email['From'] = sender_email
        email['To'] = receiver_email
        email['Subject'] = subject
        email.attach(MIMEText(message, 'plain'))

        # Connect to the SMTP Server and Authenticate
        server = smtplib.SMTP(smtp_server, port)
        server.starttls()
        server.login(sender_email, app_password) # Authentication with app password

        # Send the Email
        server.sendmail(sender_email, receiver_email, email.as_string())

        server.quit()
        print("Email sent successfully using app password!")
    except Exception as e:
        print(f"An error occurred: {e}")

# ---- Example 3 of the article ----

def send_email_oauth2(sender_email, access_token, receiver_email, subject, message):
    try:
        # Gmail's SMTP Server with TLS
        smtp_server = os.environ["ARTICLE_SMTP_HOST"]
        port = int(os.environ["ARTICLE_SMTP_PORT"])

        # Create an email message
        email = MIMEMultipart()
        email['From'] = sender_email
        email['To'] = receiver_email
        email['Subject'] = subject
        email.attach(MIMEText(message, 'plain'))

        # Connect to the SMTP Server and Authenticate
        server = smtplib.SMTP(smtp_server, port)
        server.starttls()

        # Construct the authentication string
        auth_string = f"user={sender_email}\x01auth=Bearer {access_token}\x01\x01"
        server.ehlo(sender_email)  # Required before AUTH
        server.docmd('AUTH', 'XOAUTH2 ' + auth_string) # This step uses the access token
       
        # Send the Email
        server.sendmail(sender_email, receiver_email, email.as_string())

        server.quit()
        print("Email sent successfully using OAuth2!")
    except Exception as e:
        print(f"An error occurred: {e}")

# ---- NOT from the article ----
# send_email_oauth2 with its one bug fixed: the XOAUTH2 initial response is base64-encoded, as in
# Google's own sample (oauth2.py: base64.b64encode(auth_string)). Everything else, including the
# unchecked docmd() reply and the print statements, is the article's.

def send_email_oauth2_fixed(sender_email, access_token, receiver_email, subject, message):
    try:
        # Gmail's SMTP Server with TLS
        smtp_server = os.environ["ARTICLE_SMTP_HOST"]
        port = int(os.environ["ARTICLE_SMTP_PORT"])

        # Create an email message
        email = MIMEMultipart()
        email['From'] = sender_email
        email['To'] = receiver_email
        email['Subject'] = subject
        email.attach(MIMEText(message, 'plain'))

        # Connect to the SMTP Server and Authenticate
        server = smtplib.SMTP(smtp_server, port)
        server.starttls()

        # Construct the authentication string
        auth_string = f"user={sender_email}\x01auth=Bearer {access_token}\x01\x01"
        server.ehlo(sender_email)  # Required before AUTH
        # the only changed line: base64 (not in the article)
        server.docmd('AUTH', 'XOAUTH2 ' + base64.b64encode(auth_string.encode()).decode())

        # Send the Email
        server.sendmail(sender_email, receiver_email, email.as_string())

        server.quit()
        print("Email sent successfully using OAuth2!")
    except Exception as e:
        print(f"An error occurred: {e}")


MODES = {
    "plain": send_email_plain_password,
    "app": send_email_app_password,
    "oauth": send_email_oauth2,
    "oauth-fixed": send_email_oauth2_fixed,
}

if __name__ == "__main__":
    # ARTICLE_SMTP_DEBUG=1: smtplib prints every command and reply on stderr (not the article's)
    if os.environ.get("ARTICLE_SMTP_DEBUG"):
        smtplib.SMTP.debuglevel = 1
    if len(sys.argv) != 7 or sys.argv[1] not in MODES:
        sys.exit("usage: article.py %s SENDER SECRET RECEIVER SUBJECT MESSAGE" % "|".join(MODES))
    MODES[sys.argv[1]](*sys.argv[2:])
