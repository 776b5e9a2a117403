//! Local relay logins. Only an Argon2id hash of each password is kept (in
//! the config file), so the file reveals nothing a client could log in with.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};

use postie::config::{RelayConfig, RelayUser};
use postie::error::{Error, ErrorKind, Result};
use postie::wording::{Action, say};

/// Hash `password` for `[[relay.users]] password_hash`.
pub fn hash_password(password: &SecretString) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::new(ErrorKind::Secret, format!("cannot hash the password: {e}")))
}

/// The user `username` logs in as, when the password is right. Every
/// failure looks the same to the caller (no user / wrong password), and a
/// missing user still costs one hash so timing does not tell them apart.
pub fn verify<'a>(
    relay: &'a RelayConfig,
    username: &str,
    password: &SecretString,
) -> Option<&'a RelayUser> {
    let user = relay.users.iter().find(|u| u.username == username);
    let hash = user.map(|u| u.password_hash.as_str()).unwrap_or(DUMMY_HASH);
    let ok = PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    user.filter(|_| ok)
}

/// Check that a configured hash can be used, for a clear error at start.
pub fn check(user: &RelayUser) -> Result<()> {
    PasswordHash::new(&user.password_hash).map(|_| ()).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!(
                "relay user '{}': password_hash is not an Argon2 PHC string ({e}); set it again: {}",
                user.username,
                say(&Action::AddRelayUser {
                    user: Some(user.username.clone()),
                    account: Some(user.account.clone()),
                })
            ),
        )
    })
}

// The hash of a random password nobody knows, verified against when the user
// does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$Jb9+4n5Qn8b2z1n5yJ2r2w6u8s2m1v0x9a7c5e3g1i0";

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(hash: String) -> RelayConfig {
        RelayConfig {
            users: vec![RelayUser {
                username: "me@example.com".into(),
                account: "work".into(),
                password_hash: hash,
            }],
            ..RelayConfig::default()
        }
    }

    #[test]
    fn right_password_maps_to_the_account_and_wrong_ones_do_not() {
        let h = hash_password(&SecretString::from("hunter2 hunter2")).unwrap();
        assert!(h.starts_with("$argon2id$") && !h.contains("hunter2"));
        let r = relay(h);
        let ok = verify(&r, "me@example.com", &SecretString::from("hunter2 hunter2"));
        assert_eq!(ok.map(|u| u.account.as_str()), Some("work"));
        assert!(verify(&r, "me@example.com", &SecretString::from("hunter3")).is_none());
        assert!(
            verify(
                &r,
                "other@example.com",
                &SecretString::from("hunter2 hunter2")
            )
            .is_none()
        );
        check(&r.users[0]).unwrap();
    }

    #[test]
    fn a_broken_hash_is_a_config_error_naming_the_fix() {
        let r = relay("plaintext!".into());
        assert!(verify(&r, "me@example.com", &SecretString::from("plaintext!")).is_none());
        let e = check(&r.users[0]).unwrap_err();
        let add = postie::wording::say(&postie::wording::Action::AddRelayUser {
            user: Some("me@example.com".into()),
            account: Some("work".into()),
        });
        assert!(e.message().contains(&add));
    }
}
