//! Validation of `[server] access_log`: the line format and where lines go.

use serde_spanned::Spanned;

use crate::model::{AccessLog, AccessLogFormat};
use crate::raw::RawAccessLog;
use crate::validate::Checker;
use crate::values::quote;

const FORMAT_EXPECTED: &str = "\"default\" (gangway's key=value line), \"json\" (one JSON object \
     per line) or \"combined\" (nginx's combined format)";

impl Checker<'_> {
    /// The access log: format `default` to standard error unless the table says otherwise.
    /// A relative `path` starts from the configuration file's directory; the file itself
    /// is created when the server starts, so it need not exist yet.
    pub(crate) fn access_log(&mut self, raw: Option<&Spanned<RawAccessLog>>) -> AccessLog {
        let Some(raw) = raw.map(Spanned::get_ref) else {
            return AccessLog::default();
        };
        let format = match raw.format.as_ref() {
            None => AccessLogFormat::Default,
            Some(format) => match format.get_ref().as_str() {
                "default" => AccessLogFormat::Default,
                "json" => AccessLogFormat::Json,
                "combined" => AccessLogFormat::Combined,
                other => {
                    self.invalid(
                        &format.span(),
                        "server.access_log.format",
                        quote(other),
                        "is not an access-log format".to_owned(),
                        FORMAT_EXPECTED,
                    );
                    AccessLogFormat::Default
                }
            },
        };
        let path = raw.path.as_ref().and_then(|path| {
            let name = path.get_ref();
            if name.is_empty() || name.ends_with('/') {
                self.invalid(
                    &path.span(),
                    "server.access_log.path",
                    quote(name),
                    "is not a file name".to_owned(),
                    "the file to append lines to, such as \"/var/log/gangway/access.log\"; \
                     leave path out to write to standard error",
                );
                return None;
            }
            Some(self.base_dir.join(name))
        });
        AccessLog { format, path }
    }
}
