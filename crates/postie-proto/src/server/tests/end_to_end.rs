//! The crate's own client against the server, bytes pumped in memory.

use crate::address::{Address, Domain};
use crate::client::{self, ClientConfig, ClientSession, Envelope, TlsMode};
use crate::sasl::Credentials;

use super::*;

const BODY: &[u8] =
    b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n\r\n. space\r\nlast\r\n";

/// Runs one message from client to server; returns what the server's host
/// collected and the client's result.
fn deliver(chunking: bool) -> (Vec<u8>, client::TransactionResult, Vec<String>) {
    let mut ccfg = ClientConfig::new(Domain::new("client.example").unwrap());
    ccfg.tls = TlsMode::None;
    ccfg.allow_plaintext_auth = true;
    ccfg.chunking = chunking;
    ccfg.credentials = Some(Credentials::Password {
        username: "user".into(),
        password: "secret".to_string().into(),
    });
    let mut scfg = cfg();
    scfg.auth = vec![Mechanism::Plain, Mechanism::Login];
    scfg.auth_requires_tls = false;
    scfg.require_auth = true;
    scfg.chunking = chunking;
    let mut c = ClientSession::new(ccfg);
    let mut s = ServerSession::new(scfg, false);

    let mut body = Vec::new();
    let mut log = Vec::new();
    let mut result = None;
    let mut started = false;
    for _ in 0..1000 {
        let mut progressed = false;
        if let Some(b) = s.poll_transmit() {
            c.handle_input(&b).unwrap();
            progressed = true;
        }
        while let Some(e) = c.poll_event() {
            progressed = true;
            match e {
                client::Event::Ready if !started => {
                    started = true;
                    let env = Envelope::new(
                        Some(Address::new("a@client.example").unwrap()),
                        vec![
                            Address::new("b@mx.example").unwrap(),
                            Address::new("c@mx.example").unwrap(),
                        ],
                    );
                    c.start_transaction(env, Some(BODY.len() as u64), BodyType::SevenBit)
                        .unwrap();
                }
                client::Event::BodyWanted => {
                    let (a, b) = BODY.split_at(20);
                    c.write_body(a, false).unwrap();
                    c.write_body(b, true).unwrap();
                }
                client::Event::TransactionDone(r) => {
                    result = Some(r);
                    c.quit();
                }
                client::Event::Failed(e) => panic!("client failed: {e}"),
                _ => {}
            }
        }
        if let Some(b) = c.poll_transmit() {
            s.handle_input(&b);
            progressed = true;
        }
        while let Some(e) = s.poll_event() {
            progressed = true;
            if let Event::Data(d) = &e {
                body.extend_from_slice(d);
            } else {
                log.push(describe(&e));
            }
            match e {
                Event::Auth(_) => s.auth_result(AuthOutcome::Accepted(reply("235 2.7.0 Accepted"))),
                Event::MailFrom(_) => s.decide(reply("250 2.1.0 OK")),
                Event::RcptTo(_) => s.decide(reply("250 2.1.5 OK")),
                Event::DataEnd(_) => s.decide(reply("250 2.0.0 OK queued")),
                _ => {}
            }
        }
        if !progressed {
            break;
        }
    }
    assert!(s.is_closed() && c.is_closed());
    (body, result.expect("transaction done"), log)
}

#[test]
fn client_and_server_agree_over_data() {
    let (body, result, log) = deliver(false);
    assert!(result.is_delivered(), "{result:?}");
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(BODY)
    );
    assert_eq!(
        log,
        [
            "EHLO client.example",
            "AUTH PLAIN None user secret",
            &format!("MAIL a@client.example Some({}) SevenBit false", BODY.len()),
            "RCPT b@mx.example",
            "RCPT c@mx.example",
            &format!("END {} false SevenBit", BODY.len()),
            "QUIT",
        ]
    );
}

#[test]
fn client_and_server_agree_over_bdat() {
    let (body, result, log) = deliver(true);
    assert!(result.is_delivered(), "{result:?}");
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(BODY)
    );
    assert!(log.contains(&format!("END {} false SevenBit", BODY.len())));
}
