//! AV1 for the recorder: a temporal unit's RTP packets back into its OBUs (the AV1 RTP
//! payload format, §4), in the form a container stores (the low-overhead bitstream format:
//! each OBU with its size field), and what its sequence header says (AV1 spec §5.5): the
//! picture size and the `av1C` configuration a WebM track's `CodecPrivate` holds (the
//! Matroska AV1 mapping, the same record as ISOBMFF's `av1C`).
//!
//! A packet is an aggregation header `Z|Y|W(2)|N|-(3)` then OBU elements, each after its
//! LEB128 length except the last when `W` (the element count) is not 0; `Z` says the first
//! element continues the previous packet's last, `Y` that the last goes on in the next.
//! Temporal delimiters, tile lists and padding are dropped (RTP leaves the first out; the
//! others have no place in a file). Every OBU is kept, whatever its temporal or spatial
//! layer: a decoder picks its operating point from the sequence header.

use super::bits::Bits;

/// OBU types (AV1 spec §6.2.2).
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_TILE_LIST: u8 = 8;
const OBU_PADDING: u8 = 15;

/// Why packets do not make a temporal unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Av1Error {
    /// A length or header runs past its packet or OBU.
    #[error("AV1 payload cut short")]
    Short,
    /// An OBU fragment without its beginning or end (`Z` and `Y` disagree).
    #[error("AV1 OBU fragment without its other part")]
    Fragment,
}

/// Reads a LEB128 value (at most 8 bytes, AV1 spec §4.10.5): the value and its length.
fn leb128(p: &[u8]) -> Option<(usize, usize)> {
    let mut v: u64 = 0;
    for (i, b) in p.iter().take(8).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(v).ok()?, i + 1));
        }
    }
    None
}

fn write_leb128(mut v: usize, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Whether a packet may start a temporal unit: its first element is a whole OBU's start.
pub fn is_head(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b & 0x80 == 0)
}

/// A temporal unit's packets (payloads, in order) into its OBUs, each with its size field,
/// appended to `out`.
pub fn depacketize<'a>(
    payloads: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> Result<(), Av1Error> {
    let mut pending: Option<Vec<u8>> = None;
    for p in payloads {
        let (&agg, mut rest) = p.split_first().ok_or(Av1Error::Short)?;
        let (z, y, w) = (
            agg & 0x80 != 0,
            agg & 0x40 != 0,
            usize::from(agg >> 4 & 0x03),
        );
        let mut index = 0;
        while !rest.is_empty() {
            let last_by_count = w != 0 && index + 1 == w;
            let element = if last_by_count {
                std::mem::take(&mut rest)
            } else {
                let (len, n) = leb128(rest).ok_or(Av1Error::Short)?;
                let end = n.checked_add(len).ok_or(Av1Error::Short)?;
                let e = rest.get(n..end).ok_or(Av1Error::Short)?;
                rest = &rest[end..];
                e
            };
            let continues = index == 0 && z;
            let mut obu = match (continues, pending.take()) {
                (true, Some(mut part)) => {
                    part.extend_from_slice(element);
                    part
                }
                (false, None) => element.to_vec(),
                _ => return Err(Av1Error::Fragment),
            };
            index += 1;
            if rest.is_empty() && y {
                pending = Some(std::mem::take(&mut obu));
            } else {
                write_obu(&obu, out)?;
            }
            if last_by_count {
                break;
            }
        }
    }
    match pending {
        Some(_) => Err(Av1Error::Fragment),
        None => Ok(()),
    }
}

/// An OBU's header (one byte, two with its extension) and payload.
fn split_obu(obu: &[u8]) -> Result<(&[u8], &[u8], usize), Av1Error> {
    let b0 = *obu.first().ok_or(Av1Error::Short)?;
    let header = if b0 & 0x04 != 0 { 2 } else { 1 };
    let head = obu.get(..header).ok_or(Av1Error::Short)?;
    let rest = &obu[header..];
    if b0 & 0x02 == 0 {
        return Ok((head, rest, obu.len()));
    }
    let (len, n) = leb128(rest).ok_or(Av1Error::Short)?;
    let end = n.checked_add(len).ok_or(Av1Error::Short)?;
    let payload = rest.get(n..end).ok_or(Av1Error::Short)?;
    Ok((head, payload, header + end))
}

