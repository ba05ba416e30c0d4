//! The invariants a fuzz target for header templates checks, kept here so that tests run
//! exactly the same checks on stable Rust. Not part of the API.
//!
//! Every function panics when an invariant does not hold; that is the point.

use http::{HeaderMap, HeaderName};

use crate::template::Part;
use crate::{HeaderOp, HeaderOps, Template, Variable, Variables};

/// The canonical text of a parsed template: literals with `$` doubled, every variable
/// braced.
fn canonical(template: &Template) -> String {
    let mut out = String::new();
    for part in template.parts() {
        match part {
            Part::Literal(text) => out.push_str(&text.replace('$', "$$")),
            Part::Variable(variable) => out.push_str(&format!("${{{variable}}}")),
        }
    }
    out
}

/// Answers every variable with the same hostile text (the fuzz input itself, control
/// bytes and all).
struct Hostile<'a>(&'a str);

impl Variables for Hostile<'_> {
    fn write(&self, _: &Variable, out: &mut String) -> bool {
        out.push_str(self.0);
        true
    }
}

/// `header_template` target: parsing never panics; a parsed template's canonical text
/// parses back to the same template; and whatever the variables contain, applying it as a
/// header operation never emits a value with CR, LF or NUL.
pub fn header_template(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let Ok(template) = Template::parse(&input) else {
        return;
    };
    let shown = canonical(&template);
    let again = Template::parse(&shown)
        .unwrap_or_else(|e| panic!("{input:?} shown as {shown:?}, which fails: {e}"));
    assert_eq!(
        again.parts(),
        template.parts(),
        "{input:?} shown as {shown:?}"
    );

    let name = HeaderName::from_static("x-fuzz");
    let Ok(ops) = HeaderOps::from_ops([
        HeaderOp::Set(name.clone(), template.clone()),
        HeaderOp::Add(name.clone(), template),
    ]) else {
        return;
    };
    let mut headers = HeaderMap::new();
    let dropped = ops.apply(&mut headers, &Hostile(&input));
    for value in headers.get_all(&name) {
        assert!(
            !value
                .as_bytes()
                .iter()
                .any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "{input:?} emitted {value:?}"
        );
    }
    assert!(
        dropped.iter().all(|d| d.name() == name),
        "{input:?}: {dropped:?}"
    );
}
