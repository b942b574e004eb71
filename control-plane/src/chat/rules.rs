//! What a post must pass, as pure functions of the text, the author's recent posts and the
//! room's settings (time is an argument): length, pace (slow mode, flood, duplicates) and
//! blocked terms. The database supplies the inputs; nothing here does I/O.

use serde::Serialize;
use utoipa::ToSchema;

/// Longest message, in characters after trimming.
pub const MAX_LEN: usize = 500;
/// At most [`FLOOD_MAX`] posts per user and room in this window.
pub const FLOOD_WINDOW_MS: i64 = 10_000;
/// See [`FLOOD_WINDOW_MS`].
pub const FLOOD_MAX: usize = 5;
/// The same text twice within this window is a duplicate.
pub const DUPLICATE_WINDOW_MS: i64 = 30_000;
/// What a masked term becomes.
pub const MASK: &str = "***";

/// Why a post, vote or other action was refused: shown to the user as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// No account (anonymous readers cannot post).
    Unauthorized,
    /// Banned from the room (or everywhere).
    Banned,
    /// Timed out for a while.
    TimedOut,
    /// Slow mode: wait before the next post.
    SlowMode,
    /// Too many posts in a short time.
    Flood,
    /// The same text again.
    Duplicate,
    /// Over [`MAX_LEN`] characters.
    TooLong,
    /// Nothing but spaces.
    Empty,
    /// Contains a term the room rejects.
    BlockedTerm,
    /// Only followers may post.
    FollowersOnly,
    /// Only moderators may post.
    ModeratorsOnly,
    /// Not a moderator (or the owner) of this room.
    Forbidden,
    /// The thing referred to does not exist.
    NotFound,
    /// A second vote, a vote on a closed poll, a second response.
    Conflict,
    /// A frame or field that makes no sense.
    BadFrame,
}

impl Code {
    /// The HTTP status that carries this refusal.
    pub fn status(self) -> u16 {
        match self {
            Code::Unauthorized => 401,
            Code::Banned
            | Code::TimedOut
            | Code::FollowersOnly
            | Code::ModeratorsOnly
            | Code::Forbidden => 403,
            Code::NotFound => 404,
            Code::Duplicate | Code::Conflict => 409,
            Code::TooLong | Code::Empty | Code::BlockedTerm => 422,
            Code::SlowMode | Code::Flood => 429,
            Code::BadFrame => 400,
        }
    }
}

/// A refusal with its reason and, when waiting helps, how long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Refusal {
    /// What kind.
    pub code: Code,
    /// The reason, for the user.
    pub detail: String,
    /// Seconds until trying again can succeed.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal without a wait.
    pub fn new(code: Code, detail: impl Into<String>) -> Refusal {
        Refusal {
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    fn wait(code: Code, detail: String, ms: i64) -> Refusal {
        Refusal {
            code,
            detail,
            retry_after: Some(secs_up(ms)),
        }
    }
}

/// Whole seconds, rounded up, at least one.
pub(crate) fn secs_up(ms: i64) -> u64 {
    u64::try_from((ms.max(1) + 999) / 1000).unwrap_or(1)
}

/// Trims and checks a message's text.
pub fn text(raw: &str) -> Result<String, Refusal> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(Refusal::new(Code::Empty, "the message is empty"));
    }
    if t.chars().count() > MAX_LEN {
        return Err(Refusal::new(
            Code::TooLong,
            format!("messages have at most {MAX_LEN} characters"),
        ));
    }
    // Newlines and tabs become spaces; other control characters (and bidi overrides that
    // would reorder the rest of the line) are dropped.
    Ok(t.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => None,
            c => Some(c),
        })
        .collect())
}

/// One of the author's earlier posts in the room.
#[derive(Debug, Clone)]
pub struct Earlier {
    /// Unix milliseconds.
    pub at: i64,
    /// Its stored text.
    pub text: String,
}

