//! Integration tests: the client session driven by scripted servers.

mod session;
