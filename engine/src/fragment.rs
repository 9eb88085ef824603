//! Outbound fragmentation: messages over 16 MiB leave as a fragmented message (frames of at
//! most 16 MiB), so peers with the common 16 MiB frame limit (tungstenite's default, the
//! reference engine) receive them, as the Python SDK does for its own large messages.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Largest frame the engine writes.
pub(crate) const MAX_FRAME_BYTES: usize = 16 << 20;

/// The frames to write for `msg`: itself, or its fragments when it is a large data message.
pub(crate) fn frames(msg: Message) -> Vec<Message> {
    frames_of(msg, MAX_FRAME_BYTES)
}

fn frames_of(msg: Message, max: usize) -> Vec<Message> {
    let (payload, opcode): (Bytes, Data) = match msg {
        Message::Text(t) if t.len() > max => (Bytes::from(t), Data::Text),
        Message::Binary(b) if b.len() > max => (b, Data::Binary),
        other => return vec![other],
    };
    let mut out = Vec::with_capacity(payload.len() / max + 1);
    let mut rest = payload;
    let mut first = true;
    while !rest.is_empty() {
        let chunk = rest.split_to(rest.len().min(max));
        let op = if first {
            OpCode::Data(opcode)
        } else {
            OpCode::Data(Data::Continue)
        };
        first = false;
        out.push(Message::Frame(Frame::message(chunk, op, rest.is_empty())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_messages_pass_through_and_large_ones_are_split() {
        assert_eq!(frames_of(Message::text("abc"), 4).len(), 1);
        let parts = frames_of(Message::text("abcdefghij"), 4);
        assert_eq!(parts.len(), 3);
        let Message::Frame(last) = &parts[2] else {
            panic!("not a frame")
        };
        assert!(last.header().is_final);
        assert_eq!(last.header().opcode, OpCode::Data(Data::Continue));
        let Message::Frame(first) = &parts[0] else {
            panic!("not a frame")
        };
        assert!(!first.header().is_final);
        assert_eq!(first.header().opcode, OpCode::Data(Data::Text));
    }
}
