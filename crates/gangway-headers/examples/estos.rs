//! The estos UCServer header set, end to end: the nginx lines of the vendor's guide as
//! header operations, applied to one browser request (with a forged `X-SSL-CERT`) and to
//! the upstream's redirect and the proxy's own 502.
//!
//! ```text
//! cargo run -p gangway-headers --example estos
//! ```
//!
//! `--repeat N` applies the request side N times without printing, and `--clone-only N`
//! only clones the request N times: the difference of the two under
//! `valgrind --tool=memcheck` is the allocations of N requests (see
//! `docs/benchmarks-headers.md`).

use std::net::{IpAddr, Ipv4Addr};

use gangway_headers::{
    ClientAddr, Dropped, Error, ForwardedProto, ForwardingPolicy, HeaderOp, HeaderOps,
    LocationRewrite, Template, Variable, Variables, strip_hop_by_hop_keep_upgrade,
};
use http::header::{HOST, STRICT_TRANSPORT_SECURITY};
use http::{HeaderMap, HeaderName, HeaderValue};

/// What the engine knows about one request.
struct Request<'a> {
    headers: &'a HeaderMap,
    client: IpAddr,
    policy: &'a ForwardingPolicy,
}

impl Variables for Request<'_> {
    fn write(&self, variable: &Variable, out: &mut String) -> bool {
        match variable {
            Variable::RemoteAddr => {
                use std::fmt::Write;
                let _ = write!(out, "{}", self.client);
            }
            Variable::Host => out.push_str("ucserver.example.com"),
            Variable::Scheme => out.push_str("https"),
            Variable::ProxyAddXForwardedFor => {
                self.policy
                    .write_x_forwarded_for(self.headers, self.client, out);
            }
            Variable::Header(name) => match self.headers.get(name).map(HeaderValue::to_str) {
                Some(Ok(value)) => out.push_str(value),
                _ => return false,
            },
            _ => return false,
        }
        true
    }
}

/// The configuration, compiled once.
struct Config {
    request: HeaderOps,
    response: HeaderOps,
    policy: ForwardingPolicy,
    redirects: LocationRewrite,
}

fn config() -> Result<Config, Error> {
    let set = |name: &'static str, value: &str| -> Result<HeaderOp, Error> {
        Ok(HeaderOp::Set(
            HeaderName::from_static(name),
            Template::parse(value)?,
        ))
    };
    // proxy_set_header X-Real-IP $remote_addr; ... (the listener level)
    let listener = HeaderOps::from_ops([
        set("x-real-ip", "$remote_addr")?,
        set("x-forwarded-for", "$proxy_add_x_forwarded_for")?,
        HeaderOp::Set(HOST, Template::parse("$host")?),
        set("x-nginx-proxy", "true")?,
    ])?;
    // A route that adds one header keeps all of the listener's.
    let route = HeaderOps::from_ops([set("x-route", "procall-web")?])?;
    // add_header Strict-Transport-Security "max-age=63072000" always;
    let mut response = HeaderOps::new();
    response.push_always(HeaderOp::Set(
        STRICT_TRANSPORT_SECURITY,
        Template::parse("max-age=63072000")?,
    ))?;
    let request = listener.merge(&route);
    // The operations set X-Real-IP and X-Forwarded-For themselves: the policy need not.
    // It still removes every identity header the client sent.
    let policy = ForwardingPolicy::new()
        .x_real_ip(!request.overrides(&HeaderName::from_static("x-real-ip")))
        .x_forwarded_for(!request.overrides(&HeaderName::from_static("x-forwarded-for")));
    Ok(Config {
        request,
        response,
        policy,
        // The guide says "no Location rewriting"; shown here for the upstream's own URL.
        redirects: LocationRewrite::Pairs(vec![(
            "http://ucserver:7224/".to_owned(),
            Template::parse("$scheme://$host/")?,
        )]),
    })
}

fn browser_request() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "ucserver.example.com"),
        ("user-agent", "Mozilla/5.0"),
        ("accept", "text/html"),
        ("cookie", "JSESSIONID=4F1A2B3C"),
        ("x-forwarded-for", "203.0.113.7"),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers
}

/// The request side, in the engine's order.
fn prepare(config: &Config, headers: &mut HeaderMap, client: IpAddr) -> Vec<Dropped> {
    let rendered = config.request.render(&Request {
        headers,
        client,
        policy: &config.policy,
    });
    strip_hop_by_hop_keep_upgrade(headers, true);
    // A proxy makes the client's address once per connection.
    let mut dropped = config.policy.apply(
        headers,
        &ClientAddr::new(client),
        ForwardedProto::Https,
        Some("ucserver.example.com"),
        443,
    );
    dropped.extend(rendered.apply(headers));
    dropped
}

fn print(title: &str, headers: &HeaderMap) {
    println!("{title}");
    for (name, value) in headers {
        println!("  {name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
}

fn main() -> Result<(), Error> {
    let config = config()?;
    let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23));
    let request = browser_request();

    let mut args = std::env::args().skip(1);
    let mode = args.next();
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    match mode.as_deref() {
        Some("--repeat") => {
            for _ in 0..count {
                let mut headers = request.clone();
                // Room for the added headers, as a server's map usually has: the map's own
                // growth is not what is measured.
                headers.reserve(16);
                let dropped = prepare(&config, &mut headers, client);
                std::hint::black_box((headers, dropped));
            }
            return Ok(());
        }
        Some("--clone-only") => {
            for _ in 0..count {
                let mut headers = request.clone();
                headers.reserve(16);
                std::hint::black_box(headers);
            }
            return Ok(());
        }
        _ => {}
    }

    let mut forged = request.clone();
    forged.insert("x-ssl-cert", HeaderValue::from_static("forged"));
    print("client sends:", &forged);
    let dropped = prepare(&config, &mut forged, client);
    print("upstream receives:", &forged);
    assert!(dropped.is_empty());

    let facts = Request {
        headers: &request,
        client,
        policy: &config.policy,
    };
    let mut response = HeaderMap::new();
    response.insert(
        "location",
        HeaderValue::from_static("http://ucserver:7224/ucwa/"),
    );
    config.redirects.apply(&mut response, &facts);
    config.response.apply(&mut response, &facts);
    print("client receives (upstream's 302):", &response);

    let mut bad_gateway = HeaderMap::new();
    config.response.apply_always(&mut bad_gateway, &facts);
    print("client receives (the proxy's own 502):", &bad_gateway);
    Ok(())
}
