//! Capabilities from any parsable EHLO reply, without panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postie_proto::capability::Capabilities;
use postie_proto::reply::ReplyParser;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((reply, _))) = ReplyParser::parse(data) {
        let caps = Capabilities::from_ehlo(&reply);
        let _ = (caps.size(), caps.auth_mechanisms(), caps.starttls());
    }
});
