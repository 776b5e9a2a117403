//! Gmail's replies, word for word (provider-facts §1.1 and §1.2), with a
//! per-connection session id in place of Google's (`h26sm30121397pfq.64`).
//! Every reply ends in ` - gsmtp` as Gmail's do, so postie's explanation
//! catalog recognises them as Google's.

use postie_proto::reply::Reply;
use postie_proto::sasl::Mechanism;
use postie_proto::server::{CannedReplies, ServerConfig};
use rand::Rng;

/// Gmail's SIZE.
pub const MAX_MESSAGE_SIZE: u64 = 35_882_577;
/// The Gmail scope, the only one its SMTP service takes.
pub const MAIL_SCOPE: &str = "https://mail.google.com/";

/// A session id in the shape of Google's: `h26sm30121397pfq.64`.
pub fn session_id() -> String {
    let mut r = rand::rng();
    let l = |r: &mut rand::rngs::ThreadRng| char::from(b'a' + r.random_range(0..26u8));
    format!(
        "{}{}sm{}{}{}{}.{}",
        l(&mut r),
        r.random_range(1..100u32),
        r.random_range(1_000_000..100_000_000u32),
        l(&mut r),
        l(&mut r),
        l(&mut r),
        r.random_range(1..100u32)
    )
}

/// A multi-line reply; each line starts with the enhanced code, as Gmail
/// writes them (the second line's double space is Gmail's).
fn lines(code: u16, text: &[&str]) -> Reply {
    let mut r = Reply::new(code, text[0]);
    for t in &text[1..] {
        let next = Reply::new(code, t);
        r.lines.extend(next.lines);
    }
    r
}

/// Gmail's texts for one session.
pub struct Gmail {
    /// The session id every reply ends with.
    pub id: String,
}

impl Default for Gmail {
    fn default() -> Gmail {
        Gmail::new()
    }
}

impl Gmail {
    /// Texts for a new session.
    pub fn new() -> Gmail {
        Gmail { id: session_id() }
    }

    fn tail(&self) -> String {
        format!("{} - gsmtp", self.id)
    }

    /// The server session's settings: what Gmail advertises, and its texts
    /// for what the session answers by itself.
    pub fn server_config(&self, peer: &std::net::SocketAddr) -> ServerConfig {
        let mut c = ServerConfig::new("localhost");
        c.greeting = format!("ESMTP postie sandbox, Gmail-compatible {}", self.tail());
        c.ehlo_greeting = format!("at your service, [{}]", peer.ip());
        c.max_message_size = MAX_MESSAGE_SIZE;
        // Gmail: "Recipients per message sent via SMTP ... 100" (provider-facts §5).
        c.max_recipients = 100;
        c.starttls = true;
        // Gmail also offers PLAIN-CLIENTTOKEN and XOAUTH; the server session
        // implements neither (XOAUTH is gone at Gmail too: `504 5.7.4 XOAUTH
        // is no longer supported`), so only these four are advertised.
        c.auth = vec![
            Mechanism::Login,
            Mechanism::Plain,
            Mechanism::XOAuth2,
            Mechanism::OAuthBearer,
        ];
        c.auth_requires_tls = true;
        c.require_tls = true;
        c.require_auth = true;
        c.smtputf8 = true;
        // Gmail: `MAIL FROM:me@example.com` is `555 5.5.2 Syntax error.`
        c.require_angle_brackets = true;
        c.chunking = true;
        c.binarymime = false;
        c.replies = self.canned();
        c
    }

    fn canned(&self) -> CannedReplies {
        let t = self.tail();
        let r = |code: u16, text: &str| Reply::new(code, &format!("{text} {t}"));
        CannedReplies {
            ok: r(250, "2.0.0 OK"),
            reset: r(250, "2.1.5 Flushed"),
            bye: r(221, "2.0.0 closing connection"),
            ready_for_tls: Reply::new(220, "2.0.0 Ready to start TLS"),
            start_data: r(354, " Go ahead"),
            help: r(214, "2.0.0 https://www.google.com/search?btnI&q=RFC+5321"),
            vrfy: r(252, "2.1.5 Send some mail, I'll try my best"),
            unknown_command: r(502, "5.5.1 Unrecognized command."),
            not_implemented: r(502, "5.5.1 Unimplemented command."),
            syntax: r(555, "5.5.2 Syntax error."),
            command_too_long: r(500, "5.5.2 Line too long."),
            command_bare_newline: r(500, "5.5.2 Syntax error, command lines must end with CRLF."),
            bad_sequence: r(503, "5.5.1 Bad sequence of commands."),
            need_rcpt: r(503, "5.5.1 RCPT first."),
            no_valid_recipients: r(554, "5.5.1 No valid recipients."),
            unknown_parameter: r(555, "5.5.4 Unsupported MAIL/RCPT parameter."),
            bad_sender: r(
                553,
                "5.1.7 The sender address is not a valid RFC 5321 address.",
            ),
            bad_recipient: r(
                553,
                "5.1.3 The recipient address is not a valid RFC 5321 address.",
            ),
            non_ascii_address: r(553, "5.6.7 Non-ASCII address requires SMTPUTF8."),
            too_large: lines(
                552,
                &[
                    "5.2.3 Your message exceeded Google's message size limits. Please visit",
                    &format!("5.2.3  https://support.google.com/mail/?p=MaxSizeError {t}"),
                ],
            ),
            too_many_recipients: r(
                452,
                "4.5.3 Your message has too many recipients. For more information regarding \
                 Google's sending limits, visit https://support.google.com/mail/?p=TooManyRecipientsError",
            ),
            line_too_long: r(554, "5.6.0 Message rejected: a line is too long."),
            bare_newline: r(554, "5.6.11 Message rejected: bare CR or LF."),
            nul_byte: r(554, "5.6.0 Message rejected: NUL octet in message."),
            must_starttls: r(530, "5.7.0 Must issue a STARTTLS command first."),
            auth_required: lines(
                530,
                &[
                    "5.7.0 Authentication Required. For more information, go to",
                    &format!("5.7.0  https://support.google.com/mail/?p=WantAuthError {t}"),
                ],
            ),
            unknown_mechanism: r(504, "5.7.4 Unrecognized authentication type."),
            already_authenticated: r(503, "5.5.1 Already authenticated."),
            auth_cancelled: r(501, "5.0.0 Authentication cancelled."),
            cannot_decode: r(501, "5.5.2 Syntax error, cannot decode response"),
            auth_line_too_long: r(500, "5.5.6 Authentication exchange line is too long."),
            shutting_down: r(421, "4.7.0 Try again later, closing connection."),
            timeout: r(421, "4.4.2 Timeout, closing connection."),
        }
    }

