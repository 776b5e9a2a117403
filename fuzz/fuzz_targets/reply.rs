//! The reply parser never panics, and consumes whole replies only.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postie_proto::reply::ReplyParser;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((reply, used))) = ReplyParser::parse(rest) {
        assert!(used > 0 && used <= rest.len());
        assert!((100..1000).contains(&reply.code));
        rest = &rest[used..];
    }
});
