//! Route-expression parser. Invariant: parsing never panics, and a parsed expression
//! (route, path, host or template), displayed and parsed again, is the same expression.
//! The checks live in `gangway_route::fuzzing::route_expr` so that the corpus-replay test
//! runs them on stable Rust.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_route::fuzzing::route_expr(data);
});
