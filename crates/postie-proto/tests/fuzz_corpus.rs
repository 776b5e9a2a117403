//! The fuzz targets' kept inputs, replayed on the stable toolchain as an
//! ordinary test: `fuzz/corpus/TARGET/` (what the fuzzers found
//! interesting) and `fuzz/regressions/TARGET/` (inputs that once failed),
//! each decoded as its target decodes it and run through the same check
//! (`fuzz/checks.rs`).

#[path = "../../../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for e in dir.flatten() {
            if e.path().is_file() {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Runs `check` on every kept input of `target`, decoded like libFuzzer's
/// `fuzz_target!` does (`arbitrary_take_rest`; inputs it cannot decode are
/// skipped there too). Returns how many ran.
fn replay<T: for<'a> Arbitrary<'a>>(target: &str, check: impl Fn(T)) -> usize {
    let mut ran = 0;
    for (path, data) in inputs(target) {
        let Ok(value) = T::arbitrary_take_rest(Unstructured::new(&data)) else {
            continue;
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(value)));
        assert!(r.is_ok(), "{target}: {} fails", path.display());
        ran += 1;
    }
    ran
}

/// [`replay`] for a target that takes `&str` (borrowed from the input).
fn replay_str(target: &str, check: impl Fn(&str)) -> usize {
    let mut ran = 0;
    for (path, data) in inputs(target) {
        let Ok(value) = <&str>::arbitrary_take_rest(Unstructured::new(&data)) else {
            continue;
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(value)));
        assert!(r.is_ok(), "{target}: {} fails", path.display());
        ran += 1;
    }
    ran
}

fn replay_bytes(target: &str, check: impl Fn(&[u8])) -> usize {
    let mut ran = 0;
    for (path, data) in inputs(target) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(r.is_ok(), "{target}: {} fails", path.display());
        ran += 1;
    }
    ran
}

#[test]
fn every_kept_input_passes_its_target_check() {
    let counts = [
        ("reply", replay_bytes("reply", checks::reply)),
        ("ehlo", replay_bytes("ehlo", checks::ehlo)),
        ("dot_stuffing", replay("dot_stuffing", checks::dot_stuffing)),
        ("address", replay_str("address", checks::address)),
        (
            "client_session",
            replay("client_session", checks::client_session),
        ),
        (
            "server_session",
            replay("server_session", checks::server_session),
        ),
    ];
    for (target, n) in counts {
        assert!(
            n > 0,
            "no kept input for {target}: fuzz/corpus/{target} is missing or empty"
        );
    }
}

/// The client check sees the secret where a session could leak it: in
/// clear, and in base64 inside an AUTH line (not only on its own).
#[test]
fn the_secret_check_sees_it_in_clear_and_in_base64() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert!(checks::holds_secret(b"PASS fuzz-S3cret-value\r\n"));
    let plain = format!("AUTH PLAIN {}\r\n", b64("\0user\0fuzz-S3cret-value"));
    assert!(checks::holds_secret(plain.as_bytes()));
    let xoauth2 = format!(
        "AUTH XOAUTH2 {}\r\n",
        b64("user=u@example.com\x01auth=Bearer fuzz-S3cret-value\x01\x01")
    );
    assert!(checks::holds_secret(xoauth2.as_bytes()));
    assert!(!checks::holds_secret(b"AUTH PLAIN AHVzZXIAb3RoZXI=\r\n"));
}
