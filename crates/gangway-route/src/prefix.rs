//! A sorted prefix table: all the prefixes of a path that the table holds, longest first, by
//! one binary search and a walk up precomputed parent links. No allocation per lookup.
//!
//! Why it works: let `e` be the greatest entry that sorts at or before the path `p`. Every
//! entry `q` that is a prefix of `p` sorts between `q` and `p`, so `q <= e <= p`, and every
//! string between a prefix of `p` and `p` starts with that prefix; hence `q` is a prefix of
//! `e`. So the prefixes of `p` are found among `e` and its chain of parents (each entry's
//! parent is the longest other entry that is a prefix of it).

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct PrefixTable {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    prefix: Box<str>,
    parent: Option<usize>,
    /// Route ids with this prefix, in declaration order.
    routes: Vec<usize>,
}

impl PrefixTable {
    pub(crate) fn new<'a>(items: impl IntoIterator<Item = (&'a str, usize)>) -> PrefixTable {
        let mut grouped: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (prefix, id) in items {
            grouped.entry(prefix).or_default().push(id);
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(grouped.len());
        // The entries that are prefixes of the current one, shortest first: sorted order is
        // a depth-first walk of the prefix tree.
        let mut stack: Vec<usize> = Vec::new();
        for (prefix, routes) in grouped {
            while let Some(&top) = stack.last() {
                if prefix.starts_with(&*entries[top].prefix) {
                    break;
                }
                stack.pop();
            }
            let index = entries.len();
            entries.push(Entry {
                prefix: prefix.into(),
                parent: stack.last().copied(),
                routes,
            });
            stack.push(index);
        }
        PrefixTable { entries }
    }

    /// The route lists of every entry that is a prefix of `path`, longest first.
    pub(crate) fn matches<'a>(&'a self, path: &'a str) -> Matches<'a> {
        let after = self
            .entries
            .partition_point(|e| e.prefix.as_bytes() <= path.as_bytes());
        Matches {
            table: self,
            path,
            next: after.checked_sub(1),
        }
    }
}

pub(crate) struct Matches<'a> {
    table: &'a PrefixTable,
    path: &'a str,
    next: Option<usize>,
}

impl<'a> Iterator for Matches<'a> {
    type Item = &'a [usize];

    fn next(&mut self) -> Option<&'a [usize]> {
        while let Some(index) = self.next {
            let entry = &self.table.entries[index];
            self.next = entry.parent;
            if self.path.starts_with(&*entry.prefix) {
                return Some(&entry.routes);
            }
        }
        None
    }
}
