//! The access-log formats against fixed records, and the writer thread's file handling.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gangway_config::AccessLogFormat;
use http::{HeaderValue, Request, StatusCode, Version};

use crate::access::{AccessRecord, Utc};
use crate::access_log::{Message, start_writer};

/// A GET as a client sends it, on listener `https`.
fn record(target: &str, version: Version, headers: &[(&str, &[u8])]) -> AccessRecord {
    let mut request = Request::get(target).version(version);
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    let request = request.body(()).unwrap();
    let client: SocketAddr = "127.0.0.1:51234".parse().unwrap();
    AccessRecord::new(client, "https".into(), &request, Instant::now())
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

/// Lines written by nginx 1.22.1 (Debian bookworm, `access_log ... combined`, TZ=UTC) for
/// the same requests, captured by tests/interop/nginx-combined-log.sh: its output, with
/// the Unix time each request was sent at.
#[test]
fn combined_matches_the_lines_nginx_wrote() {
    let cases: [(AccessRecord, u64, &[u8]); 3] = [
        (
            record(
                "/search/caf%C3%A9?q=a+b&x=%22y%22",
                Version::HTTP_11,
                &[
                    ("referer", b"https://ref.example/a?b=\"c\""),
                    (
                        "user-agent",
                        b"Mozilla/5.0 (X11; Linux) \"quoted\" back\\slash caf\xc3\xa9",
                    ),
                ],
            ),
            1_795_567_801,
            b"127.0.0.1 - - [25/Nov/2026:00:50:01 +0000] \"GET /search/caf%C3%A9?q=a+b&x=%22y%22 HTTP/1.1\" 200 3 \"https://ref.example/a?b=\\x22c\\x22\" \"Mozilla/5.0 (X11; Linux) \\x22quoted\\x22 back\\x5Cslash caf\\xC3\\xA9\"",
        ),
        (
            record("/plain", Version::HTTP_10, &[]),
            1_795_567_802,
            b"127.0.0.1 - - [25/Nov/2026:00:50:02 +0000] \"GET /plain HTTP/1.0\" 200 3 \"-\" \"-\"",
        ),
        (
            record("http://localhost:48841/abs?z=1", Version::HTTP_11, &[]),
            1_795_567_803,
            b"127.0.0.1 - - [25/Nov/2026:00:50:03 +0000] \"GET http://localhost:48841/abs?z=1 HTTP/1.1\" 200 3 \"-\" \"-\"",
        ),
    ];
    for (record, unix, nginx) in cases {
        let line = record.line(AccessLogFormat::Combined, 0, 3, Duration::ZERO, at(unix));
        let mut expected = nginx.to_vec();
        expected.push(b'\n');
        assert_eq!(
            line.as_bytes(),
            expected,
            "\n{line}{}",
            String::from_utf8_lossy(&expected)
        );
    }
}

#[test]
fn combined_logs_http2_as_nginx_does_with_the_path_and_http_2_0() {
    let mut record = record("https://localhost/x?y", Version::HTTP_2, &[]);
    record.status = StatusCode::NOT_FOUND;
    record.client = "[2001:db8::1]:443".parse().unwrap();
    assert_eq!(
        record.line(AccessLogFormat::Combined, 0, 0, Duration::ZERO, at(0)),
        "2001:db8::1 - - [01/Jan/1970:00:00:00 +0000] \"GET /x?y HTTP/2.0\" 404 0 \"-\" \"-\"\n"
    );
}

#[test]
fn json_is_one_object_with_every_field_and_null_for_what_is_unknown() {
    let mut record = record(
        "/a?b=1",
        Version::HTTP_11,
        &[
            ("referer", b"https://r.example/"),
            ("user-agent", b"curl/8 \xff"),
        ],
    );
    record.route = Some("/a".into());
    record.upstream = Some("app".into());
    record.peer = Some("127.0.0.1:9000".into());
    record.status = StatusCode::BAD_GATEWAY;
    record.fail("upstream reset".to_owned());
    let line = record.line(
        AccessLogFormat::Json,
        5,
        17,
        Duration::from_micros(12_345),
        at(1_795_567_801) + Duration::from_millis(42),
    );
    assert_eq!(
        line,
        concat!(
            r#"{"time":"2026-11-25T00:50:01.042Z","listener":"https","client":"127.0.0.1:51234","#,
            r#""method":"GET","uri":"/a?b=1","protocol":"HTTP/1.1","status":502,"bytes_in":5,"#,
            r#""bytes_out":17,"route":"/a","upstream":"app","peer":"127.0.0.1:9000","#,
            r#""duration_ms":12.345,"cut":"upstream reset","referer":"https://r.example/","#,
            r#""user_agent":"curl/8 �"}"#,
            "\n"
        )
    );
    let plain = self::record("/", Version::HTTP_11, &[]);
    let line = plain.line(AccessLogFormat::Json, 0, 0, Duration::ZERO, at(0));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    for key in ["route", "upstream", "peer", "cut", "referer", "user_agent"] {
        assert!(value[key].is_null(), "{key} in {line}");
    }
    assert_eq!(value["time"], "1970-01-01T00:00:00.000Z");
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn default_to_a_file_is_the_line_tracing_writes_to_standard_error() {
    let mut record = record("/hello?x=1", Version::HTTP_11, &[]);
    record.route = Some("/".into());
    record.fail("body idle".to_owned());
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // No access log is installed in unit tests: the line goes to `tracing`.
    let elapsed = record.started.elapsed();
    tracing::subscriber::with_default(subscriber, || record.log(0, 12, elapsed));
    let from_tracing = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let ours = record.line(AccessLogFormat::Default, 0, 12, elapsed, SystemTime::now());
    // Past the timestamp and the duration, the lines agree.
    let strip = |line: &str| {
        let (_, rest) = line.split_once(' ').unwrap();
        let (head, tail) = rest.split_once("duration_ms=").unwrap();
        let (_, tail) = tail.split_once(' ').unwrap();
        format!("{head}{tail}")
    };
    assert_eq!(strip(&ours), strip(&from_tracing), "\n{ours}{from_tracing}");
    assert!(
        ours.contains(
            "INFO gangway::access: listener=https client=127.0.0.1:51234 method=GET \
             uri=/hello?x=1 status=200 bytes_in=0 bytes_out=12 route=\"/\" upstream=\"-\" \
             peer=\"-\" duration_ms="
        ),
        "{ours}"
    );
    assert!(ours.ends_with(" cut=\"body idle\"\n"), "{ours}");
}

#[test]
fn times_are_utc_calendar_dates() {
    let cases = [
        (
            0,
            "1970-01-01T00:00:00.000000Z",
            "01/Jan/1970:00:00:00 +0000",
        ),
        // The last second of a leap day, and of a century year that is a leap year.
        (
            951_868_799,
            "2000-02-29T23:59:59.000000Z",
            "29/Feb/2000:23:59:59 +0000",
        ),
        (
            1_795_564_799,
            "2026-11-24T23:59:59.000000Z",
            "24/Nov/2026:23:59:59 +0000",
        ),
        (
            4_107_542_400,
            "2100-03-01T00:00:00.000000Z",
            "01/Mar/2100:00:00:00 +0000",
        ),
    ];
    for (unix, rfc3339, nginx) in cases {
        let time = Utc::from(at(unix));
        assert_eq!(time.rfc3339_micros(), rfc3339);
        assert_eq!(time.nginx_local(), nginx);
    }
    let time = Utc::from(at(1) + Duration::from_micros(123_456));
    assert_eq!(time.rfc3339_millis(), "1970-01-01T00:00:01.123Z");
}

#[test]
fn the_writer_appends_and_after_a_rename_and_reopen_writes_a_new_file() {
    let dir = std::env::temp_dir().join(format!("gangway-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    std::fs::write(&path, "kept\n").unwrap();
    let (lines, shared, writer) = start_writer(Some(&path)).unwrap();
    // Renaming is what logrotate does; the writer keeps its open file until told.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    lines.send(Message::Line("one\n".to_owned())).unwrap();
    lines.send(Message::Line("two\n".to_owned())).unwrap();
    shared.request_reopen(&lines);
    lines.send(Message::Line("three\n".to_owned())).unwrap();
    drop(lines);
    writer.join().unwrap();
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap(),
        "kept\none\ntwo\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
