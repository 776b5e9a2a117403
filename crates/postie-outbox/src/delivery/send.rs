//! Sending one claimed message through the sending core, over the account's
//! pooled session.

use postie::error::{Error, ErrorKind, Result};
use postie::mailer::{Account, SendReport};
use postie::message::OutgoingMessage;
use postie_proto::address::Address;

use super::Inner;
use crate::outbox::Claim;

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

/// The claimed message as the transport sends it. The body is read whole:
/// the relay limits messages to the upstream's SIZE (35 MB by default).
async fn outgoing(account: &Account, claim: &Claim) -> Result<OutgoingMessage> {
    let bytes = tokio::fs::read(&claim.body_path).await.map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!(
                "cannot read message {} from {}: {e}",
                claim.id,
                claim.body_path.display()
            ),
        )
    })?;
    let from_text = claim
        .mail_from
        .as_deref()
        .or(account.email.as_deref())
        .unwrap_or("");
    let from = Address::new(from_text).map_err(|e| {
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
            Address::new(r).map_err(|e| {
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
        bytes,
        from,
        recipients,
        message_id: String::new(),
    })
}
