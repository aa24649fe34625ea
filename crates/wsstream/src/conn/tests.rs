//! Unit tests of the connection state: write numbering and rejection, the order of data
//! and the Close frame, the readable's end, over an in-memory pipe whose other end is
//! decoded by a reference engine.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use wsstream_proto::{CloseCode, Config, Connection, Event, Message, Role};

use super::outbound::WriteState;
use super::{Core, Phase, ReadState};
use crate::promise::Promise;
use crate::transport::Transport;

/// A client-role `Core` over a pipe with `capacity` bytes of buffer, and the pipe's other
/// end.
fn client(capacity: usize) -> (Core, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(capacity);
    let mut core = Core::new(Arc::default(), Arc::new(Promise::new()));
    let conn = Connection::new(Role::Client, Config::default()).unwrap();
    assert!(core.open(
        Role::Client,
        conn,
        Transport::from_io(ours),
        BytesMut::new()
    ));
    (core, theirs)
}

/// The server end: the pipe and a reference engine decoding what the client wrote.
struct Peer {
    pipe: DuplexStream,
    server: Connection,
    bytes: BytesMut,
}

impl Peer {
    fn new(pipe: DuplexStream) -> Self {
        Self {
            pipe,
            server: Connection::new(Role::Server, Config::default()).unwrap(),
            bytes: BytesMut::new(),
        }
    }

    /// Reads everything the client wrote so far and decodes it.
    async fn events(&mut self) -> Vec<Event> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let read = self.pipe.read(&mut buf);
            match tokio::time::timeout(std::time::Duration::from_millis(20), read).await {
                Ok(Ok(n)) if n > 0 => self.bytes.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let mut events = Vec::new();
        while let Some(event) = self.server.poll_event(&mut self.bytes) {
            events.push(event);
        }
        events
    }
}

fn sizes(events: &[Event]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.len()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn small_writes_complete_at_once_and_are_numbered_in_order() {
    let (mut core, peer) = client(1 << 20);
    for i in 0..3u8 {
        assert!(matches!(
            core.write(Message::from(vec![i; 10])),
            WriteState::Done
        ));
    }
    assert_eq!(core.pending_writes(), 0);
    assert_eq!(core.desired_size(), Some(1));
    assert_eq!(sizes(&Peer::new(peer).events().await), [10, 10, 10]);
}

#[tokio::test]
async fn a_write_larger_than_the_pipe_stays_pending_then_the_peers_close_rejects_it() {
    let (mut core, mut peer) = client(64 << 10);
    let WriteState::Pending(big) = core.write(Message::from(vec![1u8; 1 << 20])) else {
        panic!("a 1 MiB write cannot fit a 64 KiB pipe and a 64 KiB send buffer");
    };
    let WriteState::Pending(queued) = core.write(Message::from("queued")) else {
        panic!("queued behind the big one");
    };
    assert_eq!((big, queued), (0, 1));
    assert_eq!(core.pending_writes(), 2);
    assert_eq!(core.desired_size(), Some(-1));
    // The server closes.
    peer.write_all(&{
        let mut server = Connection::new(Role::Server, Config::default()).unwrap();
        server.close(Some(CloseCode(4567)), "").unwrap();
        server.take_transmit().unwrap()
    })
    .await
    .unwrap();
    core.make_progress();
    assert!(matches!(core.write_state(big), WriteState::Failed(_)));
    assert!(matches!(core.write_state(queued), WriteState::Failed(_)));
    assert_eq!(core.pending_writes(), 0);
    assert!(core.closing.unsent_data, "pending writes were never sent");
    assert!(core.readable.finished_input);
    // The readable does not end at the Close frame, only with the connection.
    assert!(matches!(core.readable.state, ReadState::Open));
}

#[tokio::test]
async fn a_requested_close_follows_every_accepted_write() {
    let (mut core, peer) = client(64 << 10);
    let WriteState::Pending(big) = core.write(Message::from(vec![2u8; 1 << 20])) else {
        panic!("pending");
    };
    core.request_close(Some(1000), "done");
    assert!(
        matches!(core.write(Message::from("late")), WriteState::Failed(_)),
        "no write after close()"
    );
    // Drain the pipe as the server reads; the client writes the rest as room appears.
    let mut peer = Peer::new(peer);
    let mut events = Vec::new();
    for _ in 0..100 {
        core.make_progress();
        events.extend(peer.events().await);
        if events.iter().any(|e| matches!(e, Event::Close(_))) {
            break;
        }
    }
    assert!(matches!(core.write_state(big), WriteState::Done));
    assert_eq!(sizes(&events), [1 << 20], "the whole message, nothing else");
    match events.last() {
        Some(Event::Close(frame)) => {
            assert_eq!(frame.code, Some(CloseCode(1000)));
            assert_eq!(&*frame.reason, "done");
        }
        other => panic!("the Close comes last: {other:?}"),
    }
    assert!(!core.closing.unsent_data);
}

#[tokio::test]
async fn abort_completes_the_write_in_flight_and_rejects_the_queued_ones() {
    let (mut core, _peer) = client(64 << 10);
    let WriteState::Pending(in_flight) = core.write(Message::from(vec![3u8; 1 << 20])) else {
        panic!("pending");
    };
    let WriteState::Pending(queued) = core.write(Message::from("queued")) else {
        panic!("pending");
    };
    core.abort_writable(&crate::CancelReason::None);
    assert!(matches!(core.write_state(queued), WriteState::Failed(_)));
    assert!(matches!(
        core.write_state(in_flight),
        WriteState::Pending(_)
    ));
    assert_eq!(core.pending_writes(), 1);
    assert!(
        !core.closing.unsent_data,
        "a rejected queued write was never accepted data"
    );
}

#[tokio::test]
async fn the_end_settles_closed_and_then_the_streams_in_one_step() {
    let (mut core, peer) = client(1 << 20);
    drop(peer); // EOF without a Close: unclean, 1006.
    core.make_progress();
    assert_eq!(core.phase, Phase::Closed);
    let ReadState::Errored(read) = &core.readable.state else {
        panic!("errored");
    };
    let closed = core
        .closed
        .poll_get(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    let std::task::Poll::Ready(Err(crate::error::ConnectionError::WebSocket(closed))) = closed
    else {
        panic!("closed settled with a WebSocketError");
    };
    assert_eq!(closed.close_code(), Some(1006));
    assert!(Arc::ptr_eq(read.as_websocket_error().unwrap(), &closed));
    assert!(core.io.is_none(), "the transport is closed");
}
