//! Server settings and the texts of the replies the session makes by itself.

use crate::reply::Reply;
use crate::sasl::Mechanism;

/// Settings of a [`ServerSession`](super::ServerSession).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The server's name: the first word after `220` and after `250` in the
    /// EHLO reply.
    pub hostname: String,
    /// Text after the hostname in the 220 banner, e.g. `ESMTP postie relay`.
    pub greeting: String,
    /// Text after the hostname on the first EHLO line (Gmail: `at your
    /// service`); may be empty.
    pub ehlo_greeting: String,
    /// Largest message in octets, advertised as `SIZE n` (RFC 1870); 0 means
    /// no limit and a bare `SIZE`.
    pub max_message_size: u64,
    /// Accepted recipients per transaction; more get
    /// [`CannedReplies::too_many_recipients`].
    pub max_recipients: usize,
    /// Longest message line in octets including CRLF; RFC 5321
    /// §4.5.3.1.6 says 1000.
    pub max_data_line: usize,
    /// A bare LF in a message body ends the line as if it were CRLF, and is
    /// stored as CRLF, instead of refusing the message. Postfix does the same
    /// (`smtpd_forbid_bare_newline = normalize`): Python's `smtplib.sendmail`
    /// with bytes sends bare LFs, and such programs are what a local relay
    /// serves. Only `CRLF.CRLF` still ends the data, and what is stored has
    /// CRLF line ends only, so nothing can be smuggled to the next hop. A bare
    /// CR is refused either way.
    pub normalize_bare_lf: bool,
    /// Advertise and accept STARTTLS while not yet in TLS (RFC 3207).
    pub starttls: bool,
    /// SASL mechanisms to offer; empty means no AUTH. Only PLAIN, LOGIN,
    /// XOAUTH2 and OAUTHBEARER are implemented; others are not advertised.
    pub auth: Vec<Mechanism>,
    /// Advertise and accept AUTH only once TLS is active (Gmail does so).
    pub auth_requires_tls: bool,
    /// MAIL, RCPT, DATA, BDAT and AUTH before STARTTLS get
    /// [`CannedReplies::must_starttls`].
    pub require_tls: bool,
    /// MAIL without a successful AUTH gets [`CannedReplies::auth_required`].
    pub require_auth: bool,
    /// Advertise and accept SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// MAIL FROM and RCPT TO paths must be in angle brackets, as RFC 5321
    /// §4.1.2 writes them (Gmail: `555 5.5.2 Syntax error`). Off, a path
    /// without them is taken, as Postfix does by default
    /// (`strict_rfc821_envelopes = no`), for hand-written clients.
    pub require_angle_brackets: bool,
    /// Advertise and accept BDAT (CHUNKING and BINARYMIME, RFC 3030).
    pub chunking: bool,
    /// With `chunking`, also advertise and accept `BODY=BINARYMIME`
    /// (RFC 3030 §3). Gmail offers CHUNKING without it.
    pub binarymime: bool,
    /// Texts for the replies the session makes by itself.
    pub replies: CannedReplies,
}

