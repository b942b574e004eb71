//! What every client of a room receives (the live events of `docs/CHAT.md`), and the
//! views the REST API returns.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::interact::{Poll, Question, Survey};

/// Who wrote something, as everyone sees them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Author {
    /// Unique name.
    pub username: String,
    /// Name shown.
    pub display_name: String,
}

/// A chat message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    /// Increases per room.
    pub id: i64,
    /// Its author.
    pub user: Author,
    /// Plain text (render it as text, never as HTML); masked terms are `***`.
    pub text: String,
    /// The message this answers.
    pub reply_to: Option<i64>,
    /// Usernames mentioned with `@`.
    pub mentions: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Who may post in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Any signed-in account.
    #[default]
    Everyone,
    /// Accounts that follow the channel.
    Followers,
    /// The owner and moderators.
    Moderators,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Everyone => "everyone",
            Mode::Followers => "followers",
            Mode::Moderators => "moderators",
        }
    }
    pub(crate) fn parse(s: &str) -> Mode {
        match s {
            "followers" => Mode::Followers,
            "moderators" => Mode::Moderators,
            _ => Mode::Everyone,
        }
    }
}

/// A room's settings.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, Default)]
pub struct Settings {
    /// Seconds between two posts of one user (0: off); moderators are exempt.
    pub slow_mode_secs: i64,
    /// Who may post.
    pub mode: Mode,
    /// Whether the built-in list of blocked terms applies.
    pub default_terms: bool,
}

/// A live event, fanned out to every client of the room on every node.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new message.
    Message {
        /// It.
        message: Message,
    },
    /// Messages removed (one deletion, or all of a user's after a ban).
    Deleted {
        /// Their ids.
        ids: Vec<i64>,
    },
    /// The pinned message changed.
    Pinned {
        /// The new one, or none.
        message: Option<Message>,
    },
    /// The settings changed.
    Settings {
        /// The new ones.
        settings: Settings,
    },
    /// A poll was created, got votes, or closed.
    Poll {
        /// Its state.
        poll: Poll,
    },
    /// A question was asked or changed (`hidden`: remove it).
    Question {
        /// Its state.
        question: Question,
    },
    /// A survey opened or closed.
    Survey {
        /// Its state.
        survey: Survey,
    },
    /// A tip's payment succeeded: the on-stream alert.
    Tip {
        /// It.
        tip: crate::money::tips::Tip,
    },
}

impl Event {
    /// The message id this event carries, if it is a new message (clients and the
    /// connection drop what they already have).
    pub fn message_id(&self) -> Option<i64> {
        match self {
            Event::Message { message } => Some(message.id),
            _ => None,
        }
    }
}
