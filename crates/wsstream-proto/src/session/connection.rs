//! [`Connection`]: the sans-io WebSocket session after the opening handshake.

use bytes::{Buf, Bytes, BytesMut};

use super::event::Event;
use crate::close::{CloseCode, CloseFrame, MAX_REASON_LEN};
use crate::codec::{HeaderRules, MaskSource, encode_frame, validate_header};
use crate::config::Config;
use crate::error::{ApiMisuse, ProtocolError};
use crate::ext::deflate::{Compressor, Decompressor};
use crate::message::{Message, Utf8Bytes, Utf8Validator};
use crate::role::Role;
use crate::wire::{FrameHeader, HeaderParse, OpCode, mask};

/// Extra room the control lane may use beyond the data cap of the transmit buffer.
const CONTROL_SLACK: usize = 4 * 1024;

/// The RSV1 bit in [`FrameHeader::rsv`]: "Per-Message Compressed" (RFC 7692 §6).
const RSV1: u8 = 0b100;

/// The closing-handshake state (RFC 6455 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Both directions open.
    Open,
    /// We sent a Close frame and wait for the peer's.
    CloseSent,
    /// The peer sent a Close frame; ours is queued (it is sent at once).
    CloseReceived,
    /// Both Close frames exchanged: the closing handshake is complete.
    Closed,
    /// We failed the connection (peer protocol violation); the transport should be closed.
    Failed,
}

/// A WebSocket connection in either role, after the opening handshake.
///
/// Inputs: [`poll_event`](Self::poll_event) (bytes from the peer), [`send`](Self::send),
/// [`close`](Self::close), [`ping`](Self::ping). Outputs: events from `poll_event` and
/// bytes from [`take_transmit`](Self::take_transmit). Call `take_transmit` after every
/// input: a ping or a close found on the read path queues its reply there.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    rsv_allowed: u8,
    // Inbound.
    frame: Option<InFrame>,
    assembly: Option<Assembly>,
    utf8: Utf8Validator,
    need: usize,
    /// The chunk small payloads are copied into (see `take_payload`).
    small: BytesMut,
    // Outbound.
    transmit: BytesMut,
    outbound: Option<Outbound>,
    pending_pong: Option<Bytes>,
    masks: MaskSource,
    // Closing handshake.
    close_sent: bool,
    close_received: Option<CloseFrame>,
    failed: Option<ProtocolError>,
    abandoned: bool,
    // permessage-deflate, when negotiated (boxed: a connection without it stays small).
    deflate: Option<Box<Deflate>>,
}

/// The permessage-deflate state of a connection (RFC 7692): our compressor, the
/// decompressor for the peer's messages, and the size below which we do not compress.
#[derive(Debug)]
struct Deflate {
    tx: Compressor,
    rx: Decompressor,
    threshold: usize,
}

/// The frame whose payload is arriving.
#[derive(Debug)]
struct InFrame {
    header: FrameHeader,
    op: OpCode,
    /// Payload bytes at the front of the input already unmasked (and UTF-8 checked).
    processed: usize,
    text: bool,
    /// Part of a compressed message (RSV1 on its first frame): the payload is inflated as
    /// it arrives instead of being kept.
    compressed: bool,
}

/// A message being reassembled: a fragmented one, or any compressed one.
#[derive(Debug)]
struct Assembly {
    text: bool,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// The payloads of the frames so far.
    Plain(BytesMut),
    /// The inflated output so far, and how many compressed payload bytes produced it.
    Inflated { out: Vec<u8>, payload_len: u64 },
}

impl Assembly {
    fn compressed(&self) -> bool {
        matches!(self.body, Body::Inflated { .. })
    }
}

/// An outbound message being framed into the transmit buffer.
#[derive(Debug)]
struct Outbound {
    op: OpCode,
    payload: Bytes,
    offset: usize,
    started: bool,
    /// RSV bits of the first frame (RSV1 for a compressed message).
    rsv: u8,
}

