//! Real-time processing: the transcoded ladder. A publisher that sends one VP8 or H.264
//! layer gets lower layers in its codec made on the node (`docs/PROCESSING.md`): its
//! packets are reassembled into frames (the recorder's [`crate::record::assemble`]),
//! decoded and encoded again (VP8 with libvpx, [`vpx`]; H.264 with OpenH264, [`h264dec`]
//! and [`h264enc`]; the choice in [`coding`]), halved per rung ([`scale`]) and packetized
//! ([`packetize`]) by a [`ladder::Ladder`], whose start and stop a [`demand::Demand`]
//! decides. All of it runs on the ladder's own thread ([`thread`]), never on a media
//! worker. Beside it, [`still`] turns a VP8 or H.264 keyframe into a small PNG or JPEG.

pub mod coding;
pub mod demand;
pub mod h264dec;
pub mod h264enc;
pub mod ladder;
pub mod packetize;
pub mod pressure;
pub mod scale;
pub mod still;
pub mod thread;
pub mod vpx;
pub mod watermark;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_h264;

pub use demand::{Change, Demand};
pub use ladder::{Ladder, LadderConfig, LadderStats, RungPacket};
pub use packetize::{H264Payloader, LayerPacket, Vp8Payloader};
pub use scale::I420;
pub use watermark::{Watermark, WatermarkError};
