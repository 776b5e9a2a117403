//! The sandbox's accounts: who exists, their account password, their app
//! passwords and whether 2-Step Verification is on; from flags or a small
//! TOML file, with defaults that work out of the box.

use std::path::Path;

use serde::{Deserialize, Serialize};

use postie::error::{Error, ErrorKind, Result};

/// The address of the default user. `.test` is reserved (RFC 2606): no mail
/// for it can ever leave the machine.
pub const DEFAULT_USER: &str = "me@sandbox.postie.test";
/// The default user's account password: the one Gmail refuses over SMTP.
/// Without spaces, so that clients which strip an app password's spaces
/// (as postie does) still send it as typed.
pub const DEFAULT_PASSWORD: &str = "correct-horse-battery-staple";
/// The default user's app password, shown as Google shows them.
pub const DEFAULT_APP_PASSWORD: &str = "abcd efgh ijkl mnop";
/// The OAuth client every sandbox knows: public (no secret), any loopback
/// redirect (RFC 8252 §7.3).
pub const DEFAULT_CLIENT_ID: &str = postie::provider::SANDBOX_CLIENT_ID;

/// One mailbox owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The address, also the login name.
    pub email: String,
    /// The account password (the one for the web sign-in).
    pub password: String,
    /// App passwords; spaces in them do not matter, as at Google.
    #[serde(default)]
    pub app_passwords: Vec<String>,
    /// 2-Step Verification. On: the account password gets `534 5.7.9
    /// Application-specific password required`. Off: app passwords do not
    /// exist (Google offers them only with 2-Step Verification) and the
    /// account password gets `535 5.7.8`, since Google ended password
    /// sign-in for SMTP ("less secure apps") in 2022.
    #[serde(default = "yes")]
    pub two_step_verification: bool,
    /// Whether the account has a mailbox to send from. Off: it exists and
    /// signs in, but has none (a Google account made with another address,
    /// a Workspace user whose Gmail service is off, a Microsoft account
    /// without an Exchange Online licence): the Gmail API answers `400
    /// failedPrecondition` and Graph `404 MailboxNotEnabledForRESTAPI`.
    /// SMTP is not affected in the sandbox.
    #[serde(default = "yes")]
    pub mailbox: bool,
}

fn yes() -> bool {
    true
}

impl User {
    /// The default user.
    pub fn default_user() -> User {
        User {
            email: DEFAULT_USER.into(),
            password: DEFAULT_PASSWORD.into(),
            app_passwords: vec![DEFAULT_APP_PASSWORD.into()],
            two_step_verification: true,
            mailbox: true,
        }
    }

    /// True when `password` is one of the user's app passwords (spaces
    /// ignored, as Google does).
    pub fn is_app_password(&self, password: &str) -> bool {
        let given = squash(password);
        self.two_step_verification
            && !given.is_empty()
            && self.app_passwords.iter().any(|a| squash(a) == given)
    }
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The `--config` file of `postie sandbox`.
///
/// ```toml
/// daily_limit = 100
/// token_lifetime = "1h"
///
/// [[users]]
/// email = "me@sandbox.postie.test"
/// password = "correct-horse-battery-staple"
/// app_passwords = ["abcd efgh ijkl mnop"]
/// two_step_verification = true
/// mailbox = true
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxFile {
    /// Users; none means the default user.
    #[serde(default)]
    pub users: Vec<User>,
    /// Messages per user per rolling 24 hours.
    #[serde(default)]
    pub daily_limit: Option<u32>,
    /// Access-token lifetime, e.g. `"1h"`, `"30s"`.
    #[serde(default)]
    pub token_lifetime: Option<String>,
    /// Whether the Gmail API is enabled for the OAuth client's Cloud
    /// project. Off: every Gmail API call with a valid token gets `403
    /// accessNotConfigured`, as for a project that never enabled it.
    #[serde(default)]
    pub gmail_api_enabled: Option<bool>,
}

impl SandboxFile {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<SandboxFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read the sandbox file {}: {e}", path.display()),
            )
        })?;
        let f: SandboxFile = toml::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the sandbox file {} is not valid: {}",
                    path.display(),
                    e.message().trim_end()
                ),
            )
        })?;
        for u in &f.users {
            check_user(u)?;
        }
        check_unique(&f.users).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("the sandbox file {}: {}", path.display(), e.message()),
            )
        })?;
        Ok(f)
    }
}

/// Each address once (letter case does not matter, as at sign-in).
pub(crate) fn check_unique(users: &[User]) -> Result<()> {
    for (i, u) in users.iter().enumerate() {
        if users[..i]
            .iter()
            .any(|v| v.email.eq_ignore_ascii_case(&u.email))
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the user {} is listed twice: keep one [[users]] entry per address",
                    u.email
                ),
            ));
        }
    }
    Ok(())
}

/// A user must have an address and a password.
pub(crate) fn check_user(u: &User) -> Result<()> {
    if !u.email.contains('@') || u.email.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "sandbox user '{}' is not an address like me@sandbox.postie.test",
                u.email
            ),
        ));
    }
    if u.password.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("sandbox user {} needs a password", u.email),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_passwords_ignore_spaces_and_need_two_step() {
        let mut u = User::default_user();
        assert!(u.is_app_password("abcdefghijklmnop"));
        assert!(u.is_app_password("abcd efgh ijkl mnop"));
        assert!(!u.is_app_password(DEFAULT_PASSWORD));
        assert!(!u.is_app_password(""));
        u.two_step_verification = false;
        assert!(!u.is_app_password("abcdefghijklmnop"));
    }

    #[test]
    fn file_parses_with_defaults() {
        let f: SandboxFile =
            toml::from_str("daily_limit = 3\n[[users]]\nemail = \"a@b.test\"\npassword = \"pw\"\n")
                .unwrap();
        assert_eq!(f.daily_limit, Some(3));
        assert!(f.users[0].two_step_verification);
        assert!(f.users[0].app_passwords.is_empty());
        assert!(f.users[0].mailbox);
        assert_eq!(f.gmail_api_enabled, None);
        assert!(toml::from_str::<SandboxFile>("nonsense = 1").is_err());
    }

    #[test]
    fn a_user_listed_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandbox.toml");
        std::fs::write(
            &path,
            "[[users]]\nemail = \"a@b.test\"\npassword = \"pw\"\n\
             [[users]]\nemail = \"A@b.test\"\npassword = \"other\"\n",
        )
        .unwrap();
        let e = SandboxFile::load(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().ends_with(
                "the user A@b.test is listed twice: keep one [[users]] entry per address"
            ),
            "{}",
            e.message()
        );
    }
}
