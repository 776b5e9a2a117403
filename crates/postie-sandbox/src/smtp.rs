//! The sandbox's SMTP decisions, as Gmail makes them: app passwords yes,
//! the account password no (2-Step Verification), bearer tokens from the
//! sandbox's own authorization server, a daily sending limit, and every
//! accepted message into the mailbox.

use std::net::SocketAddr;
use std::sync::Arc;

use postie_proto::reply::Reply;
use postie_proto::server::{
    AuthIdentity, AuthOutcome, AuthRequest, DataSummary, MailRequest, RcptRequest, ServerSession,
};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use postie::blocking::unblock;
use postie::wording::{Setting, say_setting};

use super::Shared;
use super::gmail::{Gmail, MAIL_SCOPE};
use super::mailbox::Envelope;
use super::tokens::AccessCheck;
use postie_server::{ConnSettings, Host, Io, drive};

/// A day, for the rolling sending limit (provider-facts §5).
const DAY: u64 = 24 * 3600;

/// Serves one SMTP client; `io` is already TLS on the implicit-TLS port.
pub(crate) async fn serve(
    io: Io,
    peer: SocketAddr,
    shared: Arc<Shared>,
    settings: Arc<ConnSettings>,
    shutdown: watch::Receiver<bool>,
) {
    let tls = matches!(io, Io::Tls(_));
    let gmail = Gmail::new();
    let session = ServerSession::new(gmail.server_config(&peer), tls);
    let mut conn = SandboxConn {
        shared,
        gmail,
        user: None,
        txn: None,
    };
    drive(io, peer, session, &mut conn, &settings, shutdown).await;
}

struct Txn {
    mail_from: Option<String>,
    recipients: Vec<String>,
    data: Vec<u8>,
}

struct SandboxConn {
    shared: Arc<Shared>,
    gmail: Gmail,
    /// The authenticated user and the mechanism used.
    user: Option<(String, String)>,
    txn: Option<Txn>,
}

impl SandboxConn {
    fn password(&self, username: &str, password: &str) -> Result<String, Reply> {
        let Some(u) = self.shared.user(username) else {
            return Err(self.gmail.bad_credentials());
        };
        if u.is_app_password(password) {
            Ok(u.email.clone())
        } else if u.password == password && u.two_step_verification {
            Err(self.gmail.app_password_required())
        } else {
            Err(self.gmail.bad_credentials())
        }
    }
}

impl Host for SandboxConn {
    async fn auth(&mut self, req: AuthRequest) -> AuthOutcome {
        let mechanism = req.mechanism.name();
        let found = match &req.identity {
            AuthIdentity::Password {
                username, password, ..
            } => self
                .password(username, password.expose_secret())
                .map_err(AuthOutcome::Rejected),
            AuthIdentity::Bearer { user, token, .. } => {
                let now = self.shared.now();
                let check =
                    self.shared
                        .grants()
                        .check_access(token.expose_secret(), user, MAIL_SCOPE, now);
                match check {
                    AccessCheck::Valid { user } => Ok(user),
                    // RFC 7628 §3.2.2 / Google's XOAUTH2: the JSON error as a
                    // 334 challenge, then 535 once the client answered it.
                    AccessCheck::Invalid => Err(AuthOutcome::BearerError {
                        challenge: self.gmail.bearer_challenge(),
                        then: self.gmail.bad_credentials(),
                    }),
                }
            }
        };
        match found {
            Ok(user) => {
                tracing::info!("sandbox: {user} authenticated with {mechanism}");
                self.user = Some((user, mechanism));
                AuthOutcome::Accepted(self.gmail.accepted())
            }
            Err(outcome) => {
                tracing::info!(
                    "sandbox: {mechanism} refused for {}",
                    req.identity.user().chars().take(64).collect::<String>()
                );
                outcome
            }
        }
    }

    async fn mail(&mut self, req: MailRequest) -> Reply {
        let Some((user, _)) = &self.user else {
            // The session asks for AUTH first; this is only a safety net.
            return self.gmail.bad_credentials();
        };
        let now = self.shared.now();
        let (shared, who) = (self.shared.clone(), user.clone());
        let counted =
            unblock(move || shared.mailbox.sent_since(&who, now.saturating_sub(DAY))).await;
        let mailbox = &self.shared.mailbox;
        let sent = match counted {
            Ok(n) => n,
            Err(e) => {
                // Without the count the limit cannot be applied: a temporary
                // failure, not an unlimited day.
                tracing::error!(
                    "sandbox: cannot count {user}'s messages of the last 24 hours: {}",
                    e.message()
                );
                return self.gmail.temporary_failure();
            }
        };
        if sent >= self.shared.daily_limit as usize {
            tracing::info!(
                "sandbox: {user} reached the daily limit ({sent} messages in the last 24 hours, \
                 limit {}): raise it with {}, or clear {}",
                self.shared.daily_limit,
                say_setting(Setting::SandboxDailyLimit),
                mailbox.dir().display()
            );
            return self.gmail.daily_limit();
        }
        self.txn = Some(Txn {
            mail_from: req.reverse_path.map(|a| a.to_string()),
            recipients: Vec::new(),
            data: Vec::new(),
        });
        self.gmail.mail_ok()
    }

    fn rcpt(&mut self, req: RcptRequest) -> Reply {
        if let Some(t) = self.txn.as_mut() {
            t.recipients.push(req.forward_path.to_string());
        }
        self.gmail.rcpt_ok()
    }

    async fn data(&mut self, bytes: &[u8]) {
        if let Some(t) = self.txn.as_mut() {
            t.data.extend_from_slice(bytes);
        }
    }

    async fn data_end(&mut self, _summary: DataSummary) -> Reply {
        let (Some(t), Some((user, mechanism))) = (self.txn.take(), self.user.clone()) else {
            return self.gmail.temporary_failure();
        };
        let env = Envelope {
            user,
            mechanism,
            mail_from: t.mail_from,
            recipients: t.recipients,
        };
        let shared = self.shared.clone();
        let now = shared.now();
        let stored = unblock(move || shared.mailbox.store(env, &t.data, now)).await;
        match stored {
            Ok(m) => {
                tracing::info!(
                    "sandbox: message {} from {} to {} stored",
                    m.id,
                    m.user,
                    m.recipients.join(", ")
                );
                self.gmail.data_ok(now)
            }
            Err(e) => {
                tracing::error!("sandbox: cannot store a message: {}", e.message());
                self.gmail.temporary_failure()
            }
        }
    }

    fn reset(&mut self) {
        self.txn = None;
    }

    fn tls_started(&mut self) {
        self.txn = None;
        self.user = None;
    }
}
