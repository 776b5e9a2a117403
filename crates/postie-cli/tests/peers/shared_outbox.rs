//! Several hosts, one outbox: relays on one PostgreSQL database (the peers' private cluster),
//! each with its own data directory, host id and port, as separate machines would run them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::relay_support::*;
use crate::support::*;

/// A database of its own on the peers' PostgreSQL server, made with `psql` and dropped at the
/// end; hosts reach it with a URL without password and a password file, over TLS verified
/// against the peers' CA (`[outbox] ca_file`).
pub struct SharedDb {
    pub name: String,
    pub url: String,
}

impl SharedDb {
    pub fn new() -> SharedDb {
        let name = format!("t_{}", token("db").replace('-', "_"));
        psql(&format!("CREATE DATABASE {name}"));
        let url = format!(
            "postgres://{}@127.0.0.1:{}/{name}",
            peers().get("POSTGRES_USER"),
            peers().get("POSTGRES_PORT")
        );
        SharedDb { name, url }
    }

    /// A host: a sandbox whose `[outbox]` is this database, its password in `~/.pgpass` (mode
    /// 0600, as libpq wants it), account `ali` sending through `peer`.
    pub fn host(&self, id: &str, peer: Peer, from: &str, extra_toml: &str) -> Sandbox {
        let sb = self.bare_host(id, extra_toml);
        add_password_account(&sb, "ali", from, peer);
        sb
    }

    /// A host with no account yet.
    pub fn bare_host(&self, id: &str, extra_toml: &str) -> Sandbox {
        let sb = Sandbox::new();
        append_config(
            &sb,
            &format!(
                "[outbox]\nurl = \"{}\"\nhost_id = \"{id}\"\nca_file = \"{}\"\n\n{extra_toml}",
                self.url,
                peers().ca()
            ),
        );
        let home = sb.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let pgpass = home.join(".pgpass");
        std::fs::write(
            &pgpass,
            format!(
                "127.0.0.1:{}:{}:{}:{}\n",
                peers().get("POSTGRES_PORT"),
                self.name,
                peers().get("POSTGRES_USER"),
                peers().get("POSTGRES_PASSWORD")
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        sb
    }

    /// A query's rows, `|`-separated, straight from the database.
    pub fn query(&self, sql: &str) -> Vec<String> {
        psql_in(&self.name, sql)
    }
}

impl Drop for SharedDb {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            psql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
    }
}

fn psql(sql: &str) -> Vec<String> {
    psql_in("postgres", sql)
}

fn psql_in(db: &str, sql: &str) -> Vec<String> {
    let out = std::process::Command::new("psql")
        .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", peers().get("POSTGRES_PORT")])
        .args(["-U", peers().get("POSTGRES_USER"), "-d", db, "-c", sql])
        .env("PGPASSWORD", peers().get("POSTGRES_PASSWORD"))
        .output()
        .expect("psql (Debian's postgresql-client) runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Copies of each load message of run `run` in Postfix's Maildir.
fn maildir_copies(dir: &Path, run: &str) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    let needle = format!("Subject: load {run} ");
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let text =
            String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&needle)
                && let Ok(i) = rest.trim().parse::<u32>()
            {
                *m.entry(i).or_insert(0) += 1;
            }
        }
    }
    m
}

