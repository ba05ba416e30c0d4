/// What went wrong in a header template, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `$` followed by a name that is not a known variable.
    #[error(
        "unknown variable `${name}` at column {column}; expected one of the documented variables such as $host, $request_uri or $http_<header>"
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
}
