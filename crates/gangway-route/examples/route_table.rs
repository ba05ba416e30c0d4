//! Builds the IGEL UMS route table and resolves a few request targets, printing the route
//! each one reaches or why it is refused.
//!
//! Run: `cargo run -p gangway-route --example route_table [TARGET...]`

use gangway_route::{MatchMode, NormalizeOptions, RouteTableBuilder};

fn main() -> Result<(), gangway_route::Error> {
    let mut routes = RouteTableBuilder::new(MatchMode::Nginx);
    routes.add_expr(
        r"~ ^/device-connector/device/(ws-connect|portforwarding)$",
        "device WebSocket",
    )?;
    routes.add_expr(
        "^~ /device-connector/device/.well-known/est/",
        "EST enrollment",
    )?;
    routes.add_expr("/device-connector/", "device connector")?;
    routes.add_expr("/ums-appproxy/", "app proxy")?;
    routes.add_expr("/wums-app/", "web app")?;
    routes.add_expr("/webapp/", "web app")?;
    let table = routes.build()?;

    let given: Vec<String> = std::env::args().skip(1).collect();
    let targets: Vec<&str> = if given.is_empty() {
        vec![
            "/device-connector/device/ws-connect",
            "/device-connector/device/.well-known/est/simpleenroll",
            "/wums-app/index.html?lang=en",
            "/device-connector/device/%2e%2e/device/ws-connect",
            "/device-connector/device/ws-connect%2F",
            "/favicon.ico",
        ]
    } else {
        given.iter().map(String::as_str).collect()
    };
    for target in targets {
        match table.resolve(
            Some("ums.example.com"),
            Some("GET"),
            target,
            NormalizeOptions::default(),
        ) {
            Ok(Some(m)) => println!("{target} -> {} (route `{}`)", m.value(), m.expr()),
            Ok(None) => println!("{target} -> 404, no route"),
            Err(e) => println!("{target} -> {}: {e}", e.status()),
        }
    }
    Ok(())
}
