//! Polls, surveys and live Q&A: rooms' interactions beside chat. Each changes the record
//! over REST and announces the change to the room with [`crate::chat::Chat::publish`].

pub mod polls;
pub mod questions;
pub mod surveys;

pub use polls::Poll;
pub use questions::Question;
pub use surveys::Survey;

/// Parses a JSON list column, empty when unreadable.
pub(crate) fn json_list<T: serde::de::DeserializeOwned>(s: &str) -> Vec<T> {
    serde_json::from_str(s).unwrap_or_default()
}

/// Text of a question, option or prompt: trimmed, 1 to `max` characters.
pub(crate) fn line(field: &str, s: &str, max: usize) -> Result<String, crate::Error> {
    let t = crate::model::text(field, s.trim(), max)?;
    if t.is_empty() {
        return Err(crate::Error::Invalid(format!("{field} must not be empty")));
    }
    Ok(t)
}