/// Slow mode, flood and duplicate checks against the author's latest posts (newest
/// first, at least [`FLOOD_MAX`] of them when there are). Moderators are `exempt` from
/// slow mode and flood, not from duplicates.
pub fn pace(
    now: i64,
    text: &str,
    earlier: &[Earlier],
    slow_mode_secs: i64,
    exempt: bool,
) -> Result<(), Refusal> {
    if !exempt {
        if let Some(last) = earlier.first() {
            let wait = last.at + slow_mode_secs * 1000 - now;
            if slow_mode_secs > 0 && wait > 0 {
                return Err(Refusal::wait(
                    Code::SlowMode,
                    format!("slow mode: one message every {slow_mode_secs} s"),
                    wait,
                ));
            }
        }
        let in_window: Vec<&Earlier> = earlier
            .iter()
            .filter(|e| now - e.at < FLOOD_WINDOW_MS)
            .take(FLOOD_MAX)
            .collect();
        if in_window.len() >= FLOOD_MAX {
            let oldest = in_window[FLOOD_MAX - 1].at;
            return Err(Refusal::wait(
                Code::Flood,
                format!(
                    "too many messages: at most {FLOOD_MAX} in {} s",
                    FLOOD_WINDOW_MS / 1000
                ),
                oldest + FLOOD_WINDOW_MS - now,
            ));
        }
    }
    let same = earlier
        .iter()
        .take_while(|e| now - e.at < DUPLICATE_WINDOW_MS)
        .any(|e| e.text.to_lowercase() == text.to_lowercase());
    if same {
        return Err(Refusal::new(
            Code::Duplicate,
            "you sent the same message a moment ago",
        ));
    }
    Ok(())
}

/// The `@name`s a message mentions (usernames: 3 to 32 of a-z, 0-9 and _), at most 10.
pub fn mentions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split('@').skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
            .to_ascii_lowercase();
        if (3..=32).contains(&name.len()) && !out.contains(&name) {
            out.push(name);
            if out.len() == 10 {
                break;
            }
        }
    }
    out
}

/// What a blocked term does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TermAction {
    /// Replace it with `***`.
    Mask,
    /// Refuse the message.
    Reject,
}

impl TermAction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TermAction::Mask => "mask",
            TermAction::Reject => "reject",
        }
    }
    pub(crate) fn parse(s: &str) -> TermAction {
        if s == "reject" {
            TermAction::Reject
        } else {
            TermAction::Mask
        }
    }
}

/// The terms masked in every room that keeps the default list on.
pub const DEFAULT_TERMS: &[&str] = &[
    "fuck*", "*fucker", "motherf*", "shit", "shitty", "bullshit", "cunt*", "nigger*", "faggot*",
    "retard", "retards", "kys",
];

/// A room's blocked terms, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct Terms {
    list: Vec<(Term, TermAction)>,
}

/// A term: one word with `*` wildcards (matched against each word, ignoring case), or a
/// phrase of several words (matched as a substring, ignoring case).
#[derive(Debug, Clone)]
enum Term {
    Word(wildmatch::WildMatch),
    Phrase(String),
}

/// Checks a term as a moderator types it: 1 to 50 characters, not only wildcards.
pub fn term(raw: &str) -> Result<String, Refusal> {
    let t = raw.trim().to_lowercase();
    let letters = t.chars().filter(|c| *c != '*' && *c != ' ').count();
    if letters == 0 || t.chars().count() > 50 || t.chars().any(char::is_control) {
        return Err(Refusal::new(
            Code::BadFrame,
            "a term has 1 to 50 characters, not only wildcards",
        ));
    }
    Ok(t)
}

impl Terms {
    /// Adds a term (already checked with [`term`]).
    pub fn push(&mut self, term: &str, action: TermAction) {
        let t = term.to_lowercase();
        let parsed = if t.contains(' ') {
            Term::Phrase(t.replace('*', ""))
        } else {
            Term::Word(wildmatch::WildMatch::new(&t))
        };
        self.list.push((parsed, action));
    }

