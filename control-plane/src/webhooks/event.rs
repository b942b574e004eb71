//! What a webhook says: the event types an endpoint subscribes to, and the body sent
//! (Standard Webhooks' shape: `{"type", "timestamp", "data"}`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// An event type, as endpoints name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    /// A publisher went live.
    #[serde(rename = "stream.started")]
    StreamStarted,
    /// The publisher stopped.
    #[serde(rename = "stream.ended")]
    StreamEnded,
    /// Concurrent viewers reached 10, 100, 1000, … (once per broadcast each).
    #[serde(rename = "viewers.milestone")]
    ViewersMilestone,
    /// A viewer reported a chat message.
    #[serde(rename = "chat.message_reported")]
    ChatMessageReported,
    /// A viewer subscribed (emitted by the monetization code).
    #[serde(rename = "subscription.created")]
    SubscriptionCreated,
    /// A viewer tipped.
    #[serde(rename = "tip.received")]
    TipReceived,
    /// An ad break began.
    #[serde(rename = "ad_break.started")]
    AdBreakStarted,
    /// A recording is ready.
    #[serde(rename = "recording.ready")]
    RecordingReady,
    /// A channel went live and its followers were told (in-app notifications).
    #[serde(rename = "followers.notified")]
    FollowersNotified,
    /// Sent by `POST /webhooks/{id}/test` to that endpoint alone (needs no subscription).
    #[serde(rename = "webhook.test")]
    Test,
}

impl EventType {
    /// Every type an endpoint may subscribe to.
    pub const ALL: [EventType; 9] = [
        EventType::StreamStarted,
        EventType::StreamEnded,
        EventType::ViewersMilestone,
        EventType::ChatMessageReported,
        EventType::SubscriptionCreated,
        EventType::TipReceived,
        EventType::AdBreakStarted,
        EventType::RecordingReady,
        EventType::FollowersNotified,
    ];

    /// The wire name, e.g. `stream.started`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::StreamStarted => "stream.started",
            EventType::StreamEnded => "stream.ended",
            EventType::ViewersMilestone => "viewers.milestone",
            EventType::ChatMessageReported => "chat.message_reported",
            EventType::SubscriptionCreated => "subscription.created",
            EventType::TipReceived => "tip.received",
            EventType::AdBreakStarted => "ad_break.started",
            EventType::RecordingReady => "recording.ready",
            EventType::FollowersNotified => "followers.notified",
            EventType::Test => "webhook.test",
        }
    }

    /// The type named `s`, if it is one endpoints may subscribe to.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// An event to send. The monetization, ad and recording code emit theirs through
/// [`super::Webhooks::emit`] with their own `data` object.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A publisher went live on `stream` (the channel's slug).
    StreamStarted {
        /// The channel's slug.
        stream: String,
    },
    /// The publisher of `stream` stopped after `duration_secs`.
    StreamEnded {
        /// The channel's slug.
        stream: String,
        /// How long it was live.
        duration_secs: u64,
        /// The most viewers at once.
        peak_viewers: u32,
    },
    /// `stream` reached `milestone` concurrent viewers (`viewers` now).
    ViewersMilestone {
        /// The channel's slug.
        stream: String,
        /// 10, 100, 1000, …
        milestone: u32,
        /// Viewers when it was seen.
        viewers: u32,
    },
    /// A chat message was reported.
    ChatMessageReported {
        /// The channel's slug.
        channel: String,
        /// The report's id.
        report_id: String,
        /// The message's id in the room.
        message_id: i64,
        /// Who reported it.
        reporter: String,
        /// Their reason.
        reason: String,
    },
    /// Placeholder events: the type and a `data` object made by whoever emits them.
    Other(EventType, Value),
    /// A test event for one endpoint.
    Test,
}

impl Event {
    /// Its type.
    pub fn kind(&self) -> EventType {
        match self {
            Event::StreamStarted { .. } => EventType::StreamStarted,
            Event::StreamEnded { .. } => EventType::StreamEnded,
            Event::ViewersMilestone { .. } => EventType::ViewersMilestone,
            Event::ChatMessageReported { .. } => EventType::ChatMessageReported,
            Event::Other(kind, _) => *kind,
            Event::Test => EventType::Test,
        }
    }

    /// Its `data` object.
    pub fn data(&self) -> Value {
        match self {
            Event::StreamStarted { stream } => json!({ "stream": stream }),
            Event::StreamEnded {
                stream,
                duration_secs,
                peak_viewers,
            } => json!({
                "stream": stream,
                "duration_secs": duration_secs,
                "peak_viewers": peak_viewers,
            }),
            Event::ViewersMilestone {
                stream,
                milestone,
                viewers,
            } => json!({ "stream": stream, "milestone": milestone, "viewers": viewers }),
            Event::ChatMessageReported {
                channel,
                report_id,
                message_id,
                reporter,
                reason,
            } => json!({
                "channel": channel,
                "report_id": report_id,
                "message_id": message_id,
                "reporter": reporter,
                "reason": reason,
            }),
            Event::Other(_, data) => data.clone(),
            Event::Test => json!({ "message": "a test event from Cascade" }),
        }
    }

    /// The body sent: `{"type", "timestamp" (RFC 3339, UTC), "data"}`.
    pub fn body(&self, now_ms: i64) -> String {
        json!({
            "type": self.kind().as_str(),
            "timestamp": rfc3339(now_ms),
            "data": self.data(),
        })
        .to_string()
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds, e.g. `2024-03-01T12:00:00.250Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_250), "2000-02-29T00:00:00.250Z");
        assert_eq!(rfc3339(1_709_294_400_000), "2024-03-01T12:00:00.000Z");
    }

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert_eq!(EventType::parse("webhook.test"), None);
    }

    #[test]
    fn body_has_the_standard_shape() {
        let b: Value = serde_json::from_str(
            &Event::StreamStarted {
                stream: "news".into(),
            }
            .body(0),
        )
        .unwrap();
        assert_eq!(b["type"], "stream.started");
        assert_eq!(b["data"]["stream"], "news");
        assert_eq!(b["timestamp"], "1970-01-01T00:00:00.000Z");
    }
}
