//! One message with lettre's blocking transport, as a small program using lettre would send it:
//! for the cold-start and memory figures beside `postie send`.
//!
//! ```text
//! lettre-send --port 19587 --ca ca.pem --user alice@provider.test --password-env VAR (--raw FILE | --attach FILE)
//! ```
//!
//! STARTTLS to 127.0.0.1, the certificate verified for `localhost` against `--ca` only.

use std::collections::HashMap;

use anyhow::{Context, bail};
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

const FROM: &str = "alice@example.test";
const TO: &str = "bob@example.test";

fn main() -> anyhow::Result<()> {
    let mut args = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let Some(k) = k.strip_prefix("--") else {
            bail!("unexpected argument {k:?}");
        };
        args.insert(k.to_string(), v);
    }
    let get = |k: &str| args.get(k).with_context(|| format!("--{k} is required"));
    let port: u16 = get("port")?.parse()?;
    let ca = std::fs::read(get("ca")?)?;
    let password = std::env::var(get("password-env")?).context("the password variable")?;
    let tls = TlsParameters::builder("localhost".into())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(&ca)?)
        .build_rustls()?;
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(get("user")?.clone(), password))
        .build();
    if let Some(raw) = args.get("raw") {
        let envelope = Envelope::new(Some(FROM.parse()?), vec![TO.parse()?])?;
        mailer.send_raw(&envelope, &std::fs::read(raw)?)?;
    } else {
        let path = get("attach")?;
        let name = std::path::Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let msg = Message::builder()
            .from(FROM.parse()?)
            .to(TO.parse()?)
            .subject("big")
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain("big".to_string()))
                    .singlepart(Attachment::new(name).body(
                        std::fs::read(path)?,
                        ContentType::parse("application/octet-stream")?,
                    )),
            )?;
        mailer.send(&msg)?;
    }
    Ok(())
}