    /// The built-in list, masked.
    pub fn with_defaults(mut self) -> Terms {
        for t in DEFAULT_TERMS {
            self.push(t, TermAction::Mask);
        }
        self
    }

    /// The text with masked terms replaced, or a refusal when a rejected term is in it.
    pub fn apply(&self, text: &str) -> Result<String, Refusal> {
        if self.list.is_empty() {
            return Ok(text.to_owned());
        }
        // Phrases first, on the whole text.
        let mut out = text.to_owned();
        for (t, action) in &self.list {
            let Term::Phrase(p) = t else { continue };
            if let Some(masked) = mask_phrase(&out, p) {
                if *action == TermAction::Reject {
                    return Err(rejected());
                }
                out = masked;
            }
        }
        let mut masked = String::with_capacity(out.len());
        let mut word = String::new();
        for c in out.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() || c == '\'' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                masked.push_str(self.word(&word)?);
                word.clear();
            }
            masked.push(c);
        }
        masked.pop();
        Ok(masked)
    }

    fn word<'a>(&self, word: &'a str) -> Result<&'a str, Refusal> {
        let lower = word.to_lowercase();
        let mut hit = false;
        for (t, action) in &self.list {
            let Term::Word(m) = t else { continue };
            if m.matches(&lower) {
                if *action == TermAction::Reject {
                    return Err(rejected());
                }
                hit = true;
            }
        }
        Ok(if hit { MASK } else { word })
    }
}

fn rejected() -> Refusal {
    Refusal::new(
        Code::BlockedTerm,
        "the message contains a term this channel does not allow",
    )
}

/// The text with every occurrence of `phrase` (lowercase) masked, ignoring case; `None`
/// when there is none. Compared char by char (lowercasing can change a char's length, so
/// byte offsets of a lowercased copy do not fit the original).
fn mask_phrase(text: &str, phrase: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut hit = false;
    let mut skip_to = 0;
    for (i, c) in text.char_indices() {
        if i < skip_to {
            continue;
        }
        if let Some(len) = match_len(&text[i..], phrase) {
            out.push_str(MASK);
            skip_to = i + len;
            hit = true;
        } else {
            out.push(c);
        }
    }
    hit.then_some(out)
}

