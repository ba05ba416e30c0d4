//! The invariants the `ws_frames` fuzz target in `fuzz/` checks, kept here so that the
//! corpus-replay test runs exactly the same checks on stable Rust, with a naive
//! whole-buffer frame parser that the incremental tracker is compared with.
//!
//! Every function panics when an invariant does not hold; that is the point.

use crate::frames::{FrameTracker, MAX_CLOSE_FRAME, OPCODE_CLOSE, close_frame};

/// How a frame header writes its payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthForm {
    /// In the 7 bits of the second byte (up to 125).
    Short,
    /// In 16 bits after the marker 126.
    Medium,
    /// In 64 bits after the marker 127.
    Long,
}

/// One frame's header as written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The first byte: FIN, RSV1-3 and the opcode.
    pub first: u8,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub length: u64,
    /// How the length is written.
    pub form: LengthForm,
}

impl Header {
    /// Appends the header's bytes to `out`.
    ///
    /// # Panics
    ///
    /// When `length` does not fit `form`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.first);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match self.form {
            LengthForm::Short => {
                assert!(self.length <= 125, "{} does not fit 7 bits", self.length);
                out.push(mask_bit | self.length as u8);
            }
            LengthForm::Medium => {
                let length = u16::try_from(self.length).expect("fits 16 bits");
                out.push(mask_bit | 126);
                out.extend_from_slice(&length.to_be_bytes());
            }
            LengthForm::Long => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&self.length.to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
    }
}

/// What the naive parser found in a whole buffer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Each complete frame: its header, where it starts and where it ends (exclusive).
    pub frames: Vec<(Header, usize, usize)>,
    /// Whether a complete header broke the framing rules.
    pub lost: bool,
}

/// Parses `data` frame by frame, the obvious way, up to the first incomplete frame or
/// invalid header.
pub fn reference_parse(data: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut at = 0usize;
    // Each turn moves `at` forward by at least the 2 header bytes, or stops.
    while let (Some(&first), Some(&second)) = (data.get(at), data.get(at + 1)) {
        let (form, length_bytes) = match second & 0x7f {
            126 => (LengthForm::Medium, 2),
            127 => (LengthForm::Long, 8),
            _ => (LengthForm::Short, 0),
        };
        let masked = second & 0x80 != 0;
        let header_len = 2 + length_bytes + if masked { 4 } else { 0 };
        let Some(header) = data.get(at..at + header_len) else {
            break;
        };
        let length = match form {
            LengthForm::Short => u64::from(second & 0x7f),
            _ => header[2..2 + length_bytes]
                .iter()
                .fold(0u64, |value, &byte| (value << 8) | u64::from(byte)),
        };
        let mask = masked.then(|| {
            let mut key = [0u8; 4];
            key.copy_from_slice(&header[2 + length_bytes..header_len]);
            key
        });
        let opcode = first & 0x0f;
        let fin = first & 0x80 != 0;
        let valid = match opcode {
            0..=2 => length >> 63 == 0,
            8..=10 => fin && length <= 125,
            _ => false,
        };
        if !valid {
            parsed.lost = true;
            break;
        }
        let start = at;
        let end = u64::try_from(at + header_len)
            .ok()
            .and_then(|payload_start| payload_start.checked_add(length));
        match end.and_then(|end| usize::try_from(end).ok()) {
            Some(end) if end <= data.len() => {
                let header = Header {
                    first,
                    mask,
                    length,
                    form,
                };
                parsed.frames.push((header, start, end));
                at = end;
            }
            _ => break,
        }
    }
    parsed
}

/// Feeds `data` to the splice's `FrameTracker` in chunks of the given lengths (cycled; a zero is
/// read as one) and returns where frames ended, with their opcodes, and whether the
/// tracker lost the framing. Also checks the contract of its `advance` on the way.
pub fn track_in_chunks(data: &[u8], chunks: &[usize]) -> (Vec<(usize, u8)>, bool) {
    let mut tracker = FrameTracker::new();
    let mut ends = Vec::new();
    let mut offset = 0usize;
    let mut sizes = chunks.iter().copied().cycle();
    while offset < data.len() {
        let size = sizes.next().unwrap_or(1).max(1);
        let chunk = &data[offset..data.len().min(offset + size)];
        let mut at = 0;
        while at < chunk.len() {
            let (taken, ended) = tracker.advance(&chunk[at..]);
            assert!(taken >= 1 && taken <= chunk.len() - at, "took {taken}");
            at += taken;
            if let Some(opcode) = ended {
                assert!(tracker.at_boundary(), "a frame ended off a boundary");
                ends.push((offset + at, opcode));
            } else {
                assert_eq!(at, chunk.len(), "stopped inside a chunk without an end");
            }
        }
        offset += chunk.len();
    }
    (ends, tracker.is_lost())
}

/// `ws_frames` target: the first byte says how many of the following bytes (up to 15) are
/// chunk lengths; the rest is a byte stream. The tracker never panics, finds exactly the
/// frame ends and the framing errors the naive parser finds however the stream is split,
/// each frame's header encodes back to its bytes, and a close frame the splice would
/// write is one valid frame that decodes to the code and reason it was built from.
pub fn ws_frames(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(count);
    let chunks: Vec<usize> = sizes.iter().map(|&size| usize::from(size)).collect();

    let expected = reference_parse(stream);
    let expected_ends: Vec<(usize, u8)> = expected
        .frames
        .iter()
        .map(|(header, _, end)| (*end, header.first & 0x0f))
        .collect();
    for chunking in [&chunks[..], &[usize::MAX], &[1]] {
        let (ends, lost) = track_in_chunks(stream, chunking);
        assert_eq!(ends, expected_ends, "chunks {chunking:?}");
        assert_eq!(lost, expected.lost, "chunks {chunking:?}");
    }
    for (header, start, _) in &expected.frames {
        let mut encoded = Vec::new();
        header.encode(&mut encoded);
        assert_eq!(encoded, stream[*start..*start + encoded.len()]);
    }

    // A close frame with a reason taken from the input, masked or not.
    let reason = String::from_utf8_lossy(stream);
    let code = u16::from_be_bytes([sizes.first().copied().unwrap_or(3), 0xe9]);
    let key = [count as u8, 1, 2, 3];
    for mask in [None, Some(key)] {
        let mut frame = [0u8; MAX_CLOSE_FRAME];
        let len = close_frame(&mut frame, code, &reason, mask);
        let (ends, lost) = track_in_chunks(&frame[..len], &[1]);
        assert_eq!((ends, lost), (vec![(len, OPCODE_CLOSE)], false));
        let header_len = if mask.is_some() { 6 } else { 2 };
        let mut payload = frame[header_len..len].to_vec();
        if let Some(key) = mask {
            for (index, byte) in payload.iter_mut().enumerate() {
                *byte ^= key[index % 4];
            }
        }
        assert_eq!(payload[..2], code.to_be_bytes());
        let sent = std::str::from_utf8(&payload[2..]).expect("the reason stays UTF-8");
        assert!(reason.starts_with(sent) && sent.len() <= 123);
    }
}