impl Connection {
    /// A connection in the given role. Fails if the configuration is invalid.
    pub fn new(role: Role, config: Config) -> Result<Self, crate::config::ConfigError> {
        config.validate()?;
        #[cfg(not(feature = "deflate"))]
        let deflate: Option<Box<Deflate>> = None;
        #[cfg(feature = "deflate")]
        let deflate = config.deflate.as_ref().map(|(params, deflate)| {
            // Our half of the agreed parameters, and the peer's (RFC 7692 §7.1).
            let (ours, theirs) = match role {
                Role::Client => (
                    (
                        params.client_max_window_bits,
                        params.client_no_context_takeover,
                    ),
                    (
                        params.server_max_window_bits,
                        params.server_no_context_takeover,
                    ),
                ),
                Role::Server => (
                    (
                        params.server_max_window_bits,
                        params.server_no_context_takeover,
                    ),
                    (
                        params.client_max_window_bits,
                        params.client_no_context_takeover,
                    ),
                ),
            };
            Box::new(Deflate {
                tx: Compressor::new(ours.0, ours.1, deflate.compression_level),
                rx: Decompressor::new(theirs.0, theirs.1),
                threshold: deflate.threshold,
            })
        });
        Ok(Self {
            role,
            config,
            // RFC 7692 §6: permessage-deflate claims RSV1.
            rsv_allowed: if deflate.is_some() { RSV1 } else { 0 },
            frame: None,
            assembly: None,
            utf8: Utf8Validator::new(),
            need: 2,
            small: BytesMut::new(),
            transmit: BytesMut::new(),
            outbound: None,
            pending_pong: None,
            masks: MaskSource::new(),
            close_sent: false,
            close_received: None,
            failed: None,
            abandoned: false,
            deflate,
        })
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The closing-handshake state.
    pub fn state(&self) -> State {
        match (
            self.failed.is_some(),
            self.close_sent,
            self.close_received.is_some(),
        ) {
            (true, _, _) => State::Failed,
            (false, true, true) => State::Closed,
            (false, true, false) => State::CloseSent,
            (false, false, true) => State::CloseReceived,
            (false, false, false) => State::Open,
        }
    }

    /// The peer's Close frame, once received.
    pub fn close_received(&self) -> Option<&CloseFrame> {
        self.close_received.as_ref()
    }

    /// Whether we have queued our Close frame.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// The violation that made us fail the connection, if any.
    pub fn failure(&self) -> Option<&ProtocolError> {
        self.failed.as_ref()
    }

    /// Whether an outbound message was abandoned part-way because the closing handshake
    /// started (data that was accepted but never fully sent makes the close unclean, as
    /// WPT `remote-close.any.js` requires).
    pub fn abandoned_data(&self) -> bool {
        self.abandoned
    }

    /// At least this many more input bytes are needed before the next event can be
    /// produced (a frame header or the rest of a payload). A runtime uses it to size reads.
    pub fn read_hint(&self) -> usize {
        self.need
    }

    /// Frees the permessage-deflate state that an idle connection does not need, for a
    /// runtime that holds many connections (the engine has no clock: the runtime decides
    /// when a connection is idle). Our compressor is always freed (the next compressed
    /// message starts a fresh stream, which the peer accepts whatever the context takeover
    /// agreed, RFC 7692 §7.1.1); the decompressor is freed only when the peer does not take
    /// its context over and no compressed message is being received. Each is allocated again
    /// on next use. Does nothing without deflate.
    ///
    /// With zlib-rs a compressor holds about 250–380 KB and a decompressor about 47 KB.
    pub fn release_deflate_memory(&mut self) {
        let receiving = self.assembly.as_ref().is_some_and(Assembly::compressed);
        if let Some(deflate) = self.deflate.as_mut() {
            deflate.tx.release();
            if !receiving {
                deflate.rx.release();
            }
        }
    }

    /// Whether a message is still being framed into the transmit buffer.
    pub fn message_in_progress(&self) -> bool {
        self.outbound.is_some()
    }

    /// Whether a new message may be sent now: the closing handshake has not started, no
    /// message is in progress, and the transmit buffer is below its cap. This is the
    /// engine's backpressure signal.
    pub fn wants_data(&self) -> bool {
        !self.close_sent
            && self.failed.is_none()
            && self.outbound.is_none()
            && self.transmit.len() < self.config.send_buffer
    }

    /// Bytes waiting in the transmit buffer.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }

    /// Whether [`take_transmit`](Self::take_transmit) would return bytes.
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty() || self.pending_pong.is_some() || self.outbound.is_some()
    }

