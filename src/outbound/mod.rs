//! Outbound submission (being written). Must not deliver locally.

mod encode;
pub use encode::{encode_header, encode_rfc2047};
