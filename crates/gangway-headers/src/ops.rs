//! Header operations (set, add, remove), compiled once and applied per request or response.

use std::cell::RefCell;
use std::fmt;

use http::HeaderMap;
use http::header::{
    CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use crate::{Error, Template, Variable, Variables};

/// One header operation, as configured.
///
/// | operation | the header already has values | the value renders empty | the value is invalid |
/// |---|---|---|---|
/// | `Set` | all of them are replaced | the header is removed | the header is removed, [`Dropped`] reported |
/// | `Add` | the value is appended | nothing is added | nothing is added, [`Dropped`] reported |
/// | `Remove` | all of them are removed | – | – |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderOp {
    /// Replaces every value of the header with the rendered template; an empty result
    /// removes the header (nginx `proxy_set_header`).
    Set(HeaderName, Template),
    /// Appends the rendered template as one more value; an empty result adds nothing
    /// (nginx `add_header`, Apache `Header add`).
    Add(HeaderName, Template),
    /// Removes every value of the header (nginx `proxy_hide_header`, Apache `Header unset`).
    Remove(HeaderName),
}

impl HeaderOp {
    /// The header the operation is about.
    pub fn name(&self) -> &HeaderName {
        match self {
            Self::Set(name, _) | Self::Add(name, _) | Self::Remove(name) => name,
        }
    }

    /// The value template, for `Set` and `Add`.
    pub fn template(&self) -> Option<&Template> {
        match self {
            Self::Set(_, template) | Self::Add(_, template) => Some(template),
            Self::Remove(_) => None,
        }
    }
}

/// A header that was not emitted because its rendered value contained a byte that a header
/// value cannot carry (CR, LF, NUL or another control character). The engine logs it; the
/// value itself is not kept, since it may be a forged or private one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    name: HeaderName,
    index: usize,
    byte: u8,
}

impl Dropped {
    pub(crate) fn new(name: HeaderName, index: usize, byte: u8) -> Self {
        Self { name, index, byte }
    }

    /// The header that was not emitted.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The 0-based byte index of the first offending byte in the rendered value.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The first offending byte.
    pub fn byte(&self) -> u8 {
        self.byte
    }
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "header `{}` not sent: its value has control byte {:#04x} at index {}",
            self.name, self.byte, self.index
        )
    }
}

/// Whether `byte` may appear in a header value: visible ASCII, space, tab and obs-text
/// (RFC 9110 §5.5). CR, LF, NUL, the other controls and DEL may not.
fn valid_value_byte(byte: u8) -> bool {
    byte == b'\t' || (byte >= 0x20 && byte != 0x7f)
}

/// The header value for `text`, or where it is invalid. This is the one gate every
/// computed value passes through.
pub(crate) fn header_value(name: &HeaderName, text: &str) -> Result<HeaderValue, Dropped> {
    if let Some(index) = text.bytes().position(|b| !valid_value_byte(b)) {
        let byte = text.as_bytes()[index];
        return Err(Dropped::new(name.clone(), index, byte));
    }
    HeaderValue::from_str(text).map_err(|_| Dropped::new(name.clone(), 0, 0))
}