    /// The fast path for the common case. If `input` starts with a complete, unfragmented,
    /// uncompressed Text or Binary frame that is valid in every respect (RFC 6455 §5.2
    /// reserved bits, §5.1 masking for our role, the frame and message limits, §8.1 UTF-8),
    /// consumes that frame and returns its message, split off `input` without copying.
    ///
    /// Anything else — a control frame, a fragment, a compressed or incomplete frame, or
    /// one that would fail the connection — is left untouched in `input` and `None` is
    /// returned; [`poll_event`](Self::poll_event) then handles it. The connection's state is
    /// otherwise unchanged, so a caller can take every ready message at once without acting
    /// on whatever follows them (a Close, a ping, a violation).
    pub fn poll_message(&mut self, input: &mut BytesMut) -> Option<Message> {
        if self.failed.is_some()
            || self.close_received.is_some()
            || self.frame.is_some()
            || self.assembly.is_some()
        {
            return None;
        }
        let HeaderParse::Complete(header, head_len) = FrameHeader::parse(input) else {
            return None;
        };
        let text = match (header.fin, header.rsv, header.opcode) {
            (true, 0, 0x1) => true,
            (true, 0, 0x2) => false,
            _ => return None,
        };
        if header.mask.is_some() != (self.role == Role::Server) {
            return None;
        }
        let limit = self.config.max_frame_size.min(self.config.max_message_size);
        let len = match usize::try_from(header.payload_len) {
            Ok(len) if len <= limit && len <= input.len() - head_len => len,
            _ => return None,
        };
        let payload = &mut input[head_len..head_len + len];
        if let Some(key) = header.mask {
            mask::mask(payload, key, 0);
        }
        if text && !valid_utf8(payload) {
            if let Some(key) = header.mask {
                // Masking is its own inverse: restore the bytes for poll_event.
                mask::mask(payload, key, 0);
            }
            return None;
        }
        input.advance(head_len);
        let payload = take_payload(input, &mut self.small, len);
        self.need = 2;
        Some(if text {
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        })
    }

    /// Consumes bytes from the front of `input` and returns the next event, or `None` when
    /// more input is needed. Complete frames are split off `input` without copying. After
    /// the peer's Close frame or a failure, further input is discarded.
    pub fn poll_event(&mut self, input: &mut BytesMut) -> Option<Event> {
        loop {
            if self.failed.is_some() || self.close_received.is_some() {
                // RFC 6455 §5.5.1: nothing may follow a Close frame; after a failure we
                // stop processing input (§7.1.7).
                input.clear();
                return None;
            }
            if self.frame.is_none() {
                if let Err(e) = self.start_frame(input) {
                    return Some(self.fail(e));
                }
                self.frame.as_ref()?;
            }
            match self.continue_frame(input) {
                Ok(None) => return None,
                Ok(Some(Some(event))) => return Some(event),
                Ok(Some(None)) => {}
                Err(e) => return Some(self.fail(e)),
            }
        }
    }

