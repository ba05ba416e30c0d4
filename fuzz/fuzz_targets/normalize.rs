//! Path normalisation. Invariants: never panics; idempotent; the result starts with `/`,
//! has no `.` or `..` segment (never escapes the root), only canonical escapes, and the
//! query unchanged. See `gangway_route::fuzzing::normalize`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_route::fuzzing::normalize(data);
});
