//! Address and Domain validation: no panic, and nothing accepted can break a command line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postie_proto::address::{Address, Domain};

fuzz_target!(|s: &str| {
    if let Ok(a) = Address::new(s) {
        let t = a.to_string();
        assert!(!t.contains(['\r', '\n', '\0', '<', '>']));
    }
    if let Ok(d) = Domain::new(s) {
        assert!(!d.to_string().contains(['\r', '\n', '\0', ' ']));
    }
});
