//! The frame tracker: RFC 6455's examples, framing errors, and any split of valid frames.

use proptest::prelude::*;

use crate::frames::{FrameTracker, OPCODE_CLOSE};
use crate::fuzzing::{Header, LengthForm, reference_parse, track_in_chunks, ws_frames};

/// The frames of RFC 6455 §5.7, one after the other.
fn rfc_examples() -> (Vec<u8>, Vec<(usize, u8)>) {
    let mut stream = Vec::new();
    let mut ends = Vec::new();
    let mut push = |bytes: &[u8], opcode: u8| {
        stream.extend_from_slice(bytes);
        ends.push((stream.len(), opcode));
    };
    // A single-frame unmasked text message, then a masked one.
    push(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 1);
    push(
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
        1,
    );
    // A fragmented text message, with a ping between the fragments.
    push(&[0x01, 0x03, 0x48, 0x65, 0x6c], 1);
    push(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 0x9);
    push(&[0x80, 0x02, 0x6c, 0x6f], 0);
    // 256 bytes in a 16-bit length, 64 KiB in a 64-bit one.
    let mut binary = vec![0x82, 0x7e, 0x01, 0x00];
    binary.resize(4 + 256, 0xab);
    push(&binary, 2);
    let mut binary = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    binary.resize(10 + 65536, 0xcd);
    push(&binary, 2);
    // An empty pong and a close with code 1000.
    push(&[0x8a, 0x00], 0xa);
    push(&[0x88, 0x02, 0x03, 0xe8], OPCODE_CLOSE);
    (stream, ends)
}

#[test]
fn the_rfc_examples_end_where_expected_whole_and_byte_by_byte() {
    let (stream, ends) = rfc_examples();
    for chunks in [&[usize::MAX][..], &[1], &[3, 7, 1000]] {
        assert_eq!(track_in_chunks(&stream, chunks), (ends.clone(), false));
    }
}

#[test]
fn a_tracker_is_at_a_boundary_only_between_frames() {
    let mut tracker = FrameTracker::new();
    assert!(tracker.at_boundary());
    // Half a header, then the rest of the header, then the payload but one byte.
    assert_eq!(tracker.advance(&[0x82]), (1, None));
    assert!(!tracker.at_boundary());
    assert_eq!(tracker.advance(&[0x7e, 0x00]), (2, None));
    assert_eq!(tracker.advance(&[0x03, 1, 2]), (3, None));
    assert!(!tracker.at_boundary());
    // The frame ends after one more byte; what follows is left for the next call.
    assert_eq!(tracker.advance(&[3, 0x81]), (1, Some(2)));
    assert!(tracker.at_boundary());
    assert!(!tracker.skim(&[0x81, 0x00]));
    assert!(tracker.skim(&[0x88, 0x00]));
    assert!(tracker.at_boundary());
}

#[test]
fn framing_errors_lose_the_boundaries_for_good() {
    for bad in [
        // Reserved opcodes.
        &[0x83, 0x00][..],
        &[0x8b, 0x00],
        // A fragmented ping, a close longer than 125 bytes.
        &[0x09, 0x00],
        &[0x88, 0x7e, 0x00, 0x7e],
        // A 64-bit length with the top bit set.
        &[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let mut tracker = FrameTracker::new();
        assert!(!tracker.skim(bad), "{bad:?}");
        assert!(tracker.is_lost() && !tracker.at_boundary(), "{bad:?}");
        // Whatever follows, even a valid close, is taken whole and ends nothing.
        assert_eq!(tracker.advance(&[0x88, 0x00]), (2, None));
        assert!(!tracker.at_boundary());
    }
    // RSV bits (permessage-deflate sets RSV1) and the largest valid length are fine.
    let mut tracker = FrameTracker::new();
    assert_eq!(tracker.advance(&[0xc1, 0x01, 0x00]), (3, Some(1)));
    let mut huge = vec![0x82, 0x7f];
    huge.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    assert_eq!(tracker.advance(&huge), (10, None));
    assert!(!tracker.is_lost() && !tracker.at_boundary());
}

fn frame() -> impl Strategy<Value = (Header, Vec<u8>)> {
    let data = (0u8..=2, any::<bool>(), 0usize..300);
    let control = (8u8..=10, Just(true), 0usize..=125);
    (
        prop_oneof![data, control],
        0u8..8,
        prop::option::of(any::<[u8; 4]>()),
        0u8..3,
    )
        .prop_map(|((opcode, fin, len), rsv, mask, form)| {
            let form = match form {
                // The short form holds up to 125; longer payloads take a longer form.
                0 if len <= 125 => LengthForm::Short,
                2 => LengthForm::Long,
                _ => LengthForm::Medium,
            };
            let header = Header {
                first: u8::from(fin) << 7 | rsv << 4 | opcode,
                mask,
                length: len as u64,
                form,
            };
            (header, (0..len).map(|i| i as u8).collect())
        })
}

proptest! {
    #[test]
    fn any_split_of_valid_frames_finds_every_frame_end(
        frames in prop::collection::vec(frame(), 0..20),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (header, payload) in &frames {
            header.encode(&mut stream);
            stream.extend_from_slice(payload);
            expected.push((stream.len(), header.first & 0x0f));
        }
        prop_assert_eq!(track_in_chunks(&stream, &chunks), (expected.clone(), false));
        prop_assert_eq!(reference_parse(&stream).frames.len(), frames.len());
        // A frame cut short at the end of the stream ends nothing and loses nothing.
        if let Some(&(last, _)) = expected.last() {
            let (ends, lost) = track_in_chunks(&stream[..last - 1], &chunks);
            prop_assert_eq!(ends.len(), expected.len() - 1);
            prop_assert!(!lost);
        }
    }

    #[test]
    fn any_bytes_in_any_split_agree_with_the_reference(data in prop::collection::vec(any::<u8>(), 0..600)) {
        ws_frames(&data);
    }
}
