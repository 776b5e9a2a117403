//! What happened to one message: the server's replies, per recipient, and
//! the overall outcome.

use postie_proto::client::TransactionResult;
use postie_proto::reply::Reply;
use serde::Serialize;

use crate::config::Transport;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::message::OutgoingMessage;
use crate::provider::TlsMode;
use crate::transport::{Connection, TlsInfo, classify};

/// Overall outcome of a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every recipient was accepted and the message was taken.
    Sent,
    /// The message was taken for some recipients; others were refused.
    Partial,
    /// Nobody will get the message.
    Failed,
}

/// What happened to one recipient.
#[derive(Clone, Debug, Serialize)]
pub struct RecipientReport {
    /// The address.
    pub address: String,
    /// True when the server took the message for this recipient.
    pub accepted: bool,
    /// The reply code (the RCPT reply, or the final reply when it was refused after DATA).
    pub code: u16,
    /// Enhanced status code, e.g. `2.1.5`.
    pub enhanced: Option<String>,
    /// The reply text, all lines.
    pub text: String,
    /// The reply itself.
    #[serde(skip)]
    pub reply: Reply,
}

/// The report of one send.
#[derive(Clone, Debug, Serialize)]
pub struct SendReport {
    /// `host:port` of the server.
    pub server: String,
    /// The TLS mode used.
    pub tls: TlsMode,
    /// TLS details.
    pub tls_info: Option<TlsInfo>,
    /// The SASL mechanism used, if any.
    pub auth: Option<String>,
    /// The message's Message-ID.
    pub message_id: String,
    /// Message size in bytes.
    pub size: usize,
    /// Per-recipient outcome.
    pub recipients: Vec<RecipientReport>,
    /// The reply to MAIL FROM when it was refused, else the final reply
    /// after the message data.
    #[serde(skip)]
    pub reply: Option<Reply>,
    /// Overall outcome.
    pub status: Status,
    /// True when the server refused the account's access token first, and
    /// the message went out after postie refreshed it.
    pub token_refreshed: bool,
    /// How it went out: `smtp`, `gmail-api` or `graph`.
    pub transport: Transport,
    /// Every reply of the transaction, as the session saw them.
    #[serde(skip)]
    pub transaction: TransactionResult,
}

impl SendReport {
    /// The report of transaction `r` of `msg`, sent over `conn` to `endpoint`.
    pub fn new(
        endpoint: &Endpoint,
        conn: &Connection,
        msg: &OutgoingMessage,
        r: TransactionResult,
    ) -> SendReport {
        let auth = conn.mechanism().map(|m| m.to_string());
        SendReport::build(endpoint, conn.tls_info().cloned(), auth, msg, r)
    }

    /// The report of `msg` taken by an HTTPS API (`transport`, at `server`)
    /// with HTTP `status`: every recipient accepted, as the service says
    /// (which, like an SMTP 250, promises no delivery).
    pub fn accepted_by_api(
        transport: Transport,
        server: String,
        tls: TlsMode,
        msg: &OutgoingMessage,
        status: u16,
        id: Option<&str>,
    ) -> SendReport {
        let service = match transport {
            Transport::Graph => "Microsoft Graph",
            _ => "the Gmail API",
        };
        let text = match id {
            Some(id) => format!("accepted by {service} (id {id})"),
            None => format!("accepted by {service}"),
        };
        let reply = Reply::new(status, &text);
        let recipients: Vec<RecipientReport> = msg
            .recipients
            .iter()
            .map(|a| RecipientReport {
                address: a.to_string(),
                accepted: true,
                code: status,
                enhanced: None,
                text: text.clone(),
                reply: reply.clone(),
            })
            .collect();
        SendReport {
            server,
            tls,
            tls_info: None,
            auth: Some("Bearer".into()),
            message_id: msg.message_id.clone(),
            size: msg.body.wire_len() as usize,
            transaction: TransactionResult {
                mail: reply.clone(),
                recipients: msg
                    .recipients
                    .iter()
                    .map(|a| postie_proto::client::RecipientResult {
                        address: a.clone(),
                        reply: Some(reply.clone()),
                        accepted: true,
                    })
                    .collect(),
                data: Some(reply.clone()),
            },
            recipients,
            reply: Some(reply),
            status: Status::Sent,
            token_refreshed: false,
            transport,
        }
    }

    /// [`SendReport::new`] from the connection's TLS details and mechanism,
    /// taken before the connection was given up (a send that ended with
    /// QUIT).
    pub(crate) fn build(
        endpoint: &Endpoint,
        tls_info: Option<crate::transport::TlsInfo>,
        auth: Option<String>,
        msg: &OutgoingMessage,
        r: TransactionResult,
    ) -> SendReport {
        let data_ok = r.data.as_ref().is_some_and(|d| d.is_positive());
        let mail_ok = r.mail.is_positive();
        let recipients: Vec<RecipientReport> = r
            .recipients
            .iter()
            .map(|rc| {
                // A recipient accepted at RCPT still misses the message when
                // the data phase failed: report the final reply for it.
                let (accepted, reply) = match (&rc.reply, &r.data) {
                    // MAIL was refused: the refusal is every recipient's,
                    // whatever a pipelined RCPT got back (503 bad sequence,
                    // which says nothing; Gmail's daily limit is a 550
                    // 5.4.5 at MAIL).
                    _ if !mail_ok => (false, r.mail.clone()),
                    (Some(_), Some(d)) if rc.accepted && !data_ok => (false, d.clone()),
                    (Some(rr), _) => (rc.accepted && data_ok, rr.clone()),
                    (None, _) => (false, r.mail.clone()),
                };
                let reply = &reply;
                RecipientReport {
                    address: rc.address.to_string(),
                    accepted,
                    code: reply.code,
                    enhanced: reply.enhanced.map(|e| e.to_string()),
                    text: reply.text(),
                    reply: reply.clone(),
                }
            })
            .collect();
        let accepted = recipients.iter().filter(|r| r.accepted).count();
        let status = if accepted == 0 {
            Status::Failed
        } else if accepted == recipients.len() {
            Status::Sent
        } else {
            Status::Partial
        };
        let reply = if mail_ok {
            r.data.clone()
        } else {
            Some(r.mail.clone())
        };
        SendReport {
            server: endpoint.authority(),
            tls: endpoint.tls,
            tls_info,
            auth,
            message_id: msg.message_id.clone(),
            size: msg.body.wire_len() as usize,
            recipients,
            reply,
            status,
            token_refreshed: false,
            transaction: r,
            transport: Transport::Smtp,
        }
    }

    /// When the whole message failed, the error that explains it: the MAIL
    /// or final reply, or the first refused recipient's.
    pub fn failure(&self) -> Option<Error> {
        if self.status == Status::Sent {
            return None;
        }
        let reply = match &self.reply {
            Some(r) if !r.is_positive() => r.clone(),
            _ => self.recipients.iter().find(|r| !r.accepted)?.reply.clone(),
        };
        let kind = classify(&reply, None);
        Some(
            Error::new(
                kind,
                format!(
                    "{} refused the message: {}",
                    self.server,
                    reply.text().replace('\n', " ")
                ),
            )
            .with_reply(reply),
        )
    }
}
