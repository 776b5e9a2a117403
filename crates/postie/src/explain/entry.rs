//! The one entry format of the catalog, and the engine that finds an entry
//! and fills it in.
//!
//! Every explanation postie gives comes from an [`Entry`]: for an SMTP
//! reply, for an authorization server's error, or for something postie
//! found itself (a check of the doctor, a local problem). Texts are
//! templates: `{account}`, `{provider}`, `{host}` and the finding's own
//! values are filled in; `{do:ACTION}` and `{set:KEY}` name what the user
//! can do and are worded by the front (see [`crate::wording`]).

use postie_proto::reply::Reply;

use super::{Context, Explanation, Retry};
use crate::error::OAuthErrorInfo;
use crate::provider::ProviderId;
use crate::wording::{placeholder, say, say_setting, setting_placeholder};

/// One explanation: when it applies, what happened, the likely causes in
/// order, the fix, and whether retrying helps.
pub(super) struct Entry {
    pub(super) id: &'static str,
    pub(super) on: On,
    pub(super) summary: &'static str,
    pub(super) causes: &'static [&'static str],
    pub(super) fix: &'static [&'static str],
    pub(super) retry: Retry,
}

/// When an entry applies.
pub(super) enum On {
    /// An SMTP reply.
    Reply {
        family: Family,
        code: Option<u16>,
        /// The reply's class (4 transient, 5 permanent) when no code is given.
        class: Option<u16>,
        /// An enhanced code; one ending in '.' matches as a prefix (`5.7.`).
        enhanced: Option<&'static str>,
        /// Every pattern must occur in the reply text (case-insensitive).
        text: &'static [&'static str],
    },
    /// An authorization server's error.
    OAuth {
        family: Family,
        /// Any of these error codes (empty: any code).
        errors: &'static [&'static str],
        /// Any of these AADSTS numbers (empty: not required).
        aadsts: &'static [u64],
        /// Any of these grants was refused (empty: any grant, or unknown).
        grants: &'static [&'static str],
        /// Every pattern must occur in the description (case-insensitive).
        text: &'static [&'static str],
    },
    /// Something postie found itself, asked for by its id.
    Finding,
}

/// Provider families as far as their answers are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    Google,
    Microsoft,
    Yahoo,
    Icloud,
    Fastmail,
    /// postie's own sandbox provider: Gmail's texts, its own fixes.
    Sandbox,
    Any,
}

impl Family {
    fn of(provider: Option<ProviderId>) -> Option<Family> {
        let p = provider?;
        Some(if p.is_google() {
            Family::Google
        } else if p.is_microsoft() {
            Family::Microsoft
        } else {
            match p {
                ProviderId::Yahoo => Family::Yahoo,
                ProviderId::Icloud => Family::Icloud,
                ProviderId::Fastmail => Family::Fastmail,
                ProviderId::Sandbox => Family::Sandbox,
                _ => return None,
            }
        })
    }

    /// The family of a reply: the account's provider, else what the reply
    /// says of itself (a reply names its provider even to `--server`).
    pub(super) fn of_reply(provider: Option<ProviderId>, reply: &Reply) -> Family {
        if let Some(f) = Family::of(provider) {
            return f;
        }
        let text = reply.text().to_ascii_lowercase();
        if text.contains("gsmtp") || text.contains("support.google.com") {
            Family::Google
        } else if text.contains("outlook.com")
            || text.contains("aka.ms")
            || text.contains("microsoft")
        {
            Family::Microsoft
        } else {
            Family::Any
        }
    }

    /// The family of an authorization server's error: only Google's and
    /// Microsoft's are told apart (Microsoft's carry AADSTS numbers).
    pub(super) fn of_oauth(provider: Option<ProviderId>, info: &OAuthErrorInfo) -> Family {
        match Family::of(provider) {
            Some(f @ (Family::Google | Family::Microsoft)) => f,
            _ if !info.aadsts().is_empty() => Family::Microsoft,
            _ => Family::Any,
        }
    }

    fn fits(self, family: Family) -> bool {
        self == Family::Any || self == family
    }
}

impl Entry {
    pub(super) fn matches_reply(&self, fam: Family, reply: &Reply, text: &str) -> bool {
        let On::Reply {
            family,
            code,
            class,
            enhanced,
            text: patterns,
        } = &self.on
        else {
            return false;
        };
        if !family.fits(fam) || code.is_some_and(|c| c != reply.code) {
            return false;
        }
        if let Some(want) = enhanced {
            let got = reply.enhanced.map(|x| x.to_string()).unwrap_or_default();
            let fits = match want.strip_suffix('.') {
                Some(_) => got.starts_with(want),
                None => got == *want,
            };
            if !fits {
                return false;
            }
        }
        if class.is_some_and(|c| c != reply.code / 100) {
            return false;
        }
        patterns.iter().all(|t| text.contains(t))
    }

    pub(super) fn matches_oauth(
        &self,
        fam: Family,
        info: &OAuthErrorInfo,
        codes: &[u64],
        text: &str,
    ) -> bool {
        let On::OAuth {
            family,
            errors,
            aadsts,
            grants,
            text: patterns,
        } = &self.on
        else {
            return false;
        };
        family.fits(fam)
            && (errors.is_empty() || errors.contains(&info.error.as_str()))
            && (aadsts.is_empty() || aadsts.iter().any(|c| codes.contains(c)))
            && (grants.is_empty()
                || info
                    .grant_type
                    .as_deref()
                    .is_some_and(|g| grants.contains(&g)))
            && patterns.iter().all(|t| text.contains(t))
    }

    /// The explanation, its templates filled in for `ctx` and `values`.
    pub(super) fn render(&self, ctx: &Context<'_>, values: &[(&str, &str)]) -> Explanation {
        let mut actions = Vec::new();
        let mut fill = |s: &str| fill(s, ctx, values, &mut actions);
        let summary = fill(self.summary);
        let causes = self.causes.iter().map(|c| fill(c)).collect();
        let fix = self.fix.iter().map(|c| fill(c)).collect();
        Explanation {
            id: self.id,
            summary,
            causes,
            fix,
            retry: self.retry,
            actions,
        }
    }
}

/// Fill one template. Unknown `{...}` are left as they are: a text may
/// quote braces of its own.
pub(super) fn fill(
    template: &str,
    ctx: &Context<'_>,
    values: &[(&str, &str)],
    actions: &mut Vec<super::Action>,
) -> String {
    let provider = ctx
        .provider
        .filter(|p| *p != ProviderId::Generic)
        .map(|p| p.as_str());
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        // A value the caller gives wins over the context's (a finding about
        // a host name names that name, known or not to the context).
        let given = values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string());
        let said = match name {
            _ if given.is_some() => given,
            "account" => Some(ctx.account.unwrap_or("NAME").to_string()),
            "provider" => Some(provider.unwrap_or("PROVIDER").to_string()),
            "host" => Some(ctx.host.unwrap_or("the server").to_string()),
            _ => {
                if let Some(spec) = name.strip_prefix("do:") {
                    // `{do:ACTION}` or `{do:ACTION:DEFAULT-PROVIDER}`
                    let (what, default) = spec.split_once(':').unwrap_or((spec, ""));
                    let p = provider.or((!default.is_empty()).then_some(default));
                    placeholder(what, ctx.account, p).map(|a| {
                        let s = say(&a);
                        if !actions.contains(&a) {
                            actions.push(a);
                        }
                        s
                    })
                } else if let Some(key) = name.strip_prefix("set:") {
                    setting_placeholder(key).map(say_setting)
                } else {
                    None
                }
            }
        };
        match said {
            Some(s) => out.push_str(&s),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}
