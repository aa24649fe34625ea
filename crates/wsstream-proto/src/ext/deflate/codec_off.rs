//! Without the `deflate` feature: the codec types exist only so the engine compiles
//! unchanged, and no value of them can be made. [`Config::validate`](crate::config::Config::validate)
//! refuses negotiated parameters, so a connection never has a compressor.

use crate::error::ProtocolError;

/// Never constructed (no compression without the `deflate` feature).
#[derive(Debug)]
pub(crate) enum Compressor {}

impl Compressor {
    pub(crate) fn release(&mut self) {
        match *self {}
    }

    pub(crate) fn compress(&mut self, _payload: &[u8], _out: &mut Vec<u8>) -> bool {
        match *self {}
    }
}

/// Never constructed (no compression without the `deflate` feature).
#[derive(Debug)]
pub(crate) enum Decompressor {}

impl Decompressor {
    pub(crate) fn release(&mut self) -> bool {
        match *self {}
    }

    pub(crate) fn inflate<E: From<ProtocolError>>(
        &mut self,
        _input: &[u8],
        _out: &mut Vec<u8>,
        _limit: usize,
        _check: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        match *self {}
    }

    pub(crate) fn finish<E: From<ProtocolError>>(
        &mut self,
        _payload_was_empty: bool,
        _out: &mut Vec<u8>,
        _limit: usize,
        _check: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        match *self {}
    }
}
