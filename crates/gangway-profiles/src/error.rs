//! What went wrong in a profile file, where, and what was expected instead.

use std::fmt;
use std::path::PathBuf;

use gangway_config::{IoError, Location};

/// One problem in a profile file, displayed as `FILE:LINE:COLUMN: ...` where the file has
/// a position for it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The profile file could not be read.
    #[error("{}: cannot read the profile file: {source}; expected a readable TOML file", file.display())]
    Read {
        /// The file as it was named.
        file: PathBuf,
        /// Why reading failed.
        #[source]
        source: IoError,
    },
    /// Not TOML, an unknown key, or a value of the wrong TOML type.
    #[error("{at}: {message}")]
    Syntax {
        /// Where the TOML parser stopped.
        at: Location,
        /// The parser's description, which names what it expected.
        message: String,
    },
    /// A required key is missing.
    #[error("{at}: {key} is missing; expected {expected}")]
    Missing {
        /// The table that lacks the key.
        at: Location,
        /// The key, as a path such as `device[2].port`.
        key: String,
        /// What to write.
        expected: &'static str,
    },
    /// A value has the wrong form, or names a file that does not exist.
    #[error("{at}: {key} = {value}: {problem}; expected {expected}")]
    Value {
        /// The value.
        at: Location,
        /// The key, as a path such as `device[2].port`.
        key: String,
        /// The value as written (quoted when it is a string).
        value: String,
        /// What is wrong with it.
        problem: String,
        /// The accepted form.
        expected: &'static str,
    },
    /// The expansion did not validate as a generic configuration: a profile value that the
    /// profile's own checks let through (every such case is a bug worth reporting).
    #[error("{}: the expanded configuration is invalid: {source}", file.display())]
    Expanded {
        /// The profile file.
        file: PathBuf,
        /// What the generic configuration reader said.
        #[source]
        source: gangway_config::Errors,
    },
}

/// Every problem found in one profile file, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    /// The problems, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Error> for Errors {
    fn from(error: Error) -> Self {
        Errors(vec![error])
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}
