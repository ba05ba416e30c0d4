//! Distinguished names printed as nginx prints `$ssl_client_s_dn` / `$ssl_client_i_dn`.
//!
//! nginx (since 1.11.6) calls OpenSSL's `X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253)`.
//! That flag set means:
//!
//! - RDNs in reverse order of their encoding, separated by `,`; the attributes of a
//!   multi-valued RDN joined by `+` (also reversed, since OpenSSL walks a flat entry list
//!   backwards);
//! - attribute names as OpenSSL short names (`CN`, `O`, `emailAddress`, ...); an
//!   attribute OpenSSL does not know is printed as its dotted OID with the value dumped
//!   as `#` and the upper-case hex of its DER encoding;
//! - values converted to UTF-8, then escaped byte by byte: `, + " \ < > ;` with a
//!   backslash, `#` or space first and space last with a backslash, control bytes and every
//!   byte above 0x7F as `\XX` (upper-case hex), so `ü` becomes `\C3\BC`;
//! - a value that is not a string type is dumped like an unknown attribute.

use std::fmt::Write as _;

use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// OpenSSL short names of the attribute types that appear in certificate names. An OID
/// missing here is printed in dotted form with a DER dump, as OpenSSL does for OIDs it does
/// not know; OpenSSL knows a few more than this table.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.14", "searchGuide"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.16", "postalAddress"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.18", "postOfficeBox"),
    ("2.5.4.19", "physicalDeliveryOfficeName"),
    ("2.5.4.20", "telephoneNumber"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.45", "x500UniqueIdentifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.51", "houseIdentifier"),
    ("2.5.4.54", "dmdName"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.72", "role"),
    ("2.5.4.97", "organizationIdentifier"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.2.840.113549.1.9.2", "unstructuredName"),
    ("1.2.840.113549.1.9.8", "unstructuredAddress"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.3", "mail"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

// ASN.1 universal tags of the string types OpenSSL converts (`tag2nbyte` in a_strex.c).
const UTF8_STRING: u32 = 12;
const NUMERIC_STRING: u32 = 18;
const PRINTABLE_STRING: u32 = 19;
const T61_STRING: u32 = 20;
const IA5_STRING: u32 = 22;
const UTC_TIME: u32 = 23;
const GENERALIZED_TIME: u32 = 24;
const VISIBLE_STRING: u32 = 26;
const UNIVERSAL_STRING: u32 = 28;
const BMP_STRING: u32 = 30;

/// Formats a name as OpenSSL's `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`.
pub(crate) fn rfc2253(name: &X509Name<'_>) -> String {
    let entries: Vec<(usize, &AttributeTypeAndValue<'_>)> = name
        .iter()
        .enumerate()
        .flat_map(|(set, rdn)| rdn.iter().map(move |attribute| (set, attribute)))
        .collect();
    let mut out = String::new();
    let mut previous_set = None;
    for (set, attribute) in entries.into_iter().rev() {
        if let Some(previous) = previous_set {
            out.push(if previous == set { '+' } else { ',' });
        }
        previous_set = Some(set);
        let oid = attribute.attr_type().to_id_string();
        match SHORT_NAMES.iter().find(|(known, _)| *known == oid) {
            Some((_, short)) => {
                out.push_str(short);
                out.push('=');
                out.push_str(&value(attribute));
            }
            None => {
                out.push_str(&oid);
                out.push('=');
                out.push_str(&der_dump(attribute));
            }
        }
    }
    out
}

/// One attribute value, converted and escaped (`do_print_ex` with `ASN1_STRFLGS_RFC2253`).
fn value(attribute: &AttributeTypeAndValue<'_>) -> String {
    let any = attribute.attr_value();
    let universal_primitive = any.header.class()
        == x509_parser::der_parser::asn1_rs::Class::Universal
        && !any.header.is_constructed();
    if !universal_primitive {
        return der_dump(attribute);
    }
    let data = any.data;
    let characters: Option<Vec<u32>> = match any.header.tag().0 {
        // OpenSSL reads UTF8String as one byte per character to avoid converting twice; its
        // bytes are escaped as they are, which gives the same result as converting.
        UTF8_STRING => return escape(data.iter().map(|&byte| vec![byte]).collect()),
        NUMERIC_STRING | PRINTABLE_STRING | T61_STRING | IA5_STRING | UTC_TIME
        | GENERALIZED_TIME | VISIBLE_STRING => Some(data.iter().map(|&b| u32::from(b)).collect()),
        BMP_STRING => (data.len() % 2 == 0).then(|| {
            data.chunks(2)
                .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
                .collect()
        }),
        UNIVERSAL_STRING => (data.len() % 4 == 0).then(|| {
            data.chunks(4)
                .map(|quad| u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                .collect()
        }),
        _ => None,
    };
    match characters {
        Some(characters) => escape(characters.into_iter().map(utf8).collect()),
        None => der_dump(attribute),
    }
}

/// A code point as UTF-8 bytes, as OpenSSL's `UTF8_putc` writes it (no surrogate check).
fn utf8(c: u32) -> Vec<u8> {
    // Truncations below are the UTF-8 bit layout: each byte takes six bits.
    let byte = |value: u32| (value & 0xff) as u8;
    match c {
        0..=0x7f => vec![byte(c)],
        0x80..=0x7ff => vec![byte(0xc0 | (c >> 6)), byte(0x80 | (c & 0x3f))],
        0x800..=0xffff => vec![
            byte(0xe0 | (c >> 12)),
            byte(0x80 | ((c >> 6) & 0x3f)),
            byte(0x80 | (c & 0x3f)),
        ],
        _ => vec![
            byte(0xf0 | ((c >> 18) & 0x07)),
            byte(0x80 | ((c >> 12) & 0x3f)),
            byte(0x80 | ((c >> 6) & 0x3f)),
            byte(0x80 | (c & 0x3f)),
        ],
    }
}

/// Escapes characters (each given as its UTF-8 bytes) as `do_esc_char` does under
/// `ESC_2253 | ESC_CTRL | ESC_MSB`.
fn escape(characters: Vec<Vec<u8>>) -> String {
    let last = characters.len().saturating_sub(1);
    let mut out = String::new();
    for (index, bytes) in characters.iter().enumerate() {
        for &byte in bytes {
            match byte {
                0x80..=0xff | 0x00..=0x1f | 0x7f => {
                    let _ = write!(out, "\\{byte:02X}");
                }
                b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                    out.push('\\');
                    out.push(char::from(byte));
                }
                b'#' if index == 0 => out.push_str("\\#"),
                b' ' if index == 0 || index == last => out.push_str("\\ "),
                _ => out.push(char::from(byte)),
            }
        }
    }
    out
}

/// `#` and the upper-case hex of the value's whole DER encoding (tag, length, content).
fn der_dump(attribute: &AttributeTypeAndValue<'_>) -> String {
    let any = attribute.attr_value();
    let mut der = Vec::with_capacity(any.data.len() + 6);
    match any.header.raw_tag() {
        Some(raw) => der.extend_from_slice(raw),
        None => {
            let class = any.header.class() as u8;
            let constructed = u8::from(any.header.is_constructed());
            let tag = any.header.tag().0;
            if tag < 31 {
                // Fits the low five bits of the identifier octet.
                der.push((class << 6) | (constructed << 5) | (tag as u8));
            } else {
                der.push((class << 6) | (constructed << 5) | 0x1f);
                let mut groups = Vec::new();
                let mut rest = tag;
                loop {
                    groups.push((rest & 0x7f) as u8);
                    rest >>= 7;
                    if rest == 0 {
                        break;
                    }
                }
                for (i, group) in groups.iter().enumerate().rev() {
                    der.push(if i == 0 { *group } else { group | 0x80 });
                }
            }
        }
    }
    let length = any.data.len();
    if length < 0x80 {
        der.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(any.data);
    let mut out = String::with_capacity(1 + der.len() * 2);
    out.push('#');
    for byte in der {
        let _ = write!(out, "{byte:02X}");
    }
    out
}
