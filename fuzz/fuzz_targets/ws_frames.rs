//! The WebSocket frame tracker of the splice. Invariants: never panics on any bytes; finds
//! exactly the frame ends and framing errors a naive whole-buffer parser finds, however
//! the stream is split; each frame header encodes back to its bytes; a close frame the
//! splice writes is one valid frame that decodes to its code and reason. See
//! `gangway_tunnel::fuzzing::ws_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_tunnel::fuzzing::ws_frames(data);
});
