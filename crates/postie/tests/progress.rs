//! The body progress callback,
//! against the sandbox provider: told in pieces, in order, ending at the
//! body's size.

use std::sync::{Arc, Mutex};

use postie::config::Config;
use postie::mailer::{Mailer, Options, Status};
use postie::message::Draft;
use postie::secret::{SecretStore, Secrets};
use postie_sandbox::{DEFAULT_APP_PASSWORD, DEFAULT_USER};

#[tokio::test]
async fn a_large_attachment_reports_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = postie_sandbox::SandboxConfig::new(dir.path().join("sandbox"));
    cfg.use_free_ports();
    let sandbox = postie_sandbox::Sandbox::start(cfg).await.unwrap();
    let mut config = Config::default();
    config
        .accounts
        .insert("work".into(), sandbox.app_password_account(DEFAULT_USER));
    let secrets = Secrets::from(SecretStore::file(
        dir.path().join("secrets.enc"),
        Box::new(|| Ok("a passphrase".into())),
    ));
    secrets
        .set("work", &DEFAULT_APP_PASSWORD.into())
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let sink = seen.clone();
    let options = Options {
        progress: Some(Arc::new(move |written, total| {
            sink.lock().unwrap().push((written, total))
        })),
        ..Options::default()
    };
    let mailer = Mailer::with_options(config, dir.path().join("data"), secrets, options);
    let file = dir.path().join("big.bin");
    std::fs::write(&file, vec![7u8; 3 * 1024 * 1024]).unwrap();
    let msg = Draft {
        from: DEFAULT_USER.into(),
        to: vec!["friend@example.com".into()],
        text: Some("attached".into()),
        attachments: vec![file],
        ..Draft::default()
    }
    .build()
    .unwrap();
    let size = msg.body.len();
    let report = mailer
        .send(&mailer.account(Some("work")).unwrap(), &msg)
        .await
        .unwrap();
    assert_eq!(report.status, Status::Sent);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 4, "told {} times", seen.len());
    assert!(seen.iter().all(|&(_, t)| t == size), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "not in order");
    assert_eq!(seen.last().unwrap().0, size);
}
