//! A scripted server: feeds replies, checks transmissions, collects events.

use postie_proto::address::{Address, Domain};
use postie_proto::client::{
    ClientConfig, ClientSession, Direction, Envelope, Event, TlsMode, TranscriptLine,
};
use postie_proto::sasl::Credentials;

/// smtp.gmail.com:587 before STARTTLS (provider-facts §1.1).
pub const GMAIL_EHLO_PLAIN: &str = "250-smtp.gmail.com at your service, [203.0.113.9]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";
/// smtp.gmail.com after STARTTLS.
pub const GMAIL_EHLO_TLS: &str = "250-smtp.gmail.com at your service, [203.0.113.9]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";
/// smtp.office365.com after STARTTLS.
pub const MICROSOFT_EHLO_TLS: &str = "250-SN4PR0201CA0040.outlook.office365.com Hello [203.0.113.9]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH LOGIN XOAUTH2\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";

pub const PASSWORD: &str = "hunter2-S3CRET-pw";
/// A Gmail-style user token: short enough for the initial response.
pub const TOKEN: &str = "ya29.a0AfB_byC-S3CRET-token-9xQ";

pub struct Peer {
    pub s: ClientSession,
    /// Every event so far, transcript included.
    pub log: Vec<Event>,
    taken: usize,
}

impl Peer {
    pub fn new(cfg: ClientConfig) -> Peer {
        Peer {
            s: ClientSession::new(cfg),
            log: Vec::new(),
            taken: 0,
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.s.poll_event() {
            self.log.push(e);
        }
    }

    /// The server sends `wire`.
    pub fn recv(&mut self, wire: &str) -> &mut Peer {
        self.recv_bytes(wire.as_bytes())
    }

    pub fn recv_bytes(&mut self, wire: &[u8]) -> &mut Peer {
        self.s.handle_input(wire).expect("well-formed input");
        self.drain();
        self
    }

    /// Everything the client has queued since the last check is exactly
    /// `wire`, in one transmit.
    #[track_caller]
    pub fn sent(&mut self, wire: &str) -> &mut Peer {
        let got = self.s.poll_transmit().unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&got), wire);
        self.drain();
        self
    }

    #[track_caller]
    pub fn sent_bytes(&mut self) -> Vec<u8> {
        self.s.poll_transmit().unwrap_or_default()
    }

    #[track_caller]
    pub fn sent_nothing(&mut self) -> &mut Peer {
        let got = self.s.poll_transmit();
        assert!(
            got.is_none(),
            "unexpected transmit: {:?}",
            got.map(|g| String::from_utf8_lossy(&g).into_owned())
        );
        self
    }

    /// Non-transcript events since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        self.drain();
        let new = self.log[self.taken..]
            .iter()
            .filter(|e| !matches!(e, Event::Transcript(_)))
            .cloned()
            .collect();
        self.taken = self.log.len();
        new
    }

    /// The transcript so far.
    pub fn transcript(&self) -> Vec<TranscriptLine> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::Transcript(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// The transcript lines sent by the client.
    pub fn sent_lines(&self) -> Vec<String> {
        self.transcript()
            .into_iter()
            .filter(|t| t.dir == Direction::Sent)
            .map(|t| t.text)
            .collect()
    }

    /// Greeting and EHLO without TLS, up to Ready.
    pub fn ready_plain(ehlo: &str) -> Peer {
        let mut p = Peer::new(cfg(TlsMode::None));
        p.recv("220 mx.example ESMTP\r\n")
            .sent("EHLO client.example\r\n")
            .recv(ehlo);
        assert_eq!(p.events().last(), Some(&Event::Ready));
        p
    }

    /// Gmail on 587 up to the second EHLO reply, with `creds`.
    pub fn gmail_after_starttls(creds: Option<Credentials>) -> Peer {
        let mut c = cfg(TlsMode::StartTls);
        c.credentials = creds;
        c.server_host = "smtp.gmail.com".into();
        let mut p = Peer::new(c);
        p.recv("220 smtp.gmail.com ESMTP h26sm - gsmtp\r\n")
            .sent("EHLO client.example\r\n")
            .recv(GMAIL_EHLO_PLAIN)
            .sent("STARTTLS\r\n")
            .recv("220 2.0.0 Ready to start TLS\r\n");
        assert!(p.events().contains(&Event::StartTls));
        p.s.tls_established();
        p.sent("EHLO client.example\r\n").recv(GMAIL_EHLO_TLS);
        p
    }

    /// Asserts no transcript line contains any of `secrets`, nor any event's
    /// `Debug` form.
    #[track_caller]
    pub fn assert_no_secret(&self, secrets: &[&str]) {
        for e in &self.log {
            let shown = format!("{e:?}");
            for s in secrets {
                assert!(!shown.contains(s), "secret {s:?} in {shown}");
            }
        }
    }
}

pub fn cfg(tls: TlsMode) -> ClientConfig {
    let mut c = ClientConfig::new(Domain::new("client.example").unwrap());
    c.tls = tls;
    c
}

pub fn password() -> Credentials {
    Credentials::Password {
        username: "me@example.com".into(),
        password: PASSWORD.into(),
    }
}

pub fn bearer(token: &str) -> Credentials {
    Credentials::Bearer {
        user: "me@example.com".into(),
        token: token.into(),
    }
}

pub fn addr(s: &str) -> Address {
    Address::new(s).unwrap()
}

pub fn envelope(to: &[&str]) -> Envelope {
    Envelope::new(
        Some(addr("me@example.com")),
        to.iter().map(|a| addr(a)).collect(),
    )
}

/// The TransactionDone result among `events`.
#[track_caller]
pub fn done(events: &[Event]) -> postie_proto::client::TransactionResult {
    events
        .iter()
        .find_map(|e| match e {
            Event::TransactionDone(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a TransactionDone event")
}

/// The Failed error among `events`.
#[track_caller]
pub fn failed(events: &[Event]) -> postie_proto::client::SessionError {
    events
        .iter()
        .find_map(|e| match e {
            Event::Failed(err) => Some(err.clone()),
            _ => None,
        })
        .expect("a Failed event")
}
