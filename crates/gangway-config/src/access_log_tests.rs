//! `[server] access_log`: formats, file or standard error, errors, round trip.

use std::path::{Path, PathBuf};

use crate::tests::errors;
use crate::{AccessLog, AccessLogFormat, parse, to_toml};

const RESPOND: &str = "[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n";

fn access_log(server: &str) -> AccessLog {
    let source = format!("[server]\n{server}\n{RESPOND}");
    parse(&source, Path::new("/etc/gangway/gangway.toml"))
        .unwrap()
        .server
        .access_log
}

#[test]
fn without_the_key_the_default_line_goes_to_standard_error() {
    assert_eq!(access_log(""), AccessLog::default());
    assert_eq!(AccessLog::default().format, AccessLogFormat::Default);
    assert_eq!(AccessLog::default().path, None);
}

#[test]
fn each_format_reads_and_a_relative_path_starts_at_the_file() {
    for (name, format) in [
        ("default", AccessLogFormat::Default),
        ("json", AccessLogFormat::Json),
        ("combined", AccessLogFormat::Combined),
    ] {
        assert_eq!(format.name(), name);
        let read = access_log(&format!(
            "access_log = {{ format = \"{name}\", path = \"logs/access.log\" }}"
        ));
        assert_eq!(
            read,
            AccessLog {
                format,
                path: Some(PathBuf::from("/etc/gangway/logs/access.log")),
            }
        );
    }
    assert_eq!(
        access_log("access_log = { path = \"/var/log/gangway/access.log\" }"),
        AccessLog {
            format: AccessLogFormat::Default,
            path: Some(PathBuf::from("/var/log/gangway/access.log")),
        }
    );
    assert_eq!(
        access_log("access_log = { format = \"json\" }"),
        AccessLog {
            format: AccessLogFormat::Json,
            path: None,
        }
    );
}

#[test]
fn an_unknown_format_or_an_empty_path_is_an_error_at_its_place() {
    let source =
        format!("[server]\naccess_log = {{ format = \"common\", path = \"\" }}\n{RESPOND}");
    assert_eq!(
        errors(&source),
        "/x/gangway.toml:2:25: server.access_log.format = \"common\": is not an access-log \
         format; expected \"default\" (gangway's key=value line), \"json\" (one JSON object \
         per line) or \"combined\" (nginx's combined format)\n\
         /x/gangway.toml:2:42: server.access_log.path = \"\": is not a file name; expected the \
         file to append lines to, such as \"/var/log/gangway/access.log\"; leave path out to \
         write to standard error"
    );
    let unknown = format!("[server]\naccess_log = {{ fromat = \"json\" }}\n{RESPOND}");
    assert!(
        errors(&unknown).contains("unknown field `fromat`"),
        "{}",
        errors(&unknown)
    );
}

#[test]
fn to_toml_round_trips_the_access_log() {
    let source = format!(
        "[server]\naccess_log = {{ format = \"combined\", path = \"access.log\" }}\n{RESPOND}"
    );
    let config = parse(&source, Path::new("/srv/gangway.toml")).unwrap();
    let written = to_toml(&config);
    assert!(
        written.contains("access_log = { format = \"combined\", path = \"/srv/access.log\" }\n"),
        "{written}"
    );
    assert_eq!(
        parse(&written, Path::new("/elsewhere.toml")).unwrap(),
        config
    );
}