/// Headers an operation may not touch, and why.
fn managed(name: &HeaderName) -> Option<&'static str> {
    if name == CONNECTION || name == UPGRADE {
        Some(
            "it is hop-by-hop; mark the route as a WebSocket route and the proxy sets `Upgrade` and `Connection: upgrade` itself",
        )
    } else if name == TE
        || name == TRAILER
        || name == TRANSFER_ENCODING
        || name == "keep-alive"
        || name == "proxy-connection"
    {
        Some("it is hop-by-hop; the proxy manages connections and message framing")
    } else if name == CONTENT_LENGTH {
        Some("the proxy manages message framing")
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Prepared {
    /// The template has variables: rendered per request.
    Dynamic,
    /// The template is literal: its value, built once (`None` when empty).
    Fixed(Option<HeaderValue>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    op: HeaderOp,
    always: bool,
    prepared: Prepared,
}

#[derive(Debug)]
enum Outcome {
    Remove,
    Empty,
    Value(HeaderValue),
    Dropped(Dropped),
}

impl Entry {
    fn new(op: HeaderOp, always: bool) -> Result<Self, Error> {
        if let Some(reason) = managed(op.name()) {
            return Err(Error::ManagedHeader {
                header: op.name().to_string(),
                reason,
            });
        }
        let prepared = match op.template() {
            None => Prepared::Dynamic,
            Some(template) => {
                if let Some((column, c)) = template
                    .source()
                    .chars()
                    .enumerate()
                    .find(|&(_, c)| c.is_ascii() && !valid_value_byte(c as u8))
                {
                    return Err(Error::InvalidLiteral {
                        header: op.name().to_string(),
                        byte: c as u8,
                        column: column + 1,
                    });
                }
                if template.is_literal() {
                    let text = template.render(&NoVariables);
                    let value = if text.is_empty() {
                        None
                    } else {
                        let value = header_value(op.name(), &text).map_err(|dropped| {
                            Error::InvalidLiteral {
                                header: op.name().to_string(),
                                byte: dropped.byte(),
                                column: 1,
                            }
                        })?;
                        // The first clone turns the value's storage into a shared one;
                        // from then on a clone per request only counts a reference.
                        drop(value.clone());
                        Some(value)
                    };
                    Prepared::Fixed(value)
                } else {
                    Prepared::Dynamic
                }
            }
        };
        Ok(Self {
            op,
            always,
            prepared,
        })
    }

    fn render(&self, variables: &dyn Variables, scratch: &mut String) -> Outcome {
        let template = match &self.op {
            HeaderOp::Remove(_) => return Outcome::Remove,
            HeaderOp::Set(_, template) | HeaderOp::Add(_, template) => template,
        };
        match &self.prepared {
            Prepared::Fixed(Some(value)) => Outcome::Value(value.clone()),
            Prepared::Fixed(None) => Outcome::Empty,
            Prepared::Dynamic => {
                scratch.clear();
                template.render_into(variables, scratch);
                if scratch.is_empty() {
                    Outcome::Empty
                } else {
                    match header_value(self.op.name(), scratch) {
                        Ok(value) => Outcome::Value(value),
                        Err(dropped) => Outcome::Dropped(dropped),
                    }
                }
            }
        }
    }

    fn apply(&self, outcome: Outcome, headers: &mut HeaderMap, dropped: &mut Vec<Dropped>) {
        let name = self.op.name();
        match (&self.op, outcome) {
            (HeaderOp::Set(..), Outcome::Value(value)) => {
                headers.insert(name.clone(), value);
            }
            (HeaderOp::Add(..), Outcome::Value(value)) => {
                headers.append(name.clone(), value);
            }
            (HeaderOp::Add(..), Outcome::Empty) => {}
            (HeaderOp::Add(..), Outcome::Dropped(report)) => dropped.push(report),
            (_, Outcome::Dropped(report)) => {
                headers.remove(name);
                dropped.push(report);
            }
            (_, Outcome::Remove | Outcome::Empty | Outcome::Value(_)) => {
                headers.remove(name);
            }
        }
    }
}

/// The initial size of the buffer values are rendered into: enough for an address list or a
/// URL; a longer value (a certificate) grows it.
const SCRATCH_CAPACITY: usize = 256;

/// A scratch buffer that grew beyond this (a very long value) is not kept for the next
/// request.
const SCRATCH_RETAINED: usize = 16 * 1024;

thread_local! {
    /// The buffer values are rendered into before they are copied into their header value:
    /// one per thread, reused by every request, so that rendering allocates only the values.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with an empty scratch buffer: the thread's, taken out of its slot while `f`
/// runs (so a [`Variables`] implementation that applies operations itself gets a new one)
/// and put back afterwards.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut String) -> R) -> R {
    let mut scratch = SCRATCH
        .try_with(|slot| slot.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if scratch.capacity() > SCRATCH_RETAINED {
        scratch = String::new();
    }
    scratch.clear();
    scratch.reserve(SCRATCH_CAPACITY);
    let result = f(&mut scratch);
    // At thread exit the slot is gone and the buffer is simply dropped.
    let _ = SCRATCH.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            if slot.capacity() < scratch.capacity() {
                *slot = scratch;
            }
        }
    });
    result
}

