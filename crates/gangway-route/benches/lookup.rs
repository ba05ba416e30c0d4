//! Lookup in a table of 1,000 mixed routes (500 plain prefixes, 200 `^~` prefixes, 150
//! exact paths, 150 regular expressions), nginx precedence.
//!
//! Run: `cargo bench -p gangway-route --bench lookup`. Results are in
//! `docs/benchmarks-route.md`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gangway_route::{MatchMode, NormalizeOptions, RouteTable, RouteTableBuilder};

fn mixed_table(mode: MatchMode) -> RouteTable<usize> {
    let mut builder = RouteTableBuilder::new(mode);
    let mut exprs = Vec::new();
    for i in 0..500 {
        exprs.push(format!("/app{i}/api/"));
    }
    for i in 0..200 {
        exprs.push(format!("^~ /assets{i}/"));
    }
    for i in 0..150 {
        exprs.push(format!("= /app{i}/status"));
    }
    for i in 0..100 {
        exprs.push(format!(r"~ ^/app{i}/items/(?<id>\d+)$"));
    }
    for i in 0..50 {
        exprs.push(format!(r"~* \.ext{i}$"));
    }
    assert_eq!(exprs.len(), 1000);
    for (i, expr) in exprs.iter().enumerate() {
        builder.add_expr(expr, i).expect("valid route");
    }
    builder.build().expect("table")
}

fn lookup(c: &mut Criterion) {
    let table = mixed_table(MatchMode::Nginx);
    let cases = [
        ("exact hit", "/app77/status"),
        (
            "^~ prefix hit (no regex consulted)",
            "/assets123/img/logo.png?v=3",
        ),
        (
            "plain prefix hit (regex set consulted, no match)",
            "/app321/api/v1/users?page=2",
        ),
        ("regex hit with captures", "/app42/items/123456"),
        ("case-insensitive suffix regex hit", "/downloads/file.EXT7"),
        ("miss", "/nothing/here"),
    ];
    let mut group = c.benchmark_group("lookup 1000 mixed routes (nginx)");
    for (name, path) in cases {
        assert!(
            name == "miss" || table.lookup(Some("example.com"), path).is_some(),
            "{name}"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                table
                    .lookup(black_box(Some("example.com")), black_box(path))
                    .map(|m| *m.value())
            })
        });
    }
    group.finish();

    let opts = NormalizeOptions::default();
    let mut group = c.benchmark_group("resolve 1000 mixed routes (nginx)");
    for (name, path) in [
        (
            "plain prefix, already normal",
            "/app321/api/v1/users?page=2",
        ),
        (
            "plain prefix, dot segment",
            "/app321/api/v1/./users/../users?page=2",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                table
                    .resolve(
                        black_box(Some("example.com")),
                        Some("GET"),
                        black_box(path),
                        opts,
                    )
                    .map(|m| m.map(|m| *m.value()))
            })
        });
    }
    group.finish();

    let first = mixed_table(MatchMode::FirstMatch);
    let mut group = c.benchmark_group("lookup 1000 mixed routes (first match)");
    group.bench_function("plain prefix hit", |b| {
        b.iter(|| {
            first
                .lookup(black_box(None), black_box("/app321/api/v1/users"))
                .map(|m| *m.value())
        })
    });
    group.finish();
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, lookup);
}
use group::benches;
criterion_main!(benches);