    /// `235 2.7.0 Accepted`.
    pub fn accepted(&self) -> Reply {
        Reply::new(235, "2.7.0 Accepted")
    }

    /// A wrong password, an unknown user, a bad token.
    pub fn bad_credentials(&self) -> Reply {
        lines(
            535,
            &[
                "5.7.8 Username and Password not accepted. For more information, go to",
                &format!(
                    "5.7.8  https://support.google.com/mail/?p=BadCredentials {}",
                    self.tail()
                ),
            ],
        )
    }

    /// The account password while 2-Step Verification is on.
    pub fn app_password_required(&self) -> Reply {
        lines(
            534,
            &[
                "5.7.9 Application-specific password required. For more information, go to",
                &format!(
                    "5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor {}",
                    self.tail()
                ),
            ],
        )
    }

    /// The JSON of the XOAUTH2 / OAUTHBEARER error challenge.
    pub fn bearer_challenge(&self) -> String {
        format!(r#"{{"status":"401","schemes":"Bearer","scope":"{MAIL_SCOPE}"}}"#)
    }

    /// The daily sending limit is reached.
    pub fn daily_limit(&self) -> Reply {
        lines(
            550,
            &[
                "5.4.5 Daily user sending limit exceeded. For more information on Gmail",
                "5.4.5 sending limits go to",
                &format!(
                    "5.4.5  https://support.google.com/a/answer/166852 {}",
                    self.tail()
                ),
            ],
        )
    }

    /// MAIL accepted.
    pub fn mail_ok(&self) -> Reply {
        Reply::new(250, &format!("2.1.0 OK {}", self.tail()))
    }

    /// RCPT accepted.
    pub fn rcpt_ok(&self) -> Reply {
        Reply::new(250, &format!("2.1.5 OK {}", self.tail()))
    }

    /// The message is stored; `ts` is the Unix time.
    pub fn data_ok(&self, ts: u64) -> Reply {
        Reply::new(250, &format!("2.0.0 OK  {ts} {}", self.tail()))
    }

    /// The mailbox cannot store the message.
    pub fn temporary_failure(&self) -> Reply {
        Reply::new(
            451,
            &format!(
                "4.3.0 Temporary System Problem. Try again later {}",
                self.tail()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_gmails_word_for_word() {
        let g = Gmail {
            id: "h26sm30121397pfq.64".into(),
        };
        assert_eq!(
            g.app_password_required().to_string(),
            "534-5.7.9 Application-specific password required. For more information, go to\n\
             534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h26sm30121397pfq.64 - gsmtp"
        );
        assert_eq!(
            g.bad_credentials().to_string(),
            "535-5.7.8 Username and Password not accepted. For more information, go to\n\
             535 5.7.8  https://support.google.com/mail/?p=BadCredentials h26sm30121397pfq.64 - gsmtp"
        );
        assert_eq!(
            g.daily_limit().to_string(),
            "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\n\
             550-5.4.5 sending limits go to\n\
             550 5.4.5  https://support.google.com/a/answer/166852 h26sm30121397pfq.64 - gsmtp"
        );
        assert_eq!(
            g.data_ok(1700000000).to_string(),
            "250 2.0.0 OK  1700000000 h26sm30121397pfq.64 - gsmtp"
        );
        let c = g.canned();
        assert_eq!(
            c.must_starttls.to_string(),
            "530 5.7.0 Must issue a STARTTLS command first. h26sm30121397pfq.64 - gsmtp"
        );
        assert_eq!(
            c.start_data.to_string(),
            "354  Go ahead h26sm30121397pfq.64 - gsmtp"
        );
    }

    #[test]
    fn session_ids_look_like_googles() {
        let id = session_id();
        let (head, tail) = id.split_once("sm").unwrap();
        assert!(head.len() >= 2 && tail.contains('.'), "{id}");
        assert_ne!(id, session_id());
    }
}