impl ServerConfig {
    /// Defaults for a local submission relay: 25 MiB messages, 100
    /// recipients (RFC 5321 §4.5.3.1.8), 1000-octet lines, SMTPUTF8 and
    /// CHUNKING on, no TLS and no AUTH until the host configures them.
    pub fn new(hostname: &str) -> ServerConfig {
        ServerConfig {
            hostname: hostname.to_owned(),
            greeting: "ESMTP postie".to_owned(),
            ehlo_greeting: "at your service".to_owned(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_data_line: 1000,
            normalize_bare_lf: false,
            starttls: false,
            auth: Vec::new(),
            auth_requires_tls: true,
            require_tls: false,
            require_auth: false,
            smtputf8: true,
            require_angle_brackets: false,
            chunking: true,
            binarymime: true,
            replies: CannedReplies::default(),
        }
    }
}

/// The replies the session sends without asking the host. Every field can
/// be replaced, e.g. with a provider's exact (multi-line) texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedReplies {
    /// NOOP.
    pub ok: Reply,
    /// RSET.
    pub reset: Reply,
    /// QUIT.
    pub bye: Reply,
    /// STARTTLS accepted (RFC 3207 §4).
    pub ready_for_tls: Reply,
    /// DATA accepted: send the message.
    pub start_data: Reply,
    /// HELP.
    pub help: Reply,
    /// VRFY (RFC 5321 §3.5.3: 252 when the server will not verify).
    pub vrfy: Reply,
    /// A verb the session does not know.
    pub unknown_command: Reply,
    /// A known verb that is not offered (EXPN, or STARTTLS, AUTH, BDAT when
    /// not configured).
    pub not_implemented: Reply,
    /// Bad arguments, and NUL or invalid UTF-8 in a command line.
    pub syntax: Reply,
    /// A command line over 512 octets (RFC 5321 §4.5.3.1.4).
    pub command_too_long: Reply,
    /// A command line ended by a bare LF.
    pub command_bare_newline: Reply,
    /// A command out of order (MAIL before EHLO, RCPT before MAIL, …).
    pub bad_sequence: Reply,
    /// DATA, or the last BDAT, when no RCPT was given at all.
    pub need_rcpt: Reply,
    /// DATA, or the last BDAT, when every RCPT was refused.
    pub no_valid_recipients: Reply,
    /// A MAIL or RCPT parameter that is not offered (RFC 5321 §4.1.1.11).
    pub unknown_parameter: Reply,
    /// A MAIL FROM address that does not parse.
    pub bad_sender: Reply,
    /// A RCPT TO address that does not parse.
    pub bad_recipient: Reply,
    /// A UTF-8 address without SMTPUTF8 (RFC 6531 §3.5).
    pub non_ascii_address: Reply,
    /// A message, or its declared SIZE, over the limit (RFC 1870).
    pub too_large: Reply,
    /// More recipients than allowed (RFC 5321 §4.5.3.1.10).
    pub too_many_recipients: Reply,
    /// A message line over the limit.
    pub line_too_long: Reply,
    /// A message with a bare CR or LF.
    pub bare_newline: Reply,
    /// A message with a NUL octet.
    pub nul_byte: Reply,
    /// MAIL, RCPT, DATA or AUTH before STARTTLS (RFC 3207 §4).
    pub must_starttls: Reply,
    /// MAIL before AUTH (RFC 4954 §6).
    pub auth_required: Reply,
    /// AUTH with a mechanism that is not offered (RFC 4954 §6).
    pub unknown_mechanism: Reply,
    /// AUTH again after a successful AUTH (RFC 4954 §4).
    pub already_authenticated: Reply,
    /// The client sent `*` (RFC 4954 §4).
    pub auth_cancelled: Reply,
    /// An AUTH response that is not base64 or not in the mechanism's format.
    pub cannot_decode: Reply,
    /// An AUTH response line over 12288 octets (RFC 4954 §4).
    pub auth_line_too_long: Reply,
    /// The server stops ([`ServerSession::shutdown`](super::ServerSession::shutdown)).
    pub shutting_down: Reply,
    /// The host's command timeout fired.
    pub timeout: Reply,
}

impl Default for CannedReplies {
    fn default() -> CannedReplies {
        let r = Reply::new;
        CannedReplies {
            ok: r(250, "2.0.0 OK"),
            reset: r(250, "2.0.0 OK"),
            bye: r(221, "2.0.0 Bye"),
            ready_for_tls: r(220, "2.0.0 Ready to start TLS"),
            start_data: r(354, "Go ahead, end data with <CR><LF>.<CR><LF>"),
            help: r(214, "2.0.0 See RFC 5321"),
            vrfy: r(
                252,
                "2.1.5 Cannot VRFY user, but will accept message and attempt delivery",
            ),
            unknown_command: r(500, "5.5.1 Unrecognized command"),
            not_implemented: r(502, "5.5.1 Command not implemented"),
            syntax: r(501, "5.5.4 Syntax error in parameters or arguments"),
            command_too_long: r(500, "5.5.2 Line too long"),
            command_bare_newline: r(500, "5.5.2 Syntax error, command lines must end with CRLF"),
            bad_sequence: r(503, "5.5.1 Bad sequence of commands"),
            need_rcpt: r(503, "5.5.1 Need RCPT command first"),
            no_valid_recipients: r(554, "5.5.1 No valid recipients"),
            unknown_parameter: r(555, "5.5.4 Unsupported MAIL/RCPT parameter"),
            bad_sender: r(501, "5.1.7 Bad sender address syntax"),
            bad_recipient: r(501, "5.1.3 Bad recipient address syntax"),
            non_ascii_address: r(553, "5.6.7 Non-ASCII address requires SMTPUTF8"),
            too_large: r(552, "5.3.4 Message size exceeds fixed maximum message size"),
            too_many_recipients: r(452, "4.5.3 Too many recipients"),
            line_too_long: r(
                554,
                "5.6.0 Message rejected: a line is longer than RFC 5321 allows \
                 (1000 octets including CRLF); use quoted-printable or base64",
            ),
            bare_newline: r(
                554,
                "5.6.11 Message rejected: bare CR or LF, lines must end with CRLF",
            ),
            nul_byte: r(554, "5.6.0 Message rejected: NUL octet in message"),
            must_starttls: r(530, "5.7.0 Must issue a STARTTLS command first"),
            auth_required: r(530, "5.7.0 Authentication required"),
            unknown_mechanism: r(504, "5.5.4 Unrecognized authentication type"),
            already_authenticated: r(503, "5.5.1 Already authenticated"),
            auth_cancelled: r(501, "5.0.0 Authentication cancelled"),
            cannot_decode: r(501, "5.5.2 Syntax error, cannot decode response"),
            auth_line_too_long: r(500, "5.5.6 Authentication exchange line is too long"),
            shutting_down: r(
                421,
                "4.3.2 Service shutting down, closing transmission channel",
            ),
            timeout: r(421, "4.4.2 Timeout, closing transmission channel"),
        }
    }
}
