//! The body of a WHIP/WHEP PATCH: an `application/trickle-ice-sdpfrag` (RFC 8840).
//!
//! Parsed whole before anything is applied, so a fragment with one bad candidate changes
//! nothing. Remote input: never panics (fuzzed by `fuzz/fuzz_targets/trickle_ice.rs`).

use str0m::{Candidate, IceCreds};

use crate::error::SfuError;
use crate::session::sdp_attr;

/// What a fragment asks of a session.
#[derive(Debug)]
pub struct Fragment {
    /// New remote credentials: an ICE restart, answered with new local ones.
    pub restart: Option<IceCreds>,
    /// Trickled remote candidates, in order.
    pub candidates: Vec<Candidate>,
}

/// Parses `frag` for a session whose remote ICE username fragment is `current_ufrag`:
/// another ufrag means an ICE restart, which needs its password too.
pub fn parse(frag: &str, current_ufrag: &str) -> Result<Fragment, SfuError> {
    let restart = match (sdp_attr(frag, "ice-ufrag"), sdp_attr(frag, "ice-pwd")) {
        (Some(u), Some(p)) if u != current_ufrag => Some(IceCreds {
            ufrag: u.to_owned(),
            pass: p.to_owned(),
        }),
        (Some(u), None) if u != current_ufrag => {
            return Err(SfuError::BadFragment(
                "ICE restart without a=ice-pwd".into(),
            ))
        }
        _ => None,
    };
    let candidates = frag
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .map(|l| {
            Candidate::from_sdp_string(l)
                .map_err(|e| SfuError::BadFragment(format!("candidate: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Fragment {
        restart,
        candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickle_restart_and_refusals() {
        let trickle = "a=ice-ufrag:abcd\r\na=ice-pwd:pw\r\na=mid:0\r\n\
                       a=candidate:1 1 udp 2130706431 192.0.2.1 40000 typ host\r\n";
        let f = parse(trickle, "abcd").unwrap();
        assert!(f.restart.is_none());
        assert_eq!(f.candidates.len(), 1);

        let f = parse(trickle, "old").unwrap();
        let creds = f.restart.expect("a new ufrag is a restart");
        assert_eq!((creds.ufrag.as_str(), creds.pass.as_str()), ("abcd", "pw"));

        assert!(parse("a=ice-ufrag:new\r\n", "old").is_err());
        let bad = "a=candidate:1 1 udp 2130706431 192.0.2.1 40000 typ host\r\na=candidate:x\r\n";
        assert!(
            parse(bad, "abcd").is_err(),
            "one bad candidate refuses the fragment"
        );
        assert!(parse("", "abcd").unwrap().candidates.is_empty());
    }
}