    /// Parses and validates the next header, if complete.
    fn start_frame(&mut self, input: &mut BytesMut) -> Result<(), ProtocolError> {
        let (header, len) = match FrameHeader::parse(input) {
            HeaderParse::Incomplete(n) => {
                self.need = n;
                return Ok(());
            }
            HeaderParse::InvalidLength => return Err(ProtocolError::InvalidLength),
            HeaderParse::Complete(header, len) => (header, len),
        };
        let rules = HeaderRules {
            role: self.role,
            rsv_allowed: self.rsv_allowed,
            max_frame_size: self.config.max_frame_size,
            in_message: self.assembly.is_some(),
        };
        let op = validate_header(&header, &rules)?;
        let text = match op {
            OpCode::Text => true,
            OpCode::Continuation => self.assembly.as_ref().is_some_and(|a| a.text),
            _ => false,
        };
        // RFC 7692 §6: RSV1 on the first frame marks a compressed message (validate_header
        // allowed it only there, and only with the extension negotiated).
        let compressed = match op {
            OpCode::Text | OpCode::Binary => header.rsv & RSV1 != 0,
            OpCode::Continuation => self.assembly.as_ref().is_some_and(Assembly::compressed),
            _ => false,
        };
        if !op.is_control() && !compressed {
            // The message limit is enforced on the declared length, before any byte of the
            // payload is buffered for it. (A compressed message is held to the limit on
            // its inflated size, while inflating.)
            let so_far = match self.assembly.as_ref().map(|a| &a.body) {
                Some(Body::Plain(buf)) => buf.len() as u64,
                _ => 0,
            };
            let size = so_far + header.payload_len;
            if size > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooLarge {
                    size,
                    limit: self.config.max_message_size,
                });
            }
        }
        if op == OpCode::Text {
            self.utf8 = Utf8Validator::new();
        }
        if compressed && op != OpCode::Continuation {
            // A first guess at the inflated size; the decompressor grows it up to the limit.
            let guess = usize::try_from(header.payload_len.saturating_mul(4)).unwrap_or(usize::MAX);
            self.assembly = Some(Assembly {
                text,
                body: Body::Inflated {
                    out: Vec::with_capacity(
                        guess.clamp(64, 64 << 10).min(self.config.max_message_size),
                    ),
                    payload_len: 0,
                },
            });
        }
        input.advance(len);
        self.frame = Some(InFrame {
            header,
            op,
            processed: 0,
            text,
            compressed,
        });
        Ok(())
    }

    /// Unmasks and validates newly arrived payload bytes; once the payload is complete,
    /// handles the frame. `Ok(None)`: more input needed; `Ok(Some(None))`: frame consumed
    /// without an event; `Ok(Some(Some(e)))`: an event.
    fn continue_frame(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<Option<Event>>, ProtocolError> {
        let Some(frame) = self.frame.as_mut() else {
            return Ok(Some(None));
        };
        // validate_header bounded payload_len by max_frame_size (a usize) or by 125.
        let len = usize::try_from(frame.header.payload_len).unwrap_or(usize::MAX);
        let avail = input.len().min(len);
        if avail > frame.processed {
            let new = &mut input[frame.processed..avail];
            if let Some(key) = frame.header.mask {
                mask::mask(new, key, frame.processed);
            }
            if frame.compressed {
                // RFC 7692 §7.2.2: inflate as the payload arrives, the output capped at
                // the message limit and its UTF-8 checked as it is produced.
                inflate_piece(
                    self.deflate.as_deref_mut(),
                    self.assembly.as_mut(),
                    &mut self.utf8,
                    new,
                    self.config.max_message_size,
                )?;
            } else if frame.text && self.utf8.feed(new).is_err() {
                // §8.1: fail as soon as invalid UTF-8 is seen, even mid-frame.
                return Err(ProtocolError::InvalidUtf8);
            }
            frame.processed = avail;
        }
        if avail < len {
            self.need = len - avail;
            return Ok(None);
        }
        self.need = 2;
        let Some(frame) = self.frame.take() else {
            return Ok(Some(None));
        };
        let fin = frame.header.fin;
        match frame.op {
            OpCode::Text | OpCode::Binary | OpCode::Continuation if frame.compressed => {
                input.advance(len);
                if !fin {
                    return Ok(Some(None));
                }
                let Some(Assembly {
                    text,
                    body:
                        Body::Inflated {
                            mut out,
                            payload_len,
                        },
                }) = self.assembly.take()
                else {
                    return Ok(Some(None));
                };
                if let Some(deflate) = self.deflate.as_mut() {
                    let utf8 = &mut self.utf8;
                    deflate.rx.finish(
                        payload_len == 0,
                        &mut out,
                        self.config.max_message_size,
                        |new| check_utf8(utf8, text, new),
                    )?;
                }
                if out.capacity() - out.len() > (out.len() / 4).max(4096) {
                    // Do not hand the application a buffer much larger than its message.
                    out.shrink_to_fit();
                }
                let message = self.finish_message(text, Bytes::from(out))?;
                Ok(Some(Some(Event::Message(message))))
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if fin && self.assembly.is_none() {
                    // An unfragmented message: the payload is split off without a copy.
                    let payload = take_payload(input, &mut self.small, len);
                    return Ok(Some(Some(Event::Message(
                        self.finish_message(frame.text, payload)?,
                    ))));
                }
                let assembly = self.assembly.get_or_insert_with(|| Assembly {
                    text: frame.op == OpCode::Text,
                    body: Body::Plain(BytesMut::new()),
                });
                if let Body::Plain(buf) = &mut assembly.body {
                    buf.extend_from_slice(&input[..len]);
                }
                input.advance(len);
                if !fin {
                    return Ok(Some(None));
                }
                let Some(Assembly {
                    text,
                    body: Body::Plain(buf),
                }) = self.assembly.take()
                else {
                    return Ok(Some(None));
                };
                let message = self.finish_message(text, buf.freeze())?;
                Ok(Some(Some(Event::Message(message))))
            }
            OpCode::Ping => {
                let payload = take_payload(input, &mut self.small, len);
                // §5.5.2/§5.5.3: answer with a pong carrying the same payload; if several
                // pings are pending, answering only the most recent is allowed.
                if !self.close_sent {
                    self.pending_pong = Some(payload.clone());
                    self.flush_control();
                }
                Ok(Some(Some(Event::Ping(payload))))
            }
            OpCode::Pong => Ok(Some(Some(Event::Pong(take_payload(
                input,
                &mut self.small,
                len,
            ))))),
            OpCode::Close => {
                let frame = CloseFrame::parse(&input[..len])?;
                input.advance(len);
                self.close_received = Some(frame.clone());
                if !self.close_sent {
                    // §5.5.1: reply with a Close frame, echoing the status code.
                    self.abandon_outbound();
                    self.pending_pong = None;
                    self.queue_close(&frame);
                }
                Ok(Some(Some(Event::Close(frame))))
            }
        }
    }

    fn finish_message(&mut self, text: bool, payload: Bytes) -> Result<Message, ProtocolError> {
        if text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Message::Text(Utf8Bytes::from_validated(payload)))
        } else {
            Ok(Message::Binary(payload))
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): queue a Close frame with the error's code
    /// unless one was sent, and stop processing input.
    fn fail(&mut self, error: ProtocolError) -> Event {
        self.frame = None;
        self.assembly = None;
        if !self.close_sent {
            self.abandon_outbound();
            self.pending_pong = None;
            let mut reason = error.to_string();
            truncate_at_char_boundary(&mut reason, MAX_REASON_LEN);
            self.queue_close(&CloseFrame {
                code: Some(error.close_code()),
                reason: reason.into(),
            });
        }
        self.failed = Some(error.clone());
        Event::Failed(error)
    }

    fn abandon_outbound(&mut self) {
        if self.outbound.take().is_some() {
            self.abandoned = true;
        }
    }

    fn queue_close(&mut self, frame: &CloseFrame) {
        let mut body = BytesMut::with_capacity(frame.encoded_len());
        frame.emit(&mut body);
        let key = self.next_key();
        encode_frame(&mut self.transmit, true, 0, OpCode::Close, &body, key);
        self.close_sent = true;
    }

    fn next_key(&mut self) -> Option<[u8; 4]> {
        self.role.masks_outgoing().then(|| self.masks.next_key())
    }

    /// Starts sending `message`. It is framed into the transmit buffer at once as far as
    /// the buffer's cap allows, and the rest as the buffer drains
    /// ([`message_in_progress`](Self::message_in_progress) tells when it is all queued).
    pub fn send(&mut self, message: Message) -> Result<(), ApiMisuse> {
        if self.close_sent || self.failed.is_some() {
            // §5.5.1: no data frames after a Close frame.
            return Err(ApiMisuse::SendAfterClose);
        }
        if self.outbound.is_some() {
            return Err(ApiMisuse::MessageInProgress);
        }
        let op = if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let mut payload = message.into_bytes();
        if self.deflate.is_none()
            && payload.len() <= self.config.frame_size
            && self.transmit.len() < self.config.send_buffer
            && self.pending_pong.is_none()
        {
            // The common case, a message that fits one frame with room in the buffer:
            // framed right away (the same bytes `pump` would produce).
            let key = self.next_key();
            encode_frame(&mut self.transmit, true, 0, op, &payload, key);
            return Ok(());
        }
        let mut rsv = 0;
        if let Some(deflate) = self.deflate.as_mut() {
            // RFC 7692 §6: a compressed message carries RSV1 on its first frame only (pump
            // clears it on continuations); below the threshold, or when our window cannot be
            // honoured, the message goes out uncompressed.
            let mut compressed = Vec::new();
            if payload.len() >= deflate.threshold && deflate.tx.compress(&payload, &mut compressed)
            {
                payload = Bytes::from(compressed);
                rsv = RSV1;
            }
        }
        self.outbound = Some(Outbound {
            op,
            payload,
            offset: 0,
            started: false,
            rsv,
        });
        self.pump();
        Ok(())
    }

    /// Sends a ping with `payload` (at most 125 bytes, RFC 6455 §5.5).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ApiMisuse> {
        if self.close_sent || self.failed.is_some() {
            return Err(ApiMisuse::SendAfterClose);
        }
        if payload.len() > 125 {
            return Err(ApiMisuse::PingTooLong(payload.len()));
        }
        let key = self.next_key();
        encode_frame(&mut self.transmit, true, 0, OpCode::Ping, payload, key);
        Ok(())
    }

    /// Starts the closing handshake with an optional code and reason (RFC 6455 §7.1.2).
    /// A message still in progress is abandoned (no data frame may follow a Close frame).
    /// Does nothing if a Close frame was already sent.
    pub fn close(&mut self, code: Option<CloseCode>, reason: &str) -> Result<(), ApiMisuse> {
        if let Some(code) = code {
            if !code.is_valid_on_wire() {
                return Err(ApiMisuse::InvalidCloseCode(code.0));
            }
        } else if !reason.is_empty() {
            // §5.5.1: a reason may only follow a status code.
            return Err(ApiMisuse::InvalidCloseCode(0));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(ApiMisuse::CloseReasonTooLong(reason.len()));
        }
        if self.close_sent || self.failed.is_some() {
            return Ok(());
        }
        self.abandon_outbound();
        self.pending_pong = None;
        self.queue_close(&CloseFrame {
            code,
            reason: reason.into(),
        });
        Ok(())
    }

    /// Takes the bytes to write to the transport (whole frames, in order: a pending pong is
    /// framed before any further data frame), then refills the buffer from a message in progress (so its write can complete while
    /// these bytes are written). `None` when there is nothing to send.
    pub fn take_transmit(&mut self) -> Option<BytesMut> {
        self.pump();
        if self.transmit.is_empty() {
            return None;
        }
        let out = self.transmit.split();
        self.pump();
        Some(out)
    }

    /// The bytes to write to the transport next, in place (whole frames, in order; a
    /// pending pong is framed before any further data frame), after framing more of a
    /// message in progress. Report what was written with
    /// [`advance_transmit`](Self::advance_transmit). An alternative to
    /// [`take_transmit`](Self::take_transmit) for a runtime that writes straight from the
    /// engine's buffer, so the buffer's allocation is reused.
    pub fn transmit(&mut self) -> &[u8] {
        self.pump();
        &self.transmit
    }

    /// Marks the first `n` bytes of [`transmit`](Self::transmit) as written, then frames
    /// more of a message in progress into the room that made.
    ///
    /// # Panics
    ///
    /// If `n` is larger than what `transmit` returned.
    pub fn advance_transmit(&mut self, n: usize) {
        self.transmit.advance(n);
        self.pump();
    }

    fn flush_control(&mut self) {
        if self.transmit.len() < self.config.send_buffer + CONTROL_SLACK {
            if let Some(payload) = self.pending_pong.take() {
                let key = self.next_key();
                encode_frame(&mut self.transmit, true, 0, OpCode::Pong, &payload, key);
            }
        }
    }

    /// Frames as much of the message in progress as the transmit buffer's cap allows.
    fn pump(&mut self) {
        self.flush_control();
        while self.transmit.len() < self.config.send_buffer {
            let Some(out) = self.outbound.as_mut() else {
                break;
            };
            let remaining = out.payload.len() - out.offset;
            let chunk = remaining.min(self.config.frame_size);
            let fin = chunk == remaining;
            let (op, rsv) = if out.started {
                (OpCode::Continuation, 0)
            } else {
                (out.op, out.rsv)
            };
            let key = self.role.masks_outgoing().then(|| self.masks.next_key());
            encode_frame(
                &mut self.transmit,
                fin,
                rsv,
                op,
                &out.payload[out.offset..out.offset + chunk],
                key,
            );
            out.offset += chunk;
            out.started = true;
            if fin {
                self.outbound = None;
            }
        }
    }
}

