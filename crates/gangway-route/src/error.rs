//! The crate's errors: [`Error`] for everything found while a table is built (malformed
//! expressions, templates, duplicate routes) and [`NormalizeError`] for a request path that
//! is refused at request time.

use std::fmt;

/// Why a route expression, a template or a route table was refused.
///
/// Every variant says what failed, where (the input and a 1-based character column) and
/// what was expected there, so a configuration loader can point at the mistake.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not follow the documented syntax.
    #[error("{what} `{input}`, column {column}: expected {expected}, found {found}")]
    Syntax {
        /// Which kind of input was being read.
        what: Input,
        /// The whole input as given.
        input: String,
        /// 1-based character column of the problem.
        column: usize,
        /// What the syntax allows at that column.
        expected: &'static str,
        /// What is there instead: a quoted token, or `end of input`.
        found: String,
    },
    /// A regular expression in a path or host match does not compile.
    #[error("{what} `{input}`, column {column}: invalid regular expression")]
    Regex {
        /// Which kind of input was being read.
        what: Input,
        /// The whole input as given.
        input: String,
        /// 1-based character column where the regular expression starts.
        column: usize,
        /// What the regular expression compiler said.
        #[source]
        source: RegexError,
    },
    /// A template refers to a capture that its route's regular expressions do not have.
    #[error(
        "template `{template}`, column {column}: route `{route}` has no capture {capture}; \
         expected a capture its host or path regular expression defines"
    )]
    UnknownCapture {
        /// The template as written.
        template: String,
        /// 1-based character column of the reference.
        column: usize,
        /// The reference as written, such as `$3`, `${device}` or `{R:2}`.
        capture: String,
        /// The route expression, displayed.
        route: String,
    },
    /// Two routes have the same host match, method filter and path match, so the second
    /// could never be chosen.
    #[error("route #{second} `{route}` duplicates route #{first}; expected each route once")]
    DuplicateRoute {
        /// The route expression, displayed.
        route: String,
        /// 0-based position of the first declaration.
        first: usize,
        /// 0-based position of the duplicate.
        second: usize,
    },
}

/// The kind of input an [`Error`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// A whole route expression (`host … method … path`).
    Route,
    /// A path expression (`= /x`, `^~ /x`, `~ re`, `~* re`, `/x`).
    Path,
    /// A host match (`name`, `*.domain`, `~ re`).
    Host,
    /// A rewrite template.
    Template,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Route => "route expression",
            Self::Path => "path expression",
            Self::Host => "host match",
            Self::Template => "template",
        })
    }
}

/// A regular expression that does not compile, with the compiler's explanation.
///
/// This wraps the `regex` crate's error so that the crate's public API stays within std
/// and its own types.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexError(pub(crate) regex::Error);

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for RegexError {}

/// Which party a request error is the fault of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong.
    Downstream,
    /// The upstream failed.
    Upstream,
    /// The proxy itself failed.
    Internal,
}

/// Why a request path was refused before routing. The engine answers `400 Bad Request`
/// (see [`NormalizeError::status`]).
///
/// Offsets are 0-based byte offsets into the path as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// The path does not start with `/` (an origin-form target always does).
    #[error("path `{path}` does not start with `/`")]
    NotAbsolute {
        /// The path.
        path: String,
    },
    /// `%` not followed by two hex digits.
    #[error("path `{path}`, offset {offset}: `%` is not followed by two hex digits")]
    InvalidPercentEncoding {
        /// The path.
        path: String,
        /// Offset of the `%`.
        offset: usize,
    },
    /// `%2F`: an encoded `/` would let one segment pose as two.
    #[error("path `{path}`, offset {offset}: encoded `/` (`%2F`) is refused")]
    EncodedSlash {
        /// The path.
        path: String,
        /// Offset of the `%`.
        offset: usize,
    },
    /// `%5C`: an encoded `\`, which some servers treat as `/`.
    #[error("path `{path}`, offset {offset}: encoded `\\` (`%5C`) is refused")]
    EncodedBackslash {
        /// The path.
        path: String,
        /// Offset of the `%`.
        offset: usize,
    },
    /// A raw `\`, which some servers (IIS) treat as `/`, and RFC 3986 does not allow.
    #[error("path `{path}`, offset {offset}: `\\` is refused")]
    Backslash {
        /// The path.
        path: String,
        /// Offset of the `\`.
        offset: usize,
    },
    /// A NUL byte, raw or as `%00`.
    #[error("path `{path}`, offset {offset}: NUL is refused")]
    Nul {
        /// The path.
        path: String,
        /// Offset of the NUL or of the `%` of `%00`.
        offset: usize,
    },
    /// A `..` segment that would climb above the root.
    #[error("path `{path}`, offset {offset}: `..` climbs above the root")]
    AboveRoot {
        /// The path.
        path: String,
        /// Offset of the segment.
        offset: usize,
    },
    /// The normalised path reaches a different route from the path as sent (percent-decoded
    /// but with its dot segments and doubled slashes kept), so the proxy and the upstream
    /// could disagree about what was asked for.
    #[error("path `{path}` reaches a different route once normalised")]
    Ambiguous {
        /// The path.
        path: String,
    },
}

impl NormalizeError {
    /// Whose fault it is: always the client's.
    pub fn side(&self) -> Side {
        match self {
            Self::NotAbsolute { .. }
            | Self::InvalidPercentEncoding { .. }
            | Self::EncodedSlash { .. }
            | Self::EncodedBackslash { .. }
            | Self::Backslash { .. }
            | Self::Nul { .. }
            | Self::AboveRoot { .. }
            | Self::Ambiguous { .. } => Side::Downstream,
        }
    }

    /// The HTTP status code the client gets: always `400`.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotAbsolute { .. }
            | Self::InvalidPercentEncoding { .. }
            | Self::EncodedSlash { .. }
            | Self::EncodedBackslash { .. }
            | Self::Backslash { .. }
            | Self::Nul { .. }
            | Self::AboveRoot { .. }
            | Self::Ambiguous { .. } => 400,
        }
    }
}
