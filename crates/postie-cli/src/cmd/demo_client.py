# The article's Example 2 (send_email_app_password), unchanged except that the server is a
# parameter: `postie demo` points it at `postie relay` on 127.0.0.1, which stores the message and
# delivers it upstream with OAuth 2.0. Usage: demo_client.py HOST PORT USER PASSWORD TO
import smtplib
import sys
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart


def send_email_app_password(smtp_server, port, sender_email, app_password, receiver_email, subject, message):
    try:
        # Create an email message
        email = MIMEMultipart()
        email['From'] = sender_email
        email['To'] = receiver_email
        email['Subject'] = subject
        email.attach(MIMEText(message, 'plain'))

        # Connect to the SMTP Server and Authenticate
        server = smtplib.SMTP(smtp_server, port)
        server.starttls()
        server.login(sender_email, app_password)  # Authentication with app password

        # Send the Email
        server.sendmail(sender_email, receiver_email, email.as_string())

        server.quit()
        print("Email sent successfully using app password!")
    except Exception as e:
        print(f"An error occurred: {e}")
        sys.exit(1)


if __name__ == "__main__":
    host, port, user, password, to = sys.argv[1:6]
    send_email_app_password(host, int(port), user, password, to,
                            "Example 2 through postie relay",
                            "A legacy smtplib script, unchanged but for host and port.")
