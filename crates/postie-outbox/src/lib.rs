//! postie's durable queue and the two fronts around it: the local relay that
//! fills it and the delivery workers that empty it.
//!
//! - [`outbox`]: the durable queue: spooled bodies, leases, retries (SQLite,
//!   the only crate of postie that links it).
//! - [`relay`]: the local SMTP relay for programs that cannot do modern auth;
//!   it answers 250 only once a message is committed to the outbox.
//! - [`delivery`]: workers that claim due messages and send them upstream
//!   through the sending core (`postie::send`), recording each reply.

#![deny(missing_docs)]

pub mod delivery;
pub mod outbox;
pub mod relay;
