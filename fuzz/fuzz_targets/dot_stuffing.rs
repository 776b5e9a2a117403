//! DATA transparency (RFC 5321 §4.5.2): for any body split at any point,
//! the wire form ends with exactly one terminator and unstuffs back to the
//! CRLF-normalised body; no early end of data (SMTP smuggling).
#![no_main]
use libfuzzer_sys::fuzz_target;
use postie_proto::data::{DotStuffer, normalize_crlf, unstuff};

fuzz_target!(|input: (Vec<u8>, u16)| {
    let (body, split) = input;
    let split = (split as usize).min(body.len());
    let mut s = DotStuffer::new();
    let mut wire = Vec::new();
    s.encode(&body[..split], &mut wire);
    s.encode(&body[split..], &mut wire);
    s.finish(&mut wire);
    assert!(wire.ends_with(b"\r\n.\r\n") || wire == b".\r\n");
    let first_end = wire
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|p| p + 5)
        .unwrap_or(wire.len());
    assert_eq!(first_end, wire.len(), "terminator before the end");
    let mut expected = normalize_crlf(&body);
    if !expected.is_empty() && !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(unstuff(&wire), expected);
});
