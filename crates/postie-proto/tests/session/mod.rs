//! Client session tests against scripted peers: each test feeds the server's
//! exact lines and asserts exactly what the client transmitted.

mod auth;
mod chunking;
mod opening;
mod peer;
mod robustness;
mod tls;
mod transaction;