/// Inflates the next piece of a compressed message's payload into its assembly.
fn inflate_piece(
    deflate: Option<&mut Deflate>,
    assembly: Option<&mut Assembly>,
    utf8: &mut Utf8Validator,
    piece: &[u8],
    limit: usize,
) -> Result<(), ProtocolError> {
    let (
        Some(deflate),
        Some(Assembly {
            text,
            body: Body::Inflated { out, payload_len },
        }),
    ) = (deflate, assembly)
    else {
        // A compressed frame always has both (start_frame made sure).
        return Ok(());
    };
    *payload_len += piece.len() as u64;
    let text = *text;
    deflate
        .rx
        .inflate(piece, out, limit, |new| check_utf8(utf8, text, new))
}

/// RFC 6455 §8.1: the inflated bytes of a text message must be UTF-8; fail as soon as they
/// are not.
fn check_utf8(utf8: &mut Utf8Validator, text: bool, new: &[u8]) -> Result<(), ProtocolError> {
    if text && utf8.feed(new).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok(())
}

fn truncate_at_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Whether `bytes` is valid UTF-8 (RFC 6455 §8.1). Short ASCII text, the usual small
/// message, is recognised by the standard library's word-at-a-time ASCII check, which
/// costs less than setting up the SIMD validator; anything else goes to `simdutf8`.
#[inline]
fn valid_utf8(bytes: &[u8]) -> bool {
    (bytes.len() <= 256 && bytes.is_ascii()) || simdutf8::basic::from_utf8(bytes).is_ok()
}

