//! placeholder

pub mod certs;
pub mod faults;
pub mod frames;
pub mod h2_client;
pub mod hostile;
pub mod node;
pub mod proxies;
pub mod wpt;
