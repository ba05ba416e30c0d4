//! Route table. Input: route expressions one per line, `---`, then requests
//! (`[METHOD] [HOST] TARGET`). Invariants: building and lookup never panic, every lookup
//! agrees with a naive reference model of the precedence rules, and `resolve` never sends
//! a request to a route its raw path would not reach. See
//! `gangway_route::fuzzing::route_table`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_route::fuzzing::route_table(data);
});
