//! What an API key may call: its scopes, and the table of routes each scope opens. A
//! route not in the table (accounts, sign-in, admin, API keys themselves, a viewer's own
//! actions) takes no API key at all.

use axum::http::Method;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A permission an API key carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    /// Read a channel, its polls, questions, surveys and their results, and its
    /// analytics.
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
    /// Manage a channel: its settings, private viewers, stream keys, polls, surveys and
    /// webhooks.
    #[serde(rename = "channel:manage")]
    ChannelManage,
    /// Moderate a channel's chat: messages, pins, settings, bans, blocked terms, reports,
    /// the moderation log and Q&A.
    #[serde(rename = "chat:moderate")]
    ChatModerate,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [
        Scope::AnalyticsRead,
        Scope::ChannelManage,
        Scope::ChatModerate,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AnalyticsRead => "analytics:read",
            Scope::ChannelManage => "channel:manage",
            Scope::ChatModerate => "chat:moderate",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

use Scope::{AnalyticsRead as READ, ChannelManage as MANAGE, ChatModerate as MODERATE};

/// (method, route template under `/api/v1`, the scopes any of which opens it).
const ROUTES: &[(&str, &str, &[Scope])] = &[
    ("GET", "/me/channels", &[READ, MANAGE, MODERATE]),
    ("GET", "/channels", &[READ, MANAGE, MODERATE]),
    ("GET", "/channels/{slug}", &[READ, MANAGE, MODERATE]),
    ("GET", "/channels/{slug}/polls", &[READ, MANAGE]),
    ("GET", "/channels/{slug}/questions", &[READ, MODERATE]),
    ("GET", "/channels/{slug}/surveys", &[READ, MANAGE]),
    (
        "GET",
        "/channels/{slug}/surveys/{id}/results",
        &[READ, MANAGE],
    ),
    ("GET", "/channels/{slug}/analytics", &[READ]),
    ("GET", "/channels/{slug}/analytics.csv", &[READ]),
    (
        "GET",
        "/channels/{slug}/analytics/streams/{broadcast_id}",
        &[READ],
    ),
    ("PATCH", "/channels/{slug}", &[MANAGE]),
    ("POST", "/channels/{slug}/ad-breaks", &[MANAGE]),
    ("GET", "/channels/{slug}/ads", &[MANAGE]),
    ("PUT", "/channels/{slug}/ads", &[MANAGE]),
    ("GET", "/channels/{slug}/sponsors", &[READ, MANAGE]),
    ("POST", "/channels/{slug}/sponsors", &[MANAGE]),
    ("DELETE", "/channels/{slug}/sponsors/{id}", &[MANAGE]),
    ("POST", "/channels/{slug}/viewers", &[MANAGE]),
    ("DELETE", "/channels/{slug}/viewers/{username}", &[MANAGE]),
    ("POST", "/channels/{slug}/viewer-token", &[MANAGE]),
    ("GET", "/channels/{slug}/keys", &[MANAGE]),
    ("POST", "/channels/{slug}/keys", &[MANAGE]),
    ("DELETE", "/channels/{slug}/keys/{id}", &[MANAGE]),
    ("POST", "/channels/{slug}/keys/{id}/rotate", &[MANAGE]),
    ("POST", "/channels/{slug}/polls", &[MANAGE]),
    ("POST", "/channels/{slug}/polls/{id}/close", &[MANAGE]),
    ("POST", "/channels/{slug}/surveys", &[MANAGE]),
    ("POST", "/channels/{slug}/surveys/{id}/close", &[MANAGE]),
    ("GET", "/webhooks", &[MANAGE]),
    ("POST", "/webhooks", &[MANAGE]),
    ("GET", "/webhooks/{id}", &[MANAGE]),
    ("PATCH", "/webhooks/{id}", &[MANAGE]),
    ("DELETE", "/webhooks/{id}", &[MANAGE]),
    ("POST", "/webhooks/{id}/rotate", &[MANAGE]),
    ("GET", "/webhooks/{id}/deliveries", &[MANAGE]),
    (
        "POST",
        "/webhooks/{id}/events/{event_id}/redeliver",
        &[MANAGE],
    ),
    ("POST", "/webhooks/{id}/test", &[MANAGE]),
    ("GET", "/channels/{slug}/chat/messages", &[MODERATE]),
    ("POST", "/channels/{slug}/chat/messages", &[MODERATE]),
    ("DELETE", "/channels/{slug}/chat/messages/{id}", &[MODERATE]),
    ("PUT", "/channels/{slug}/chat/pinned", &[MODERATE]),
    ("DELETE", "/channels/{slug}/chat/pinned", &[MODERATE]),
    ("GET", "/channels/{slug}/chat/settings", &[MODERATE]),
    ("PATCH", "/channels/{slug}/chat/settings", &[MODERATE]),
    ("GET", "/channels/{slug}/moderators", &[MODERATE]),
    ("GET", "/channels/{slug}/bans", &[MODERATE]),
    ("POST", "/channels/{slug}/bans", &[MODERATE]),
    ("DELETE", "/channels/{slug}/bans/{username}", &[MODERATE]),
    ("GET", "/channels/{slug}/blocked-terms", &[MODERATE]),
    ("POST", "/channels/{slug}/blocked-terms", &[MODERATE]),
    ("DELETE", "/channels/{slug}/blocked-terms/{id}", &[MODERATE]),
    ("GET", "/channels/{slug}/reports", &[MODERATE]),
    ("POST", "/channels/{slug}/reports/{id}/resolve", &[MODERATE]),
    ("GET", "/channels/{slug}/modlog", &[MODERATE]),
    ("PATCH", "/channels/{slug}/questions/{id}", &[MODERATE]),
];

/// The scopes that open `method route` (`route` as matched, with or without the
/// `/api/v1` prefix); `None`: no API key may call it.
pub fn required(method: &Method, route: &str) -> Option<&'static [Scope]> {
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    ROUTES
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, scopes)| *scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_maps_routes_to_scopes() {
        assert_eq!(
            required(&Method::PATCH, "/api/v1/channels/{slug}"),
            Some(&[MANAGE][..])
        );
        assert!(required(&Method::GET, "/channels/{slug}")
            .unwrap()
            .contains(&READ));
        assert_eq!(required(&Method::DELETE, "/api/v1/channels/{slug}"), None);
        assert_eq!(required(&Method::POST, "/api/v1/api-keys"), None);
        assert_eq!(required(&Method::GET, "/api/v1/admin/users"), None);
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
    }
}
