//! The one thing the worker reads from a STUN message itself: whose session it is for.
//! A binding request's USERNAME is `<receiver's ufrag>:<sender's ufrag>` (RFC 8445
//! §7.2.2), so the first half is the ufrag our answer announced: a map lookup finds the
//! session, where asking every session's str0m agent cost time linear in the sessions.
//! str0m still checks the message's integrity with that session's password.

/// The STUN attribute type of USERNAME (RFC 8489 §14.3).
const USERNAME: u16 = 0x0006;
/// Length of the STUN header.
const HEADER: usize = 20;

/// The local (our) ufrag named by a STUN message's USERNAME, if it has one.
pub fn local_ufrag(msg: &[u8]) -> Option<&str> {
    let len = usize::from(u16::from_be_bytes([*msg.get(2)?, *msg.get(3)?]));
    let body = msg.get(HEADER..HEADER + len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + n)?;
        if kind == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            return name.split(':').next().filter(|u| !u.is_empty());
        }
        // Values are padded to a multiple of four bytes.
        rest = rest.get(4 + n.div_ceil(4) * 4..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = kind.to_be_bytes().to_vec();
        a.extend((value.len() as u16).to_be_bytes());
        a.extend(value);
        a.resize(a.len().div_ceil(4) * 4, 0);
        a
    }

    fn message(attrs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = attrs.concat();
        let mut m = vec![0x00, 0x01];
        m.extend((body.len() as u16).to_be_bytes());
        m.extend([0x21, 0x12, 0xa4, 0x42]);
        m.extend([7u8; 12]);
        m.extend(body);
        m
    }

    #[test]
    fn finds_the_local_half_of_the_username_after_other_attributes() {
        let m = message(&[
            attr(0x8022, b"soft"), // SOFTWARE, padded
            attr(USERNAME, b"abcd:efgh1"),
            attr(0x0008, &[0u8; 20]),
        ]);
        assert_eq!(local_ufrag(&m), Some("abcd"));
    }

    #[test]
    fn truncated_or_missing_usernames_are_none() {
        let m = message(&[attr(USERNAME, b"abcd:efgh")]);
        assert_eq!(
            local_ufrag(&m[..m.len() - 2]),
            None,
            "length runs past the end"
        );
        assert_eq!(local_ufrag(&message(&[attr(0x8022, b"x")])), None);
        assert_eq!(local_ufrag(&message(&[attr(USERNAME, b":x")])), None);
        assert_eq!(local_ufrag(&[0u8; 3]), None);
        let mut bad = message(&[attr(USERNAME, b"abcd:efgh")]);
        bad[22] = 0xff; // attribute length past the body
        assert_eq!(local_ufrag(&bad), None);
    }
}
