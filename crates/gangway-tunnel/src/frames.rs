//! Where WebSocket frames begin and end in a byte stream, without decoding them.
//!
//! The splice copies bytes as they come; to end a tunnel with a close frame it has to
//! know where a frame ends, so that the close is never written into the middle of
//! another frame. [`FrameTracker`] follows the frame headers of one direction
//! ([RFC 6455 §5.2](https://www.rfc-editor.org/rfc/rfc6455#section-5.2)) as the bytes
//! pass: it keeps the header bytes seen so far (at most 14) and then counts down the
//! payload. It never unmasks, copies a payload or allocates.

/// The opcode of a close frame.
pub(crate) const OPCODE_CLOSE: u8 = 0x8;

/// The longest frame header: 2 bytes, a 64-bit length and a mask key.
const MAX_HEADER: usize = 14;

/// Follows the frames of one direction of a WebSocket connection.
#[derive(Debug, Clone)]
pub(crate) struct FrameTracker {
    /// Header bytes of the frame in progress, while the header is incomplete.
    header: [u8; MAX_HEADER],
    header_len: u8,
    /// Payload bytes of the frame in progress still to come.
    remaining: u64,
    /// The opcode of the frame in progress.
    opcode: u8,
    /// Set for good once the stream breaks the framing rules: boundaries are unknown.
    lost: bool,
}

impl Default for FrameTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameTracker {
    /// A tracker at the start of a stream (a frame boundary).
    pub(crate) const fn new() -> Self {
        Self {
            header: [0; MAX_HEADER],
            header_len: 0,
            remaining: 0,
            opcode: 0,
            lost: false,
        }
    }

    /// Whether the bytes so far end exactly where a frame ended.
    pub(crate) fn at_boundary(&self) -> bool {
        !self.lost && self.header_len == 0 && self.remaining == 0
    }

    /// Whether the stream broke the framing rules, so that no boundary is known any more.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }

    /// Takes bytes from the front of `data` up to the end of the frame in progress, or
    /// all of it when that frame does not end within `data`. Returns how many bytes were
    /// taken and, when a frame ended there, its opcode. Takes at least one byte of a
    /// non-empty `data`, so a caller's loop over a buffer ends.
    pub(crate) fn advance(&mut self, data: &[u8]) -> (usize, Option<u8>) {
        if self.lost {
            return (data.len(), None);
        }
        let mut taken = 0;
        if self.remaining == 0 {
            // Collect the header, which may arrive split anywhere.
            loop {
                let have = usize::from(self.header_len);
                let need = header_len(&self.header[..have]);
                if have == need {
                    break;
                }
                let Some(&byte) = data.get(taken) else {
                    return (taken, None);
                };
                self.header[have] = byte;
                self.header_len += 1;
                taken += 1;
            }
            let Some((opcode, length)) = parse_header(&self.header[..usize::from(self.header_len)])
            else {
                self.lost = true;
                return (data.len(), None);
            };
            self.header_len = 0;
            self.opcode = opcode;
            self.remaining = length;
            if length == 0 {
                return (taken, Some(opcode));
            }
        }
        let available = data.len() - taken;
        // Compared in u64: a payload length can exceed usize on 32-bit targets.
        if (available as u64) < self.remaining {
            self.remaining -= available as u64;
            return (data.len(), None);
        }
        // `remaining <= available`, so it fits in usize.
        let rest = usize::try_from(self.remaining).unwrap_or(available);
        self.remaining = 0;
        (taken + rest, Some(self.opcode))
    }

    /// Follows all of `data`; returns whether a close frame ended within it.
    pub(crate) fn skim(&mut self, mut data: &[u8]) -> bool {
        let mut close = false;
        // Each call takes at least one byte, so this ends after at most `data.len()` turns.
        while !data.is_empty() {
            let (taken, ended) = self.advance(data);
            close |= ended == Some(OPCODE_CLOSE);
            data = &data[taken..];
        }
        close
    }
}

/// How long the header that starts with `seen` is: 2 until the second byte is known,
/// then 2 + the extended length + the mask key.
fn header_len(seen: &[u8]) -> usize {
    let Some(&second) = seen.get(1) else {
        return 2;
    };
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// The opcode and payload length of a complete header, or `None` when it breaks RFC 6455:
/// a reserved opcode, a control frame that is fragmented or longer than 125 bytes, or a
/// 64-bit length with the top bit set. The RSV bits are not checked: extensions such as
/// permessage-deflate use them.
fn parse_header(header: &[u8]) -> Option<(u8, u64)> {
    let (&first, &second) = (header.first()?, header.get(1)?);
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0f;
    let length = match second & 0x7f {
        126 => u64::from(u16::from_be_bytes([*header.get(2)?, *header.get(3)?])),
        127 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(header.get(2..10)?);
            let length = u64::from_be_bytes(bytes);
            if length >> 63 != 0 {
                return None;
            }
            length
        }
        short => u64::from(short),
    };
    match opcode {
        0x0..=0x2 => {}
        0x8..=0xa if fin && length <= 125 => {}
        _ => return None,
    }
    Some((opcode, length))
}

/// Writes a close frame with `code` and `reason` into `out` and returns its length: masked
/// with `mask` when given (client to server), unmasked otherwise. `reason` is cut to fit
/// the 125-byte control payload at a character boundary.
pub(crate) fn close_frame(
    out: &mut [u8; MAX_CLOSE_FRAME],
    code: u16,
    reason: &str,
    mask: Option<[u8; 4]>,
) -> usize {
    let mut reason_len = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(reason_len) {
        reason_len -= 1;
    }
    let payload_len = 2 + reason_len;
    out[0] = 0x80 | OPCODE_CLOSE;
    // `payload_len <= 125`, so it fits the 7-bit length.
    out[1] = payload_len as u8;
    let mut at = 2;
    if let Some(key) = mask {
        out[1] |= 0x80;
        out[2..6].copy_from_slice(&key);
        at = 6;
    }
    out[at..at + 2].copy_from_slice(&code.to_be_bytes());
    out[at + 2..at + payload_len].copy_from_slice(&reason.as_bytes()[..reason_len]);
    if let Some(key) = mask {
        for (index, byte) in out[at..at + payload_len].iter_mut().enumerate() {
            *byte ^= key[index % 4];
        }
    }
    at + payload_len
}

/// A control frame's payload is at most 125 bytes; the close code takes 2.
const MAX_CLOSE_REASON: usize = 123;
/// A masked close frame with the longest reason: 2 + 4 + 125 bytes.
pub(crate) const MAX_CLOSE_FRAME: usize = 131;
