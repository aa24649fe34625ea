//! placeholder

pub mod frames;
pub mod wpt;
