//! Sending one claimed message through the sending core, over the account's
//! pooled session.

use postie::blocking::unblock;
use postie::error::{Error, ErrorKind, Result};
use postie::mailer::{Account, SendReport};
use postie::message::{Body, OutgoingMessage, ascii_domain};
use postie_proto::address::Address;

use super::Inner;
use crate::outbox::{Claim, StoredBody};

impl Inner {
    /// Send `claim` through `account`, on the account's idle connection
    /// when there is one (the session reconnects when the server had
    /// dropped it before taking any part of the message, and never sends a
    /// message twice), else on a new one.
    pub(super) async fn send(&self, account: &Account, claim: &Claim) -> Result<SendReport> {
        let msg = outgoing(account, claim).await?;
        let mut session = self.pool.session(account);
        let report = session.send(&msg).await;
        self.pool.put(session);
        report
    }
}

/// The claimed message as the transport sends it: a body in a file is read
/// while it is sent, never whole; a small one came with its row.
async fn outgoing(account: &Account, claim: &Claim) -> Result<OutgoingMessage> {
    let (eight_bit, id) = (claim.eight_bit, claim.id);
    let body = match &claim.body {
        StoredBody::Row(bytes) => Body::from_bytes(bytes.to_vec()),
        StoredBody::File(path) => {
            let path = path.clone();
            unblock(move || {
                Body::from_file(&path, Some(eight_bit)).map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot read message {id}: {}", e.message()),
                    )
                })
            })
            .await?
        }
    };
    let from_text = claim
        .mail_from
        .as_deref()
        .or(account.email.as_deref())
        .unwrap_or("");
    let from_ascii = ascii_domain(from_text).unwrap_or_else(|_| from_text.to_string());
    let from = Address::new(&from_ascii).map_err(|e| {
        Error::new(
            ErrorKind::Message,
            format!(
                "message {}: the sender <{from_text}> is not valid: {e}",
                claim.id
            ),
        )
    })?;
    let recipients = claim
        .recipients
        .iter()
        .map(|r| {
            // An IDN domain goes out in A-labels, without SMTPUTF8; the
            // outcome is recorded under the address as it was queued.
            let ascii = ascii_domain(r).unwrap_or_else(|_| r.clone());
            Address::new(&ascii).map_err(|e| {
                Error::new(
                    ErrorKind::Message,
                    format!(
                        "message {}: the recipient <{r}> is not valid: {e}",
                        claim.id
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(OutgoingMessage {
        body,
        from,
        recipients,
        message_id: String::new(),
    })
}
