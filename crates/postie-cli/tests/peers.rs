//! Black-box tests of the `postie` binary against real, independently written mail servers on
//! 127.0.0.1: Python's aiosmtpd, Nodemailer's smtp-server and Postfix (+ Cyrus SASL), plus
//! aiosmtpd replaying Gmail's dialogue and aiosmtpd with broken certificates.
//!
//! The servers come from `ci/mail-peers.sh` (run by `ci/test.sh`), which writes their ports and
//! spools to `$MAIL_PEERS_DIR/env`. Every assertion about a message is made on what the server
//! stored, never on postie's own report alone. Set `POSTIE_BIN` to test another build.

#[path = "peers/accounts.rs"]
mod accounts;
#[path = "peers/bulk.rs"]
mod bulk;
#[path = "peers/delivery.rs"]
mod delivery;
#[path = "peers/demo.rs"]
mod demo;
#[path = "peers/doctor.rs"]
mod doctor;
#[path = "peers/durability.rs"]
mod durability;
#[path = "peers/exit_codes.rs"]
mod exit_codes;
#[path = "peers/gmail.rs"]
mod gmail;
#[path = "peers/hostile.rs"]
mod hostile;
#[path = "peers/inputs.rs"]
mod inputs;
#[path = "peers/many.rs"]
mod many;
#[path = "peers/netns.rs"]
mod netns;
#[path = "peers/oauth.rs"]
mod oauth;
#[path = "peers/relay.rs"]
mod relay;
#[path = "peers/relay_clients.rs"]
mod relay_clients;
#[path = "peers/relay_support.rs"]
mod relay_support;
#[path = "peers/sandbox.rs"]
mod sandbox;
#[path = "peers/secrets.rs"]
mod secrets;
#[path = "peers/shared_outbox.rs"]
mod shared_outbox;
#[path = "peers/spool.rs"]
mod spool;
#[path = "peers/support.rs"]
mod support;
#[path = "peers/tls.rs"]
mod tls;