/// A renderer for literal templates, which never ask.
struct NoVariables;

impl Variables for NoVariables {
    fn write(&self, _: &Variable, _: &mut String) -> bool {
        false
    }
}

/// A compiled list of header operations for one level (listener, route or upstream) or for
/// several merged with [`HeaderOps::merge`].
///
/// Operations apply in order. Literal values are built once, when the operation is pushed;
/// applying renders only the templates with variables, into one scratch buffer, and
/// allocates only the values it emits.
///
/// Response operations carry an `always` flag ([`HeaderOps::push_always`]):
/// [`HeaderOps::apply`] applies every operation (a response from the upstream),
/// [`HeaderOps::apply_always`] only the `always` ones (the proxy's own responses: errors,
/// redirects, fixed responses). Request operations ignore the flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    entries: Vec<Entry>,
}

impl HeaderOps {
    /// No operations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles `ops` in order, none of them `always`.
    pub fn from_ops(ops: impl IntoIterator<Item = HeaderOp>) -> Result<Self, Error> {
        let mut compiled = Self::new();
        for op in ops {
            compiled.push(op)?;
        }
        Ok(compiled)
    }

    /// Appends an operation. Refused: an operation on a header the proxy manages itself
    /// (`Connection`, `Upgrade`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
    /// `Transfer-Encoding`, `Content-Length`), and a template whose literal text contains
    /// a control character.
    pub fn push(&mut self, op: HeaderOp) -> Result<&mut Self, Error> {
        self.entries.push(Entry::new(op, false)?);
        Ok(self)
    }

    /// Appends a response operation that also applies to the proxy's own responses
    /// (nginx `add_header ... always`): see [`HeaderOps::apply_always`].
    pub fn push_always(&mut self, op: HeaderOp) -> Result<&mut Self, Error> {
        self.entries.push(Entry::new(op, true)?);
        Ok(self)
    }

    /// This level's operations overridden by a more specific level's: every operation of
    /// `child` is kept; an operation of `self` is kept unless `child` has an operation on
    /// the same header name. `self`'s kept operations come first, in their order, then
    /// `child`'s.
    ///
    /// So a route that sets one header keeps the listener's other headers (unlike nginx,
    /// where one `proxy_set_header` in a `location` drops every inherited one), and a route
    /// that wants an inherited header gone says `Remove` for it. Merge from the least
    /// specific level: `listener.merge(&route).merge(&upstream)`.
    pub fn merge(&self, child: &HeaderOps) -> HeaderOps {
        let overridden = |entry: &&Entry| {
            child
                .entries
                .iter()
                .any(|other| other.op.name() == entry.op.name())
        };
        let entries = self
            .entries
            .iter()
            .filter(|entry| !overridden(entry))
            .chain(&child.entries)
            .cloned()
            .collect();
        HeaderOps { entries }
    }

