//! The SMTP protocol core of postie, client and server side, without I/O.
//!
//! Bytes go in, events and bytes come out; nothing here opens a socket or
//! reads a clock, so every behaviour can be tested in memory.
//!
//! | Module | What it holds |
//! |---|---|
//! | [`reply`] | [`Reply`](reply::Reply), enhanced status codes, the incremental reply parser |
//! | [`address`] | [`Address`](address::Address) and [`Domain`](address::Domain), validated |
//! | [`command`] | [`Command`](command::Command): wire encoding and redacted transcript form |
//! | [`capability`] | EHLO keywords as [`Capabilities`](capability::Capabilities) |
//! | [`data`] | Dot-stuffing and CRLF normalisation for message bodies, streaming |
//! | [`sasl`] | PLAIN, LOGIN, XOAUTH2, OAUTHBEARER as step functions |
//! | [`client`] | [`ClientSession`](client::ClientSession), the state machine |
//! | [`server`] | [`ServerSession`](server::ServerSession), the receiving side's state machine |
//! | [`error`] | [`SessionError`](error::SessionError) and [`Stage`](error::Stage) |
//!
//! # Example
//!
//! A whole session against a scripted server:
//!
//! ```
//! use postie_proto::address::{Address, Domain};
//! use postie_proto::client::{BodyType, ClientConfig, ClientSession, Envelope, Event, TlsMode};
//!
//! let mut cfg = ClientConfig::new(Domain::new("client.example").unwrap());
//! cfg.tls = TlsMode::None;
//! let mut s = ClientSession::new(cfg);
//!
//! s.handle_input(b"220 mx.example ESMTP\r\n").unwrap();
//! assert_eq!(s.poll_transmit().unwrap(), b"EHLO client.example\r\n");
//! s.handle_input(b"250-mx.example\r\n250 PIPELINING\r\n").unwrap();
//!
//! let env = Envelope::new(
//!     Some(Address::new("a@client.example").unwrap()),
//!     vec![Address::new("b@mx.example").unwrap()],
//! );
//! s.start_transaction(env, Some(5), BodyType::SevenBit).unwrap();
//! assert_eq!(
//!     s.poll_transmit().unwrap(),
//!     b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n"
//! );
//! s.handle_input(b"250 ok\r\n250 ok\r\n354 go ahead\r\n").unwrap();
//! s.write_body(b"Hi\n.\n", true).unwrap();
//! assert_eq!(s.poll_transmit().unwrap(), b"Hi\r\n..\r\n.\r\n");
//! s.handle_input(b"250 2.0.0 queued\r\n").unwrap();
//!
//! let done = std::iter::from_fn(|| s.poll_event()).find_map(|e| match e {
//!     Event::TransactionDone(r) => Some(r),
//!     _ => None,
//! });
//! assert!(done.unwrap().is_delivered());
//! ```

#![deny(missing_docs)]

pub mod address;
pub mod capability;
pub mod client;
pub mod command;
pub mod data;
pub mod error;
pub mod reply;
pub mod sasl;
pub mod server;