/// Three hosts, 3 × 1,000 messages, one of the relays killed with SIGKILL twice while it
/// accepts and delivers: every acknowledged message reaches Postfix; duplicates stay within
/// what a kill can cause (messages on the wire at the kill); the other hosts give the dead
/// relay's leased messages back to the queue within a minute, while it is still down;
/// attempts say which host sent.
#[test]
fn three_relays_on_one_database_lose_nothing_when_one_is_killed() {
    let db = SharedDb::new();
    let from = "fleet@example.test";
    let fast = "[relay]\nretry_first = \"200ms\"\nretry_max = \"1s\"\n";
    let hosts: Vec<Sandbox> = (0..3)
        .map(|i| db.host(&format!("host-{i}"), Peer::Postfix, from, fast))
        .collect();
    let pw = Peer::Postfix.password();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut relays: Vec<Option<RelayProc>> = hosts
        .iter()
        .zip(&ports)
        .map(|(sb, &p)| Some(RelayProc::start(sb, p, pw)))
        .collect();
    const N: u32 = 1000;
    let runs: Vec<String> = (0..3).map(|i| token(&format!("fleet{i}"))).collect();
    let acked_files: Vec<_> = (0..3).map(|i| hosts[i].path().join("acked.txt")).collect();
    let mut loads: Vec<_> = (0..3)
        .map(|i| {
            load_py(ports[i], &runs[i], N, 4, &acked_files[i], 240, from)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Host 1 dies twice: at a third and at two thirds of its load, each time for a while (its
    // leases must go back to the others, not wait for it), then comes back.
    let mut acked_at_kill = Vec::new();
    let mut recovery = Vec::new();
    for k in 1..=2usize {
        let target = N as usize * k / 3;
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked(&acked_files[1]).len() < target {
            assert!(
                Instant::now() < deadline,
                "host 1's load stalled below {target}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        acked_at_kill.push(acked(&acked_files[1]).len());
        relays[1].take().unwrap().kill9();
        // Host 1 stays down until the others have given its leased messages back to the
        // queue (its deliverer's row in `holders` goes with them): within a minute.
        let killed = Instant::now();
        while db.query("SELECT count(*) FROM holders WHERE host = 'host-1'") != ["0"] {
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "host 1's leases were not recovered within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        recovery.push(killed.elapsed());
        relays[1] = Some(RelayProc::start(&hosts[1], ports[1], pw));
    }
    let mut errors = 0;
    for (i, l) in loads.iter_mut().enumerate() {
        let e = load_finished(l, &format!("host {i}"));
        if i == 1 {
            errors = e;
        }
    }
    // The premise: each kill hit host 1 while its clients were sending.
    assert!(errors > 0, "no kill interrupted host 1's clients");
    let mut counts = acked_at_kill.clone();
    counts.push(acked(&acked_files[1]).len());
    assert!(
        counts[0] > 0 && counts.windows(2).all(|w| w[1] > w[0]),
        "acknowledged at each kill, then at the end: {counts:?}"
    );
    // Any host sees the whole queue.
    let msgs = queue_settled(&hosts[2], Duration::from_secs(120));
    let busy: Vec<_> = msgs.iter().filter(|m| m["state"] != "sent").collect();
    assert!(busy.is_empty(), "not sent: {busy:?}");
    let maildir = Path::new(peers().get("POSTFIX_MAILDIR"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dups = 0;
    for (i, run) in runs.iter().enumerate() {
        let acked = acked(&acked_files[i]);
        let copies = loop {
            let c = maildir_copies(maildir, run);
            if acked.iter().all(|a| c.contains_key(a)) || Instant::now() > deadline {
                break c;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let lost: Vec<_> = acked.iter().filter(|a| !copies.contains_key(a)).collect();
        assert!(
            lost.is_empty(),
            "host {i}: acknowledged, never delivered: {lost:?}"
        );
        dups += copies.values().map(|n| n - 1).sum::<usize>();
    }
    // A kill can duplicate what host 1 had sent upstream but not yet recorded (one message per
    // connection to Postfix: 2) and each message committed whose 250 to its client was lost (one
    // per client connection: 4; the client sends it again): 6 per kill.
    assert!(dups <= 2 * 6, "{dups} duplicates for 2 kills");
    // Every host delivered, and the attempts name them.
    let by_host = db.query(
        "SELECT host, count(*) FROM attempts WHERE kind = 'delivered' GROUP BY host ORDER BY host",
    );
    assert_eq!(by_host.len(), 3, "deliveries by host: {by_host:?}");
    // The kills interrupted deliveries, and the other hosts took them back.
    let interrupted = db.query(
        "SELECT host, count(*) FROM attempts WHERE kind = 'interrupted' GROUP BY host ORDER BY host",
    );
    assert!(
        !interrupted.is_empty() && interrupted.iter().all(|l| !l.starts_with("host-1|")),
        "interrupted attempts recovered by: {interrupted:?}"
    );
    eprintln!(
        "three relays: {} messages, {dups} duplicates, deliveries by host {by_host:?}, \
         interrupted attempts recovered by {interrupted:?}, leases back after {recovery:?}",
        3 * N
    );
    for r in relays.into_iter().flatten() {
        r.stop();
    }
}

/// One sign-in on one host serves the fleet: three hosts send at once, two `postie send` at a
/// time each, sharing the account's OAuth tokens through the database while its access tokens
/// live 12 seconds (refreshed at half-life) and every refresh rotates the refresh token. The
/// authorization server sees one refresh at a time, never two for one expiry (at least a second
/// apart), and never a refresh token already rotated out; Postfix, which checks every token by
/// introspection, gets every message.
#[test]
fn three_hosts_share_one_sign_in_and_refresh_once_per_expiry() {
    let client = format!("fleet-{}", token("c").replace('-', ""));
    crate::oauth::register_client(&client, "expires_in=12");
    let db = SharedDb::new();
    let hosts: Vec<Sandbox> = (0..3)
        .map(|i| {
            let sb = db.bare_host(&format!("host-{i}"), "");
            crate::oauth::add_account_for(&sb, "work", peers().port("POSTFIX_OAUTH"), &client);
            sb
        })
        .collect();
    // Signed in on host 0 only; its tokens go to the database.
    crate::oauth::sign_in(&hosts[0], "work");
    assert_eq!(
        db.query("SELECT key FROM shared_secrets"),
        ["work/oauth"],
        "the sign-in's tokens are in the shared store"
    );
    let start = Instant::now();
    let sent: Vec<String> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..6)
            .map(|k| {
                let sb = &hosts[k % 3];
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    while start.elapsed() < Duration::from_secs(24) {
                        let tok = token(&format!("fleet-send-{k}"));
                        sb.postie()
                            .args(["send", "-a", "work"])
                            .opt("--to", TO)
                            .message(&tok)
                            .run()
                            .success();
                        mine.push(tok);
                    }
                    mine
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect()
    });
    let elapsed = start.elapsed();
    // Every message once in Postfix's Maildir (read once per pass, not once per message).
    let maildir = Path::new(peers().get("POSTFIX_MAILDIR"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut subjects: BTreeMap<String, usize> = BTreeMap::new();
        for e in std::fs::read_dir(maildir).unwrap().flatten() {
            let text =
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned();
            if let Some(s) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
                *subjects.entry(s.trim().to_string()).or_default() += 1;
            }
        }
        let missing: Vec<_> = sent.iter().filter(|t| !subjects.contains_key(*t)).collect();
        if missing.is_empty() {
            let twice: Vec<_> = sent.iter().filter(|t| subjects[*t] > 1).collect();
            assert!(twice.is_empty(), "delivered twice: {twice:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} sends not in Postfix's Maildir: {missing:?}",
            missing.len(),
            sent.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let stats = crate::oauth::oauth_stats(&client);
    let times: Vec<f64> = stats["refresh_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    // The premise: tokens expired while the hosts sent, more than once.
    assert!(times.len() >= 3, "refreshes: {stats}");
    assert_eq!(
        stats["refresh_reused"], 0,
        "a rotated-out refresh token came back: {stats}"
    );
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|&g| g >= 1.0),
        "two refreshes for one expiry (seconds between refreshes: {gaps:?})"
    );
    // One refresh per half-lifetime (6 s) at most, over the whole run.
    assert!(
        (times.len() as f64) <= elapsed.as_secs_f64() / 5.0 + 2.0,
        "{} refreshes in {elapsed:?}",
        times.len()
    );
    eprintln!(
        "shared tokens: {} sends from 3 hosts, {} refreshes in {elapsed:?}, gaps {gaps:?}",
        sent.len(),
        times.len()
    );
}

/// A daily limit of 50 messages for one mailbox, shared by three relays that each get 30: the
/// fleet sends exactly 50 (Postfix's Maildir has 50 of the 90), the other 40 wait in the queue
/// with the limit's explanation. Each host counting only its own sends would send all 90.
#[test]
fn three_relays_keep_one_daily_limit_together() {
    let db = SharedDb::new();
    let from = "quota@example.test";
    let hosts: Vec<Sandbox> = (0..3)
        .map(|i| {
            let sb = db.host(&format!("host-{i}"), Peer::Postfix, from, "");
            append_config(&sb, "[accounts.ali.limits]\nper_day = 50\n");
            sb
        })
        .collect();
    let pw = Peer::Postfix.password();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let relays: Vec<RelayProc> = hosts
        .iter()
        .zip(&ports)
        .map(|(sb, &p)| RelayProc::start(sb, p, pw))
        .collect();
    let runs: Vec<String> = (0..3).map(|i| token(&format!("quota{i}"))).collect();
    let mut loads: Vec<_> = (0..3)
        .map(|i| {
            let acked = hosts[i].path().join("acked.txt");
            load_py(ports[i], &runs[i], 30, 2, &acked, 60, from)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, l) in loads.iter_mut().enumerate() {
        load_finished(l, &format!("host {i}"));
    }
    // Settled: nothing being delivered, and nothing due before tomorrow.
    let deadline = Instant::now() + Duration::from_secs(60);
    let states = loop {
        let due = db.query(&format!(
            "SELECT count(*) FROM messages WHERE state = 'delivering' \
             OR (state = 'queued' AND next_attempt_at < {})",
            (std::time::SystemTime::now() + Duration::from_secs(3600))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        ));
        // (read after: nothing is being delivered or due any more)
        let states = db.query("SELECT state, count(*) FROM messages GROUP BY state ORDER BY state");
        if due == ["0"] {
            break states;
        }
        assert!(Instant::now() < deadline, "not settled: {states:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(states, ["queued|40", "sent|50"], "messages by state");
    let why = db.query("SELECT DISTINCT explanation FROM messages WHERE state = 'queued'");
    assert!(
        why.len() == 1 && why[0].contains("daily sending limit of account 'ali' is reached"),
        "{why:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let maildir = Path::new(peers().get("POSTFIX_MAILDIR"));
    let delivered: usize = runs
        .iter()
        .map(|r| maildir_copies(maildir, r).values().sum::<usize>())
        .sum();
    assert_eq!(delivered, 50, "messages in Postfix's Maildir");
    // Any host shows which host sent a message.
    let row = db.query(
        "SELECT m.id, a.host FROM messages m JOIN attempts a ON a.msg = m.id \
         WHERE a.kind = 'delivered' ORDER BY m.id DESC LIMIT 1",
    );
    let (id, sender) = row[0].split_once('|').unwrap();
    let run = hosts[0]
        .postie()
        .args(["queue", "show", id, "--json"])
        .run();
    run.success();
    assert_eq!(run.json()["history"][0]["host"], sender, "{run}");
    let run = hosts[0].postie().args(["queue", "show", id]).run();
    run.success();
    assert!(run.stdout.contains(&format!("(host {sender})")), "{run}");
    let by_host = db.query("SELECT host, count(*) FROM quota_sends GROUP BY host ORDER BY host");
    eprintln!("daily limit of 50 across three relays: sends reserved by host {by_host:?}");
    for r in relays {
        r.stop();
    }
}

/// `postie doctor` on a host of a fleet ends with the shared outbox: reachable, its schema, the
/// deliverers running and where; the relay's connections to it are TLS (the server says so),
/// and a certificate that does not verify is an error with its fix. With a wrong database
/// password, doctor, the relay and the queue commands say what is wrong and how to fix it (exit
/// 74 for doctor's outbox stage, 78 for the others), and no password appears.
#[test]
fn doctor_checks_the_shared_outbox_and_a_wrong_password_is_explained() {
    let db = SharedDb::new();
    let sb = db.host("host-d", Peer::Postfix, "doc@example.test", "");
    let relay = RelayProc::start(&sb, free_port(), Peer::Postfix.password());
    let run = sb
        .postie()
        .args(["doctor", "ali"])
        .env(UPSTREAM_PW_VAR, Peer::Postfix.password())
        .run();
    run.success();
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("outbox"))
        .unwrap_or_else(|| panic!("no outbox stage: {run}"));
    assert!(line.trim_start().starts_with("ok"), "{run}");
    assert!(run.stdout.contains(&format!("/{}", db.name)), "{run}");
    assert!(run.stdout.contains("postie schema"), "{run}");
    assert!(
        run.stdout.contains("deliverers running: host-d (1)"),
        "{run}"
    );
    // The relay's connections are encrypted (the server's view).
    let tls = |on: bool| {
        db.query(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{}' AND a.application_name = 'postie' AND s.ssl = {on}",
            db.name
        ))
    };
    assert_ne!(tls(true), ["0"], "no TLS connection from the relay");
    assert_eq!(tls(false), ["0"], "a plain connection from the relay");
    relay.stop();

    // Without the CA that signed the server's certificate, TLS does not verify: an error with
    // its fix, never a fall-back to plain text.
    let config = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // (the [outbox] one, just before its host_id; the account has its own ca_file)
    let ca_line = format!("ca_file = \"{}\"\nhost_id = \"host-d\"\n", peers().ca());
    assert!(text.contains(&ca_line), "{text}");
    let no_ca = text.replace(&ca_line, "host_id = \"host-d\"\n");
    std::fs::write(&config, &no_ca).unwrap();
    let run = sb
        .postie()
        .args(["doctor", "ali", "--json"])
        .env(UPSTREAM_PW_VAR, Peer::Postfix.password())
        .run();
    run.code(74);
    let lower = run.text_lower();
    assert!(
        lower.contains("tls to the outbox database") && lower.contains("ca_file"),
        "{run}"
    );
    // sslmode=disable: plain text, by choice.
    std::fs::write(
        &config,
        no_ca.replace(
            &format!("/{}\"", db.name),
            &format!("/{}?sslmode=disable\"", db.name),
        ),
    )
    .unwrap();
    sb.postie().args(["queue", "list"]).run().success();
    std::fs::write(&config, &text).unwrap();

    let wrong = "Wr0ng-pg-Pa55word";
    std::fs::write(
        sb.path().join("home/.pgpass"),
        format!(
            "127.0.0.1:{}:{}:{}:{wrong}\n",
            peers().get("POSTGRES_PORT"),
            db.name,
            peers().get("POSTGRES_USER")
        ),
    )
    .unwrap();
    let run = sb
        .postie()
        .args(["doctor", "ali", "--json"])
        .env(UPSTREAM_PW_VAR, Peer::Postfix.password())
        .run();
    run.code(74);
    let v = run.json();
    assert_eq!(v["failed_stage"], "outbox", "{run}");
    let text = run.text_lower();
    assert!(
        text.contains("password authentication failed") && text.contains("pgpassfile"),
        "{run}"
    );
    assert!(!run.stdout.contains(wrong) && !run.stderr.contains(wrong));
    for args in [
        vec!["queue", "list"],
        vec!["relay", "--listen", "127.0.0.1:0"],
    ] {
        let run = sb.postie().args(&args).run();
        run.code(78);
        assert!(run.text_lower().contains("refused the connection"), "{run}");
        assert!(!run.stdout.contains(wrong) && !run.stderr.contains(wrong));
    }
}

#[test]
fn the_database_password_kept_in_the_secret_store_is_used_and_a_refused_one_is_not_kept() {
    let db = SharedDb::new();
    let sb = db.bare_host("host-p", "");
    std::fs::remove_file(sb.path().join("home/.pgpass")).unwrap();
    let right = peers().get("POSTGRES_PASSWORD");
    let wrong = "Wr0ng-st0red-Pa55";
    let leaks = |run: &Run, what: &str| {
        assert!(
            !run.stdout.contains(what) && !run.stderr.contains(what),
            "a password in the output: {run}"
        );
    };
    // Nothing supplies a password: a configuration error that says where one goes.
    let run = sb.postie().args(["queue", "list"]).run();
    run.code(78);
    assert!(
        run.text_lower().contains("asks for a password")
            && run.stderr.contains("postie queue password"),
        "{run}"
    );

    // A password the database refuses is not kept.
    let run = sb
        .postie()
        .args(["queue", "password", "--password-stdin"])
        .stdin(format!("{wrong}\n"))
        .run();
    run.code(78);
    assert!(run.text_lower().contains("not stored"), "{run}");
    leaks(&run, wrong);
    sb.postie().args(["queue", "list"]).run().code(78);

    // The right one is kept (encrypted: not in clear in the store's file), and used.
    let run = sb
        .postie()
        .args(["queue", "password", "--password-env", "PG_TEST_PW"])
        .env("PG_TEST_PW", right)
        .run();
    run.success();
    assert!(run.stdout.contains("stored"), "{run}");
    leaks(&run, right);
    let files = files_under(sb.path());
    let store = files
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "secrets.enc"))
        .unwrap_or_else(|| panic!("no secret store file among {files:?}"));
    let bytes = std::fs::read(store).unwrap();
    assert!(
        !bytes.windows(right.len()).any(|w| w == right.as_bytes()),
        "the password is in clear in {}",
        store.display()
    );
    let run = sb.postie().args(["queue", "list", "--json"]).run();
    run.success();
    leaks(&run, right);

    // Removed: refused again.
    let run = sb.postie().args(["queue", "password", "--remove"]).run();
    run.success();
    assert!(run.stdout.contains("removed"), "{run}");
    sb.postie().args(["queue", "list"]).run().code(78);
}
