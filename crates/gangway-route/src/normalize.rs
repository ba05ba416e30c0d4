//! Safe path normalisation for matching (RFC 3986 §6.2.2 and §5.2.4), and prefix
//! replacement.

use std::borrow::Cow;

use crate::error::NormalizeError;
use crate::expr::{hex_value, is_unreserved};

/// How [`normalize_path`] treats what RFC 3986 leaves to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NormalizeOptions {
    merge_slashes: bool,
}

impl NormalizeOptions {
    /// The defaults: `//` is kept (it is a different path to most upstreams).
    pub fn new() -> NormalizeOptions {
        NormalizeOptions::default()
    }

    /// Merge runs of `/` into one before matching, as nginx's `merge_slashes on`.
    pub fn merge_slashes(mut self, on: bool) -> NormalizeOptions {
        self.merge_slashes = on;
        self
    }

    /// Whether runs of `/` are merged.
    pub fn merges_slashes(&self) -> bool {
        self.merge_slashes
    }
}

/// Normalises a request path (with or without its query) for matching.
///
/// In order:
/// 1. percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, and the
///    hex digits of every other percent-encoding are made upper case;
/// 2. with [`NormalizeOptions::merge_slashes`], runs of `/` become one;
/// 3. `.` and `..` segments are removed as in RFC 3986 §5.2.4.
///
/// Refused with a [`NormalizeError`] (the engine answers 400): a path that does not start
/// with `/`, `%` without two hex digits, `%2F`, `%5C`, a raw `\`, NUL (raw or `%00`) and a
/// `..` that would climb above the root.
///
/// The query, if any, is kept unchanged. The result borrows the input when nothing changed,
/// so the common case does not allocate. The function is idempotent.
///
/// ```
/// use gangway_route::{normalize_path, NormalizeOptions};
/// let opts = NormalizeOptions::default();
/// assert_eq!(normalize_path("/a/./b/%7e", opts)?, "/a/b/~");
/// assert_eq!(normalize_path("/a/%2e%2e/b?x=/../", opts)?, "/b?x=/../");
/// assert_eq!(normalize_path("/a//b", opts.merge_slashes(true))?, "/a/b");
/// assert!(normalize_path("/a/%2Fetc", opts).is_err());
/// assert!(normalize_path("/a/../..", opts).is_err());
/// # Ok::<(), gangway_route::NormalizeError>(())
/// ```
pub fn normalize_path(
    target: &str,
    options: NormalizeOptions,
) -> Result<Cow<'_, str>, NormalizeError> {
    let (path, query) = split_target(target);
    let normalized = Normalized::of(path, options)?;
    if !normalized.changed() {
        return Ok(Cow::Borrowed(target));
    }
    let path = normalized.path();
    let mut out = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(Cow::Owned(out))
}

/// Replaces `old_prefix` at the start of a request target by `new_prefix`, keeping the rest
/// of the path and the query, as nginx does for `proxy_pass` with a URI and Apache for
/// `ProxyPass`.
///
/// The replacement is textual: the prefix `/websocket/node1` also takes the first part of
/// `/websocket/node10`, exactly as in nginx, so end prefixes with `/` where that matters. A
/// target that does not start with `old_prefix` is returned unchanged, and a result that
/// would not start with `/` gets one.
///
/// ```
/// assert_eq!(
///     gangway_route::replace_prefix("/websocket/node1/a?b", "/websocket/node1", "/websocket"),
///     "/websocket/a?b"
/// );
/// ```
pub fn replace_prefix(target: &str, old_prefix: &str, new_prefix: &str) -> String {
    let Some(rest) = target.strip_prefix(old_prefix) else {
        return target.to_owned();
    };
    let mut out = String::with_capacity(new_prefix.len() + rest.len() + 1);
    let has_slash = new_prefix.starts_with('/') || (new_prefix.is_empty() && rest.starts_with('/'));
    if !has_slash {
        out.push('/');
    }
    out.push_str(new_prefix);
    out.push_str(rest);
    out
}

/// Splits a request target at the first `?`.
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// One path, after each stage of normalisation.
#[derive(Debug)]
pub(crate) struct Normalized<'a> {
    /// After percent-normalisation only: dot segments and `//` are still there. This is the
    /// path "as sent" for the purpose of checking that normalisation changes no route.
    pub(crate) literal: Cow<'a, str>,
    /// After dot-segment removal (and slash merging), if that changed anything.
    dots: Option<String>,
}

