/// What is wrong in a header configuration, and where: a template, a header operation or a
/// trusted network. All of these are found once, when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `$` followed by a name that is not a known variable (nor, with
    /// [`Template::parse_with_captures`](crate::Template::parse_with_captures), a capture
    /// of the route).
    #[error(
        "unknown variable `${name}` at column {column}; expected one of the documented variables such as $host, $request_uri or $http_<header>, a capture $0..$9, or a named capture of the route"
    )]
    UnknownVariable {
        /// The name as written.
        name: String,
        /// 1-based character column of the `$`.
        column: usize,
    },
    /// `$` followed by nothing that can start a name.
    #[error(
        "`$` at column {column} is not followed by a variable name; write `$$` for a literal dollar"
    )]
    MissingName {
        /// 1-based character column of the `$`.
        column: usize,
    },
    /// `${` without its closing `}`.
    #[error("`${{` at column {column} has no closing `}}`")]
    UnclosedBrace {
        /// 1-based character column of the `$`.
        column: usize,
    },
    /// A route capture is named like a built-in variable, so `$name` would be ambiguous.
    #[error(
        "the route capture `{name}` has the name of a built-in variable; rename the capture group"
    )]
    CaptureShadowsVariable {
        /// The capture's name.
        name: String,
    },
    /// The literal text of a template contains a byte that a header value cannot carry
    /// (a control character such as CR, LF or NUL).
    #[error(
        "header `{header}`: the value has control character {byte:#04x} at column {column}; header values cannot contain CR, LF, NUL or other control characters"
    )]
    InvalidLiteral {
        /// The header the value is for.
        header: String,
        /// The offending byte.
        byte: u8,
        /// 1-based character column in the template source.
        column: usize,
    },
    /// A header operation names a header that the proxy manages itself.
    #[error("header `{header}` cannot be changed by a header operation: {reason}")]
    ManagedHeader {
        /// The header as named by the operation.
        header: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// A trusted network is not an IP address or CIDR block.
    #[error("`{input}` is not a network: at column {column}, expected {expected}")]
    InvalidNetwork {
        /// The text as written.
        input: String,
        /// 1-based character column of the problem.
        column: usize,
        /// What was expected there.
        expected: &'static str,
    },
}

impl Error {
    /// The 1-based character column the error points at, when it points into a template or
    /// network text.
    pub fn column(&self) -> Option<usize> {
        match self {
            Self::UnknownVariable { column, .. }
            | Self::MissingName { column }
            | Self::UnclosedBrace { column }
            | Self::InvalidLiteral { column, .. }
            | Self::InvalidNetwork { column, .. } => Some(*column),
            Self::CaptureShadowsVariable { .. } | Self::ManagedHeader { .. } => None,
        }
    }
}
