//! Opening an upstream connection for an account with its own credentials,
//! and sending one claimed message over it.

use std::sync::Arc;

use postie_proto::address::Address;
use postie_proto::client::TransactionResult;
use postie_proto::error::Stage;
use postie_proto::sasl::Credentials;

use super::Inner;
use crate::outbox::Claim;
use postie::config::AccountConfig;
use postie::error::{Error, ErrorKind, Result};
use postie::message::OutgoingMessage;
use postie::provider::AuthMethod;
use postie::secret::{PasswordSource, SecretStore, normalize_app_password};
use postie::transport::{ConnectOptions, Connection};

impl Inner {
    /// Send `claim` through `account`: over a pooled connection when one is
    /// open (retried once on a new connection if the server had dropped the
    /// idle one), else a new one.
    pub(super) async fn send(
        &self,
        account: &str,
        acct: &AccountConfig,
        claim: &Claim,
    ) -> Result<TransactionResult> {
        let msg = outgoing(acct, claim).await?;
        if let Some(mut conn) = self.pool.take(account) {
            match conn.send(&msg).await {
                Ok(r) => {
                    self.pool.put(account, conn);
                    return Ok(r);
                }
                // The server dropped the idle connection before taking
                // any part of the transaction: send again on a new one.
                // A failure later (after RCPT, DATA or the final dot) may
                // have delivered the message; it is left to the outbox's
                // retry rules, never re-sent here.
                Err(e)
                    if e.is_transient() && matches!(e.stage(), Some(Stage::Idle | Stage::Mail)) =>
                {
                    tracing::debug!(
                        "pooled connection for {account} failed ({}); reconnecting",
                        e.message()
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.connect(account, acct).await?;
        let r = conn.send(&msg).await?;
        if conn.is_reusable() {
            self.pool.put(account, conn);
        } else {
            conn.quit().await;
        }
        Ok(r)
    }

    /// Connect and authenticate as `account`. An OAuth token the server
    /// refuses is refreshed once and AUTH retried on a new connection, as
    /// `postie send` does.
    async fn connect(&self, name: &str, acct: &AccountConfig) -> Result<Connection> {
        let mut opts = ConnectOptions::new(acct.endpoint()?);
        opts.mechanism = acct.mechanism()?;
        if acct.auth != AuthMethod::Oauth {
            let password = match acct.password_source(name) {
                PasswordSource::Store(key) => stored(&(self.store)()?, &key)?,
                other => other.resolve(&mut || {
                    Err(Error::new(ErrorKind::Secret, "no secret store needed"))
                })?,
            };
            opts.credentials = Some(Credentials::Password {
                username: acct.login().to_string(),
                password: normalize_app_password(&password),
            });
            return Connection::connect(opts).await;
        }
        let store = (self.store)()?;
        let refreshing =
            || tracing::info!("{name}: the server refused the access token; refreshing it once");
        self.tokens
            .with_bearer(name, acct, &store, refreshing, |creds| {
                let mut o = opts.clone();
                o.credentials = Some(creds);
                Connection::connect(o)
            })
            .await
    }
}

fn stored(store: &Arc<SecretStore>, key: &str) -> Result<secrecy::SecretString> {
    store.get(key)?.ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!(
                "no password is stored for account '{key}' in {}: run `postie account add {key} ...` \
                 again, or set password_env / password_command for it",
                store.describe()
            ),
        )
    })
}

/// The claimed message as the transport sends it. The body is read whole:
/// the relay limits messages to the upstream's SIZE (35 MB by default).
async fn outgoing(acct: &AccountConfig, claim: &Claim) -> Result<OutgoingMessage> {
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
    let from_text = claim.mail_from.as_deref().unwrap_or(&acct.email);
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
