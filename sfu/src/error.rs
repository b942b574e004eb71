//! The engine's one error type. The HTTP edge maps each variant to a status once.

/// What can go wrong when opening, changing or closing a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// The SDP offer could not be parsed or accepted; the reason is safe to show.
    #[error("bad SDP offer: {0}")]
    BadSdp(String),
    /// The trickle/restart fragment could not be understood.
    #[error("bad ICE fragment: {0}")]
    BadFragment(String),
    /// The stream already has a publisher.
    #[error("stream is already being published")]
    StreamBusy,
    /// No such session (never existed, or ended).
    #[error("no such session")]
    NoSuchSession,
    /// The node's session limit is reached.
    #[error("session limit reached")]
    AtCapacity,
    /// Too many sessions or handshakes from one client address.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// Too many handshakes in progress, node-wide or on the stream: retry shortly.
    #[error("{0}")]
    Overloaded(&'static str),
    /// The ICE restart named an ETag that is not current.
    #[error("the session changed since that ETag")]
    EtagMismatch,
    /// A worker did not answer (stopped or overloaded).
    #[error("media worker unavailable")]
    WorkerUnavailable,
    /// A socket or thread could not be set up.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Longest reason returned to a client.
const MAX_REASON: usize = 300;

/// An offer str0m refused, said in words. str0m's parse errors come from `combine` and
/// begin with `Parse error at PointerOffset(0x7f…)`: a heap address, useless to the
/// client and a gift to an attacker. That line becomes the line number it points at in
/// the offer; the rest (`Unexpected …`, `Expected …`) is kept; nothing with a `0x` is.
pub(crate) fn bad_offer(err: &dyn std::fmt::Display, offer: &str) -> SfuError {
    let text = err.to_string();
    let text = text
        .strip_prefix("SDP parse: ")
        .or_else(|| text.strip_prefix("SDP inconsistent: "))
        .unwrap_or(&text);
    let mut at = None;
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(hex) = line
            .split("PointerOffset(0x")
            .nth(1)
            .and_then(|r| r.split(')').next())
        {
            at = usize::from_str_radix(hex, 16)
                .ok()
                .and_then(|addr| addr.checked_sub(offer.as_ptr() as usize))
                .filter(|off| *off <= offer.len())
                .map(|off| {
                    offer.as_bytes()[..off]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1
                });
        } else if !line.contains("0x") {
            let mut chars = line.chars();
            let first = chars.next().map(|c| c.to_ascii_lowercase());
            parts.push(first.into_iter().chain(chars).collect::<String>());
        }
    }
    let mut reason = match at {
        Some(n) => format!("malformed SDP at line {n}"),
        None => "malformed SDP".to_owned(),
    };
    if !parts.is_empty() {
        reason.push_str(": ");
        reason.push_str(&parts.join("; "));
    }
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    SfuError::BadSdp(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_names_the_line_not_an_address() {
        let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=zero\r\n";
        let err = match str0m::change::SdpOffer::from_sdp_string(offer) {
            Ok(_) => panic!("parsed"),
            Err(e) => e,
        };
        assert!(
            err.to_string().contains("0x"),
            "str0m's own text has the address: {err}"
        );
        let said = bad_offer(&err, offer).to_string();
        assert!(!said.contains("0x") && !said.contains("Pointer"), "{said}");
        assert!(
            said.starts_with("bad SDP offer: malformed SDP at line 4: unexpected `z`"),
            "{said}"
        );
    }

    #[test]
    fn plain_reasons_pass_through_and_long_ones_are_cut() {
        let said = bad_offer(&"SDP inconsistent: Expected at least one PT for mid: 0", "");
        assert_eq!(
            said.to_string(),
            "bad SDP offer: malformed SDP: expected at least one PT for mid: 0"
        );
        let long = "é".repeat(400);
        assert!(bad_offer(&long, "").to_string().len() < MAX_REASON + 40);
    }
}