    /// The operations in order, each with its `always` flag.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderOp, bool)> {
        self.entries.iter().map(|entry| (&entry.op, entry.always))
    }

    /// How many operations there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the operations decide `name` whatever the request carried: there is a
    /// `Set` or a `Remove` for it. The configuration uses this to turn off the
    /// [`ForwardingPolicy`](crate::ForwardingPolicy)'s own `X-Real-IP` or `X-Forwarded-For`
    /// when the operations set them (as nginx guides do), so they are not computed twice.
    pub fn overrides(&self, name: &HeaderName) -> bool {
        self.entries.iter().any(
            |entry| matches!(&entry.op, HeaderOp::Set(n, _) | HeaderOp::Remove(n) if n == name),
        )
    }

    /// The route captures the operations' templates use, so that the configuration can
    /// check that the route produces them.
    pub fn captures(&self) -> impl Iterator<Item = &Variable> {
        self.entries
            .iter()
            .filter_map(|entry| entry.op.template())
            .flat_map(Template::captures)
    }

    /// Applies every operation to `headers`, rendering values with `variables`; returns the
    /// headers that were not emitted because their value was invalid (empty almost always,
    /// and then it does not allocate).
    ///
    /// `variables` cannot borrow `headers`; when it reads the same message (request
    /// operations reading request headers), use [`HeaderOps::render`] first.
    pub fn apply(&self, headers: &mut HeaderMap, variables: &dyn Variables) -> Vec<Dropped> {
        self.apply_where(headers, variables, false)
    }

    /// Applies only the `always` operations: for the responses the proxy makes itself
    /// (errors such as 502, redirects, fixed responses), so that `Strict-Transport-Security`
    /// is on a 502 too.
    pub fn apply_always(&self, headers: &mut HeaderMap, variables: &dyn Variables) -> Vec<Dropped> {
        self.apply_where(headers, variables, true)
    }

    fn apply_where(
        &self,
        headers: &mut HeaderMap,
        variables: &dyn Variables,
        only_always: bool,
    ) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        with_scratch(|scratch| {
            for entry in &self.entries {
                if only_always && !entry.always {
                    continue;
                }
                let outcome = entry.render(variables, scratch);
                entry.apply(outcome, headers, &mut dropped);
            }
        });
        dropped
    }

    /// Renders every operation's value now, to apply later with [`Rendered::apply`]: for
    /// request operations, whose variables read the request as the client sent it
    /// (`$http_upgrade`, `$proxy_add_x_forwarded_for`) while the headers they apply to are
    /// then changed.
    pub fn render(&self, variables: &dyn Variables) -> Rendered<'_> {
        let outcomes = with_scratch(|scratch| {
            let outcomes = self
                .entries
                .iter()
                .map(|entry| entry.render(variables, scratch));
            if self.entries.len() <= INLINE {
                let mut inline = [const { None }; INLINE];
                for (slot, outcome) in inline.iter_mut().zip(outcomes) {
                    *slot = Some(outcome);
                }
                Outcomes::Inline(inline)
            } else {
                Outcomes::Heap(outcomes.collect())
            }
        });
        Rendered {
            ops: self,
            outcomes,
        }
    }
}

/// How many rendered values a [`Rendered`] holds without allocating.
const INLINE: usize = 8;

// Inline on purpose: not allocating is the point, and a `Rendered` lives on the stack for
// the span of one request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Outcomes {
    Inline([Option<Outcome>; INLINE]),
    Heap(Vec<Outcome>),
}

/// The values of a [`HeaderOps`] rendered for one request ([`HeaderOps::render`]), ready to
/// apply.
#[derive(Debug)]
pub struct Rendered<'a> {
    ops: &'a HeaderOps,
    outcomes: Outcomes,
}

impl Rendered<'_> {
    /// Applies the operations with the values rendered earlier; returns the headers that
    /// were not emitted because their value was invalid.
    pub fn apply(self, headers: &mut HeaderMap) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        let entries = &self.ops.entries;
        match self.outcomes {
            Outcomes::Inline(inline) => {
                apply_all(entries, inline.into_iter().flatten(), headers, &mut dropped);
            }
            Outcomes::Heap(heap) => apply_all(entries, heap, headers, &mut dropped),
        }
        dropped
    }
}

fn apply_all(
    entries: &[Entry],
    outcomes: impl IntoIterator<Item = Outcome>,
    headers: &mut HeaderMap,
    dropped: &mut Vec<Dropped>,
) {
    for (entry, outcome) in entries.iter().zip(outcomes) {
        entry.apply(outcome, headers, dropped);
    }
}