/// Payloads up to this size are copied out of the read buffer; larger ones are split
/// off it without a copy.
const COPY_THRESHOLD: usize = 512;
/// Largest chunk small payloads are copied into.
const SMALL_CHUNK: usize = 4096;
/// Smallest chunk allocated for small payloads.
const SMALL_CHUNK_MIN: usize = 256;

/// Takes the first `len` bytes of `input` as a payload.
///
/// A small payload is copied out of the read buffer, so a small message the application
/// keeps does not pin the whole read buffer. It goes into `small`, a chunk shared by the
/// small payloads that arrive together (sized after what is buffered, at most
/// [`SMALL_CHUNK`]): one allocation per chunk instead of one per message; a kept message
/// pins at most its chunk, and once the read buffer is drained the connection lets go of
/// it. Larger payloads are split off the read buffer without a copy.
fn take_payload(input: &mut BytesMut, small: &mut BytesMut, len: usize) -> Bytes {
    if len <= COPY_THRESHOLD {
        if small.capacity() < len {
            // A new chunk (the old one lives on in the payloads that share it).
            let size = input.len().clamp(SMALL_CHUNK_MIN, SMALL_CHUNK).max(len);
            *small = BytesMut::with_capacity(size);
        }
        small.extend_from_slice(&input[..len]);
        input.advance(len);
        let payload = small.split_to(len).freeze();
        if input.is_empty() {
            // Nothing more buffered: an idle connection keeps no chunk.
            *small = BytesMut::new();
        }
        payload
    } else {
        input.split_to(len).freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(role_of_sender: Role, fin: bool, rsv: u8, op: OpCode, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        let key = role_of_sender
            .masks_outgoing()
            .then_some([0x12, 0x34, 0x56, 0x78]);
        encode_frame(&mut out, fin, rsv, op, payload, key);
        out
    }

    fn peer(role: Role) -> Role {
        match role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }

    #[test]
    fn poll_message_takes_plain_valid_messages() {
        for role in [Role::Client, Role::Server] {
            let mut conn = Connection::new(role, Config::default()).unwrap();
            let mut input = frame(peer(role), true, 0, OpCode::Text, "héllo".as_bytes());
            input.extend_from_slice(&frame(peer(role), true, 0, OpCode::Binary, &[1, 2, 3]));
            assert_eq!(
                conn.poll_message(&mut input),
                Some(Message::Text("héllo".into()))
            );
            assert_eq!(
                conn.poll_message(&mut input),
                Some(Message::Binary(Bytes::from_static(&[1, 2, 3])))
            );
            assert!(input.is_empty());
            assert_eq!(conn.poll_message(&mut input), None);
        }
    }

    /// Everything the fast path does not take stays in the input byte for byte, and the
    /// full decoder then reports exactly what it reports on a fresh connection.
    #[test]
    fn poll_message_leaves_everything_else_untouched() {
        let invalid_utf8 = [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xff];
        let too_large = vec![0u8; 2048];
        for role in [Role::Client, Role::Server] {
            let cases: Vec<(&str, BytesMut)> = vec![
                ("ping", frame(peer(role), true, 0, OpCode::Ping, b"p")),
                ("pong", frame(peer(role), true, 0, OpCode::Pong, b"p")),
                (
                    "close",
                    frame(peer(role), true, 0, OpCode::Close, &[3, 232]),
                ),
                ("fragment", frame(peer(role), false, 0, OpCode::Text, b"a")),
                (
                    "continuation",
                    frame(peer(role), true, 0, OpCode::Continuation, b"a"),
                ),
                ("rsv1", frame(peer(role), true, RSV1, OpCode::Binary, b"a")),
                ("wrong masking", frame(role, true, 0, OpCode::Binary, b"a")),
                (
                    "invalid utf-8",
                    frame(peer(role), true, 0, OpCode::Text, &invalid_utf8),
                ),
                (
                    "too large",
                    frame(peer(role), true, 0, OpCode::Binary, &too_large),
                ),
                ("incomplete", {
                    let mut f = frame(peer(role), true, 0, OpCode::Binary, b"abcdef");
                    f.truncate(f.len() - 1);
                    f
                }),
            ];
            let config = Config::default().max_message_size(1024);
            for (name, bytes) in cases {
                let mut fast = Connection::new(role, config.clone()).unwrap();
                let mut input = bytes.clone();
                assert_eq!(fast.poll_message(&mut input), None, "{name}");
                assert_eq!(input, bytes, "{name}: input changed");
                let mut reference = Connection::new(role, config.clone()).unwrap();
                let mut reference_input = bytes.clone();
                assert_eq!(
                    fast.poll_event(&mut input),
                    reference.poll_event(&mut reference_input),
                    "{name}"
                );
                let (ours, theirs) = (fast.take_transmit(), reference.take_transmit());
                if role == Role::Server {
                    assert_eq!(ours, theirs, "{name}");
                } else {
                    // A client masks with fresh keys: compare the lengths only.
                    assert_eq!(ours.map(|b| b.len()), theirs.map(|b| b.len()), "{name}");
                }
            }
        }
    }

    #[test]
    fn small_payloads_that_arrive_together_share_a_bounded_chunk() {
        let mut conn = Connection::new(Role::Client, Config::default()).unwrap();
        let mut input = BytesMut::new();
        for i in 0..1000u32 {
            input.extend_from_slice(&frame(
                Role::Server,
                true,
                0,
                OpCode::Binary,
                &i.to_be_bytes().repeat(4),
            ));
        }
        let range = input.as_ptr() as usize..input.as_ptr() as usize + input.capacity();
        let mut payloads = Vec::new();
        while let Some(Message::Binary(payload)) = conn.poll_message(&mut input) {
            payloads.push(payload);
        }
        assert_eq!(payloads.len(), 1000);
        let mut chunks = 1;
        for (i, pair) in payloads.windows(2).enumerate() {
            assert_eq!(&pair[0][..4], &(i as u32).to_be_bytes());
            assert!(!range.contains(&(pair[0].as_ptr() as usize)), "not copied");
            if pair[1].as_ptr() as usize != pair[0].as_ptr() as usize + 16 {
                chunks += 1;
            }
        }
        // 16 KiB of payloads in chunks of at most 4 KiB: a few chunks, not one per message.
        assert!((4..=8).contains(&chunks), "{chunks} chunks");
        assert!(
            conn.small.capacity() == 0,
            "the drained connection let go of its chunk"
        );
    }

    #[test]
    fn small_payloads_are_copied_and_large_ones_split_off() {
        let mut conn = Connection::new(Role::Client, Config::default()).unwrap();
        for (len, shared) in [(COPY_THRESHOLD, false), (COPY_THRESHOLD + 1, true)] {
            let mut input = frame(Role::Server, true, 0, OpCode::Binary, &vec![9; len]);
            let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
            let Some(Message::Binary(payload)) = conn.poll_message(&mut input) else {
                panic!("no message");
            };
            assert_eq!(payload.len(), len);
            assert_eq!(
                range.contains(&(payload.as_ptr() as usize)),
                shared,
                "{len}"
            );
        }
    }
}
