//! Bytes on an ICE-TCP connection (RFC 4571 framing), read in pieces of any size: the
//! deframer never panics, holds less than one frame between reads, gives only frames of
//! at most `MAX_FRAME` bytes, and what it gives, framed again, is the stream it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::tcp::framing::{frame, Deframer, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the size of the reads.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut d = Deframer::default();
    let mut again = Vec::new();
    'read: for piece in stream.chunks(chunk) {
        d.push(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(!f.is_empty() && f.len() <= MAX_FRAME);
                    again.extend(frame(&f).expect("a frame the deframer gave can be framed"));
                }
                Ok(None) => break,
                Err(_) => break 'read, // the connection is closed
            }
        }
        assert!(d.pending() < 2 + MAX_FRAME + chunk);
    }
    assert_eq!(&stream[..again.len()], &again[..]);
});