fn obu_type(header: &[u8]) -> u8 {
    header.first().map_or(0, |b| b >> 3 & 0x0f)
}

/// Writes one OBU with its size field, unless it is of a type a file does not keep.
fn write_obu(obu: &[u8], out: &mut Vec<u8>) -> Result<(), Av1Error> {
    let (head, payload, _) = split_obu(obu)?;
    if matches!(
        obu_type(head),
        OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING
    ) {
        return Ok(());
    }
    out.push(head[0] | 0x02);
    out.extend_from_slice(&head[1..]);
    write_leb128(payload.len(), out);
    out.extend_from_slice(payload);
    Ok(())
}

/// The OBUs of a temporal unit in the low-overhead format (each with its size field): the
/// whole OBU, its header and its payload. A cut one stops the walk.
fn obus(tu: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
    let mut rest = tu;
    std::iter::from_fn(move || {
        let (head, payload, len) = split_obu(rest).ok()?;
        let whole = &rest[..len];
        rest = &rest[len..];
        Some((whole, head, payload))
    })
}

/// The first sequence header OBU of a temporal unit (whole, with its size field).
pub fn sequence_header(tu: &[u8]) -> Option<&[u8]> {
    obus(tu)
        .find(|(_, head, _)| obu_type(head) == OBU_SEQUENCE_HEADER)
        .map(|(whole, _, _)| whole)
}

/// What the recorder reads of a sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceHeader {
    /// `seq_profile`.
    pub profile: u8,
    /// `seq_level_idx[0]`.
    pub level: u8,
    /// `seq_tier[0]`.
    pub tier: u8,
    /// `high_bitdepth`.
    pub high_bitdepth: bool,
    /// `twelve_bit`.
    pub twelve_bit: bool,
    /// `mono_chrome`.
    pub monochrome: bool,
    /// `subsampling_x`, `subsampling_y`.
    pub subsampling: (bool, bool),
    /// `chroma_sample_position`.
    pub chroma_position: u8,
    /// `max_frame_width_minus_1 + 1`, `max_frame_height_minus_1 + 1`.
    pub size: (u32, u32),
}