impl<'a> Normalized<'a> {
    pub(crate) fn of(
        path: &'a str,
        options: NormalizeOptions,
    ) -> Result<Normalized<'a>, NormalizeError> {
        let literal = percent_normalize(path)?;
        let dots = remove_dot_segments(&literal, options.merge_slashes).map_err(|segment| {
            let offset = path
                .match_indices('/')
                .nth(segment)
                .map_or(0, |(at, _)| at + 1);
            NormalizeError::AboveRoot {
                path: path.to_owned(),
                offset,
            }
        })?;
        Ok(Normalized { literal, dots })
    }

    /// The fully normalised path.
    pub(crate) fn path(&self) -> &str {
        self.dots.as_deref().unwrap_or(&self.literal)
    }

    /// Whether the fully normalised path differs from the input.
    pub(crate) fn changed(&self) -> bool {
        matches!(self.literal, Cow::Owned(_)) || self.dots.is_some()
    }

    /// Whether dot-segment removal or slash merging changed the path.
    pub(crate) fn moved(&self) -> bool {
        self.dots.is_some()
    }
}

fn percent_normalize(path: &str) -> Result<Cow<'_, str>, NormalizeError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(NormalizeError::NotAbsolute {
            path: path.to_owned(),
        });
    }
    let owned = |offset| (path.to_owned(), offset);
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0 => {
                let (path, offset) = owned(i);
                return Err(NormalizeError::Nul { path, offset });
            }
            b'\\' => {
                let (path, offset) = owned(i);
                return Err(NormalizeError::Backslash { path, offset });
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied();
                let lo = bytes.get(i + 2).copied();
                let (Some(h), Some(l)) = (hi.and_then(hex_value), lo.and_then(hex_value)) else {
                    let (path, offset) = owned(i);
                    return Err(NormalizeError::InvalidPercentEncoding { path, offset });
                };
                let value = h * 16 + l;
                match value {
                    0 => {
                        let (path, offset) = owned(i);
                        return Err(NormalizeError::Nul { path, offset });
                    }
                    b'/' => {
                        let (path, offset) = owned(i);
                        return Err(NormalizeError::EncodedSlash { path, offset });
                    }
                    b'\\' => {
                        let (path, offset) = owned(i);
                        return Err(NormalizeError::EncodedBackslash { path, offset });
                    }
                    _ => {}
                }
                let lower = hi.is_some_and(|b| b.is_ascii_lowercase())
                    || lo.is_some_and(|b| b.is_ascii_lowercase());
                if is_unreserved(value) || lower {
                    let buf = out.get_or_insert_with(|| String::with_capacity(path.len()));
                    buf.push_str(&path[copied..i]);
                    if is_unreserved(value) {
                        buf.push(char::from(value));
                    } else {
                        buf.push('%');
                        buf.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                        buf.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
                    }
                    copied = i + 3;
                }
                i += 3;
            }
            _ => i += 1,
        }
    }
    Ok(match out {
        Some(mut buf) => {
            buf.push_str(&path[copied..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(path),
    })
}

/// RFC 3986 §5.2.4 on a path that starts with `/`, refusing `..` above the root (the error
/// is the index of the offending segment). `None` when nothing changes.
fn remove_dot_segments(path: &str, merge_slashes: bool) -> Result<Option<String>, usize> {
    let body = &path[1..];
    let count = body.split('/').count();
    let needs_work = body.split('/').enumerate().any(|(i, segment)| {
        segment == "." || segment == ".." || (merge_slashes && segment.is_empty() && i + 1 < count)
    });
    if !needs_work {
        return Ok(None);
    }
    let mut out = String::with_capacity(path.len());
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing_slash = false;
    for (i, segment) in body.split('/').enumerate() {
        let last = i + 1 == count;
        match segment {
            "." => trailing_slash = last,
            ".." => {
                let Some(start) = starts.pop() else {
                    return Err(i);
                };
                out.truncate(start);
                trailing_slash = last;
            }
            "" if merge_slashes && !last => {}
            _ => {
                starts.push(out.len());
                out.push('/');
                out.push_str(segment);
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(Some(out))
}
