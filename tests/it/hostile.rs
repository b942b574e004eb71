//! Seeded fuzzing of the request path: a valid offer mangled in many ways is either
//! accepted or refused with a 4xx and a reason, never a 5xx, and the node keeps serving.

use crate::peer::Peer;
use crate::server::Server;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mangle(offer: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = offer.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let l = &mut lines[i];
                let cut = rng.below(l.len() + 1);
                l.truncate(cut);
            }
            3 => {
                // Flip one byte to something printable.
                let mut b = lines[i].clone().into_bytes();
                if !b.is_empty() {
                    let j = rng.below(b.len());
                    b[j] = b' ' + (rng.next() % 94) as u8;
                }
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
            4 => lines[i] = lines[i].replace(|c: char| c.is_ascii_digit(), "9999999999"),
            5 => lines.insert(
                i,
                format!("a=ssrc:{} cname:{}", rng.next(), "x".repeat(rng.below(300))),
            ),
            _ => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
        }
    }
    lines.join("\r\n") + "\r\n"
}

#[test]
fn mangled_offers_get_4xx_not_5xx() {
    let server = Server::start(&["--max-sessions", "100000"]);
    let (_p, publisher, _) = Peer::publisher(&["a", "b", "c"]);
    let (_v, viewer, _) = Peer::viewer();
    let mut rng = Rng(0x5eed);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..300 {
        let (path, base) = if i % 2 == 0 {
            (format!("/whip/h{i}"), &publisher)
        } else {
            (format!("/whep/h{i}"), &viewer)
        };
        let body = mangle(base, &mut rng);
        let resp = server.post_sdp(&path, &body, None);
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        match status {
            201 => accepted += 1,
            400..=499 => {
                assert!(!text.is_empty(), "a refusal says why");
                refused += 1;
            }
            _ => panic!("offer {i} got {status}: {text}\n{body}"),
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
    let health = server.http().get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200, "still serving");
}

#[test]
fn mangled_patch_fragments_get_2xx_or_4xx() {
    let server = Server::start(&[]);
    let (_v, viewer, _) = Peer::viewer();
    let resp = server.post_sdp("/whep/frag", &viewer, None);
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let ufrag = viewer
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap()
        .trim()
        .to_string();
    let frag = format!(
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
    );
    let http = server.http();
    let mut rng = Rng(0xf4a9);
    for i in 0..200 {
        let body = mangle(&frag, &mut rng);
        let resp = http
            .patch(server.url(&location))
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", "*")
            .body(body.clone())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        assert!(
            matches!(status, 200 | 204 | 400..=499),
            "fragment {i} got {status}: {}\n{body}",
            resp.text().unwrap_or_default()
        );
    }
    let health = http.get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200, "still serving");
}
