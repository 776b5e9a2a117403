"""The three functions of the smtplib-and-Gmail article, verbatim except for the server they
talk to (the sandbox instead of smtp.gmail.com:587), plus the fix Google's own sample makes to
the third: the XOAUTH2 string base64-encoded.

    python3 sandbox_article.py PORT plain|app|oauth2|oauth2-base64 SENDER SECRET RECEIVER SUBJECT

smtplib's debug output (every command and reply) goes to stderr.
"""
import base64
import smtplib
import sys
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart

PORT = int(sys.argv[1])
smtplib.SMTP.debuglevel = 1


def send_email_plain_password(sender_email, sender_password, receiver_email, subject, message):
    try:
        # Gmail's SMTP Server with TLS
        smtp_server = "127.0.0.1"
        port = PORT

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


def send_email_app_password(sender_email, app_password, receiver_email, subject, message):
    try:
        # Gmail's SMTP Server with TLS
        smtp_server = "127.0.0.1"
        port = PORT

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


def send_email_oauth2(sender_email, access_token, receiver_email, subject, message):
    try:
        # Gmail's SMTP Server with TLS
        smtp_server = "127.0.0.1"
        port = PORT

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


def send_email_oauth2_base64(sender_email, access_token, receiver_email, subject, message):
    """The article's third function with the line Google's sample (gmail-oauth2-tools
    oauth2.py) has: the XOAUTH2 string base64-encoded."""
    try:
        email = MIMEMultipart()
        email['From'] = sender_email
        email['To'] = receiver_email
        email['Subject'] = subject
        email.attach(MIMEText(message, 'plain'))
        server = smtplib.SMTP("127.0.0.1", PORT)
        server.starttls()
        auth_string = f"user={sender_email}\x01auth=Bearer {access_token}\x01\x01"
        server.ehlo(sender_email)
        code, reply = server.docmd('AUTH', 'XOAUTH2 ' + base64.b64encode(auth_string.encode('utf-8')).decode('utf-8'))
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, reply)
        server.sendmail(sender_email, receiver_email, email.as_string())
        server.quit()
        print("Email sent successfully using OAuth2!")
    except Exception as e:
        print(f"An error occurred: {e}")


mode, sender, secret, receiver, subject = sys.argv[2:7]
{
    "plain": send_email_plain_password,
    "app": send_email_app_password,
    "oauth2": send_email_oauth2,
    "oauth2-base64": send_email_oauth2_base64,
}[mode](sender, secret, receiver, subject, "This is a test email.\n" + subject)
