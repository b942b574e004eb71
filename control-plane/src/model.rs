//! What the API reads and returns: database rows, their JSON views, and the checks on
//! names, slugs and free text.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Error;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches (every new account but the first).
    Viewer,
    /// Owns channels (a viewer becomes one by creating a channel).
    Broadcaster,
    /// Moderates chat (reserved for the chat features).
    Moderator,
    /// Manages users (the first account on a fresh database).
    Admin,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Broadcaster => "broadcaster",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }
    pub(crate) fn parse(s: &str) -> Role {
        match s {
            "broadcaster" => Role::Broadcaster,
            "moderator" => Role::Moderator,
            "admin" => Role::Admin,
            _ => Role::Viewer,
        }
    }
}

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Normal.
    Active,
    /// Refused sign-in, tokens and stream keys until an admin restores it.
    Suspended,
}

/// Who may find and watch a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed and open to everyone.
    #[default]
    Public,
    /// Open to anyone with the link, not listed.
    Unlisted,
    /// Only the owner and the viewers they add, with a viewer token.
    Private,
}

impl Visibility {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
        }
    }
    pub(crate) fn parse(s: &str) -> Visibility {
        match s {
            "unlisted" => Visibility::Unlisted,
            "private" => Visibility::Private,
            _ => Visibility::Public,
        }
    }
}

/// A `users` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: String,
    pub role: String,
    pub status: String,
    pub session_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const USER_COLUMNS: &str = "id, email, username, password_hash, display_name, bio, \
     avatar_url, role, status, session_version, created_at, updated_at";

impl UserRow {
    pub(crate) fn role(&self) -> Role {
        Role::parse(&self.role)
    }
    pub(crate) fn suspended(&self) -> bool {
        self.status == "suspended"
    }
}

/// An account, as its owner and admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// Opaque id.
    pub id: String,
    /// Email address (lowercase).
    pub email: String,
    /// Unique public name.
    pub username: String,
    /// Name shown on the channel page.
    pub display_name: String,
    /// About text.
    pub bio: String,
    /// Picture URL.
    pub avatar_url: String,
    /// What the user may do.
    pub role: Role,
    /// Whether the user may sign in.
    pub status: Status,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            role: r.role(),
            status: if r.suspended() {
                Status::Suspended
            } else {
                Status::Active
            },
            id: r.id,
            email: r.email,
            username: r.username,
            display_name: r.display_name,
            bio: r.bio,
            avatar_url: r.avatar_url,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `?page=&per_page=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number [default: 1].
    #[param(minimum = 1, maximum = 100000)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 [default: 20].
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
}

impl PageQuery {
    /// (page, per_page, offset), checked.
    pub(crate) fn resolve(&self) -> Result<(u32, u32, i64), Error> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 || page > 100_000 {
            return Err(Error::Invalid("page must be from 1 to 100000".into()));
        }
        if per_page == 0 || per_page > 100 {
            return Err(Error::Invalid("per_page must be from 1 to 100".into()));
        }
        Ok((page, per_page, i64::from(page - 1) * i64::from(per_page)))
    }
}

/// Lowercases and checks an email address.
pub(crate) fn email(s: &str) -> Result<String, Error> {
    let e = s.trim().to_lowercase();
    let bad = || Error::Invalid("email must look like name@example.com".into());
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if e.len() > 254
        || local.is_empty()
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains('@')
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    Ok(e)
}

/// Lowercases and checks a username: 3–32 of `a-z 0-9 _`.
pub(crate) fn username(s: &str) -> Result<String, Error> {
    let u = s.trim().to_lowercase();
    if !(3..=32).contains(&u.len())
        || !u
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::Invalid(
            "username must be 3 to 32 characters of a-z, 0-9 and _".into(),
        ));
    }
    Ok(u)
}

/// Checks a channel slug: 3–40 of `a-z 0-9 -`, starting with a letter or digit. It is
/// also the stream name in the WHIP and WHEP URLs.
pub(crate) fn slug(s: &str) -> Result<String, Error> {
    let ok = (3..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Error::Invalid(
            "slug must be 3 to 40 characters of a-z, 0-9 and -, not starting with -".into(),
        ))
    }
}

/// Checks free text: at most `max` characters, no control characters but newlines.
pub(crate) fn text(field: &str, s: &str, max: usize) -> Result<String, Error> {
    if s.chars().count() > max {
        return Err(Error::Invalid(format!(
            "{field} must have at most {max} characters"
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(s.to_owned())
}

/// Checks a picture URL: empty, or http(s) and at most 500 characters.
pub(crate) fn url(field: &str, s: &str) -> Result<String, Error> {
    let s = text(field, s.trim(), 500)?;
    if s.is_empty() || s.starts_with("https://") || s.starts_with("http://") {
        Ok(s)
    } else {
        Err(Error::Invalid(format!("{field} must be an http(s) URL")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "ann", "@x.io", "ann@", "ann@x", "a b@x.io", "a@.io", "a@b@c.io",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert_eq!(username("Ann_1").unwrap(), "ann_1");
        for bad in ["ab", "a-b-c", "ann!", &"a".repeat(33)] {
            assert!(username(bad).is_err(), "{bad}");
        }
        assert!(slug("my-show").is_ok());
        for bad in ["-ab", "ab", "My-Show", "a/b/c", &"a".repeat(41)] {
            assert!(slug(bad).is_err(), "{bad}");
        }
        assert!(text("bio", "line\nline", 20).is_ok());
        assert!(text("bio", "bell\u{7}", 20).is_err());
        assert!(url("avatar_url", "javascript:alert(1)").is_err());
        assert!(url("avatar_url", "https://x.io/a.png").is_ok());
    }
}
