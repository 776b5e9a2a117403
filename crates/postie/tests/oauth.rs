//! OAuth 2.0 end to end against real, independently written authorization
//! servers on 127.0.0.1: Authlib (`ci/peers/oauth_as.py`) and
//! oauth2-mock-server, both started by `ci/mail-peers.sh` (run by
//! `ci/test.sh`), which writes their addresses to `$MAIL_PEERS_DIR/env`.
//! The "browser" is a plain HTTP client following the real redirect to
//! postie's loopback listener.

#[path = "oauth/app_only.rs"]
mod app_only;
#[path = "oauth/code_flow.rs"]
mod code_flow;
#[path = "oauth/device.rs"]
mod device;
#[path = "oauth/discovery.rs"]
mod discovery;
#[path = "oauth/refresh.rs"]
mod refresh;
#[path = "oauth/secrets.rs"]
mod secrets;
#[path = "oauth/support.rs"]
mod support;