/// The byte length of the start of `rest` that equals `phrase` ignoring case.
fn match_len(rest: &str, phrase: &str) -> Option<usize> {
    let mut want = phrase.chars().peekable();
    want.peek()?;
    for (off, c) in rest.char_indices() {
        for l in c.to_lowercase() {
            if want.next() != Some(l) {
                return None;
            }
        }
        if want.peek().is_none() {
            return Some(off + c.len_utf8());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earlier(list: &[(i64, &str)]) -> Vec<Earlier> {
        list.iter()
            .map(|(at, t)| Earlier {
                at: *at,
                text: (*t).into(),
            })
            .collect()
    }

    #[test]
    fn text_is_trimmed_bounded_and_flattened() {
        assert_eq!(text("  hi\nthere  ").unwrap(), "hi there");
        assert_eq!(text("   ").unwrap_err().code, Code::Empty);
        assert_eq!(text(&"é".repeat(500)).unwrap().chars().count(), 500);
        assert_eq!(text(&"é".repeat(501)).unwrap_err().code, Code::TooLong);
        assert_eq!(text("a\u{202E}b\u{7}c").unwrap(), "abc");
    }

    #[test]
    fn slow_mode_says_how_long_to_wait() {
        let e = earlier(&[(10_000, "first")]);
        let r = pace(12_500, "second", &e, 5, false).unwrap_err();
        assert_eq!((r.code, r.retry_after), (Code::SlowMode, Some(3)));
        assert!(pace(15_000, "second", &e, 5, false).is_ok());
        assert!(
            pace(12_500, "second", &e, 5, true).is_ok(),
            "moderators are exempt"
        );
    }

    #[test]
    fn flood_counts_the_window() {
        let e = earlier(&[
            (9_000, "e"),
            (8_000, "d"),
            (7_000, "c"),
            (6_000, "b"),
            (0, "a"),
        ]);
        assert!(
            pace(10_000, "f", &e, 0, false).is_ok(),
            "four in the window"
        );
        let e = earlier(&[
            (9_000, "e"),
            (8_000, "d"),
            (7_000, "c"),
            (6_000, "b"),
            (5_000, "a"),
        ]);
        let r = pace(10_000, "f", &e, 0, false).unwrap_err();
        assert_eq!((r.code, r.retry_after), (Code::Flood, Some(5)));
    }

    #[test]
    fn duplicates_within_the_window_ignoring_case() {
        let e = earlier(&[(1_000, "Hello")]);
        assert_eq!(
            pace(20_000, "hello", &e, 0, true).unwrap_err().code,
            Code::Duplicate
        );
        assert!(pace(31_001, "hello", &e, 0, false).is_ok());
    }

    #[test]
    fn mentions_are_usernames() {
        assert_eq!(
            mentions("hi @Alice_1 and @bob, @al @alice_1 mail@x.io"),
            vec!["alice_1", "bob"]
        );
    }

    #[test]
    fn terms_mask_words_and_wildcards_and_reject() {
        let mut t = Terms::default();
        t.push("darn", TermAction::Mask);
        t.push("spam*", TermAction::Mask);
        t.push("buy followers", TermAction::Reject);
        assert_eq!(t.apply("Darn, SPAMMER here!").unwrap(), "***, *** here!");
        assert_eq!(t.apply("darnation is fine").unwrap(), "darnation is fine");
        assert_eq!(
            t.apply("Buy Followers now").unwrap_err().code,
            Code::BlockedTerm
        );
        let d = Terms::default().with_defaults();
        assert_eq!(d.apply("what the fuck").unwrap(), "what the ***");
        assert_eq!(d.apply("Scunthorpe shitake").unwrap(), "Scunthorpe shitake");
        let mut p = Terms::default();
        p.push("bad phrase", TermAction::Mask);
        assert_eq!(p.apply("a Bad Phrase here").unwrap(), "a *** here");
        // Chars whose lowercase has another length (İ: 2 bytes → 3, ẞ: 3 → 2) keep the
        // rest of the text in place.
        assert_eq!(p.apply("İẞ bad phrase ẞİ").unwrap(), "İẞ *** ẞİ");
        let mut q = Terms::default();
        q.push("straße ok", TermAction::Mask);
        assert_eq!(q.apply("STRAẞE OK!").unwrap(), "***!");
    }

    /// Seeded random text, heavy in chars whose case mapping changes their length, through
    /// every pure function a post meets: none panics, masking keeps what it does not mask.
    #[test]
    fn random_text_never_panics() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "aAbB sSxX*@_'İıẞßΣσςǅﬁ\u{301}\u{202E}\n\t😀<>&\""
            .chars()
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut terms = Terms::default().with_defaults();
        for t in ["ss*", "*ß", "i̇s", "a b", "ﬁ x", "σ"] {
            terms.push(t, TermAction::Mask);
        }
        for _ in 0..20_000 {
            let n = rng.random_range(0..40);
            let s: String = (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let _ = mentions(&s);
            let _ = term(&s);
            if let Ok(t) = text(&s) {
                let masked = terms.apply(&t).unwrap();
                assert!(masked.chars().count() <= t.chars().count() + 3 * t.chars().count());
            }
        }
    }

    #[test]
    fn term_checks() {
        assert!(term("*").is_err());
        assert!(term(" * * ").is_err());
        assert_eq!(term(" Spam* ").unwrap(), "spam*");
        assert!(term(&"x".repeat(51)).is_err());
    }
}