/// Parses a sequence header OBU's payload (§5.5) up to its colour config.
pub fn parse_sequence_header(payload: &[u8]) -> Option<SequenceHeader> {
    let mut b = Bits::new(payload);
    let profile = b.read(3)? as u8;
    b.read(1)?; // still_picture
    let reduced = b.flag()?;
    let (level, tier);
    if reduced {
        level = b.read(5)? as u8;
        tier = 0;
    } else {
        let mut buffer_delay_len = 0;
        let timing = b.flag()?;
        let mut decoder_model = false;
        if timing {
            b.read(32)?; // num_units_in_display_tick
            b.read(32)?; // time_scale
            if b.flag()? {
                uvlc(&mut b)?; // num_ticks_per_picture_minus_1
            }
            decoder_model = b.flag()?;
            if decoder_model {
                buffer_delay_len = b.read(5)? as usize + 1;
                b.read(32)?; // num_units_in_decoding_tick
                b.read(10)?; // buffer_removal_time_length_minus_1, frame_presentation_…
            }
        }
        let initial_display_delay = b.flag()?;
        let points = b.read(5)? + 1;
        let (mut level0, mut tier0) = (0, 0);
        for i in 0..points {
            b.read(12)?; // operating_point_idc
            let l = b.read(5)? as u8;
            let t = if l > 7 { b.read(1)? as u8 } else { 0 };
            if decoder_model && b.flag()? {
                b.read(buffer_delay_len)?;
                b.read(buffer_delay_len)?;
                b.read(1)?; // low_delay_mode_flag
            }
            if initial_display_delay && b.flag()? {
                b.read(4)?;
            }
            if i == 0 {
                (level0, tier0) = (l, t);
            }
        }
        (level, tier) = (level0, tier0);
    }
    let wbits = b.read(4)? as usize + 1;
    let hbits = b.read(4)? as usize + 1;
    let w = b.read(wbits)? + 1;
    let h = b.read(hbits)? + 1;
    if !reduced && b.flag()? {
        b.read(7)?; // delta_frame_id_length_minus_2, additional_frame_id_length_minus_1
    }
    b.read(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        b.read(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = b.flag()?;
        if order_hint {
            b.read(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let force_screen_content = if b.flag()? { 2 } else { b.read(1)? };
        if force_screen_content > 0 && !b.flag()? {
            b.read(1)?; // seq_force_integer_mv
        }
        if order_hint {
            b.read(3)?; // order_hint_bits_minus_1
        }
    }
    b.read(3)?; // enable_superres, enable_cdef, enable_restoration
                // color_config (§5.5.2).
    let high_bitdepth = b.flag()?;
    let twelve_bit = profile == 2 && high_bitdepth && b.flag()?;
    let monochrome = profile != 1 && b.flag()?;
    let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
    if b.flag()? {
        primaries = b.read(8)?;
        transfer = b.read(8)?;
        matrix = b.read(8)?;
    }
    let (subsampling, chroma_position);
    if monochrome {
        b.read(1)?; // color_range
        subsampling = (true, true);
        chroma_position = 0;
    } else if primaries == 1 && transfer == 13 && matrix == 0 {
        // sRGB: 4:4:4, full range, nothing more coded.
        subsampling = (false, false);
        chroma_position = 0;
    } else {
        b.read(1)?; // color_range
        subsampling = match profile {
            0 => (true, true),
            1 => (false, false),
            _ if twelve_bit => {
                let x = b.flag()?;
                (x, x && b.flag()?)
            }
            _ => (true, false),
        };
        chroma_position = if subsampling == (true, true) {
            b.read(2)? as u8
        } else {
            0
        };
    }
    Some(SequenceHeader {
        profile,
        level,
        tier,
        high_bitdepth,
        twelve_bit,
        monochrome,
        subsampling,
        chroma_position,
        size: (w, h),
    })
}

/// `uvlc()` (AV1 spec §4.10.3), its value skipped.
fn uvlc(b: &mut Bits<'_>) -> Option<()> {
    let mut zeros = 0;
    while !b.flag()? {
        zeros += 1;
        if zeros >= 32 {
            return None;
        }
    }
    b.read(zeros).map(|_| ())
}

/// The largest picture side taken (AV1's levels stop at 16384 wide).
pub const MAX_SIDE: u32 = 16384;

/// The picture size a keyframe's temporal unit declares (its sequence header's maximum).
pub fn frame_size(tu: &[u8]) -> Option<(u32, u32)> {
    let seq = sequence_header(tu)?;
    let (_, payload, _) = split_obu(seq).ok()?;
    let (w, h) = parse_sequence_header(payload)?.size;
    (w <= MAX_SIDE && h <= MAX_SIDE).then_some((w, h))
}

/// The `AV1CodecConfigurationRecord` (`av1C`, the AV1 ISOBMFF binding §2.3) of a
/// keyframe's temporal unit: four bytes from its sequence header, then that OBU.
pub fn codec_config(tu: &[u8]) -> Option<Vec<u8>> {
    let seq = sequence_header(tu)?;
    let (_, payload, _) = split_obu(seq).ok()?;
    let s = parse_sequence_header(payload)?;
    let bit = |b: bool, at: u8| u8::from(b) << at;
    let mut out = vec![
        0x81, // marker, version 1
        s.profile << 5 | (s.level & 0x1f),
        s.tier << 7
            | bit(s.high_bitdepth, 6)
            | bit(s.twelve_bit, 5)
            | bit(s.monochrome, 4)
            | bit(s.subsampling.0, 3)
            | bit(s.subsampling.1, 2)
            | (s.chroma_position & 0x03),
        0, // no initial presentation delay
    ];
    out.extend_from_slice(seq);
    Some(out)
}

/// The picture size a keyframe's first packet declares, when its first element is the
/// sequence header (as encoders send it).
pub fn payload_size(payload: &[u8]) -> Option<(u32, u32)> {
    let (&agg, rest) = payload.split_first()?;
    if agg & 0x80 != 0 {
        return None;
    }
    let w = agg >> 4 & 0x03;
    let element = if w == 1 {
        rest
    } else {
        let (len, n) = leb128(rest)?;
        rest.get(n..n.checked_add(len)?)?
    };
    let mut tu = Vec::new();
    write_obu(element, &mut tu).ok()?;
    frame_size(&tu)
}
