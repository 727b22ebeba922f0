//! BER to DER for what SCEP clients send (X.690 §8 against §10). Bouncy Castle (jscep),
//! Apple's SecSCEP and Windows CryptoAPI write PKIMessages with indefinite lengths and
//! OCTET STRINGs in constructed segments; the `der` decoders read DER only. [`to_der`]
//! rewrites such an encoding: every length definite and minimal, every constructed OCTET
//! STRING one primitive OCTET STRING; everything else is copied as it is (tags, values,
//! element order, so signed attributes in a client's own order keep their bytes).
//!
//! It runs only where a strict decode failed, so a DER message is never rewritten. It caps
//! depth ([`MAX_DEPTH`]) and never grows past [`crate::message::MAX_MESSAGE`] plus slack.

use crate::error::{Result, ScepError};

/// Deepest nesting followed (a PKIMessage nests about 12 levels).
pub const MAX_DEPTH: usize = 32;

fn bad(what: &str) -> ScepError {
    ScepError::bad_request(format!("malformed BER: {what}"))
}

/// One element read: its identifier octets, whether it is constructed, and its content
/// (for an indefinite length, up to but not including the end-of-contents octets).
struct Element<'a> {
    identifier: &'a [u8],
    constructed: bool,
    content: &'a [u8],
}

/// Read one element from the front of `input` at nesting `depth`; returns it and the rest.
fn read(input: &[u8], depth: usize) -> Result<(Element<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply"));
    }
    let first = *input.first().ok_or_else(|| bad("truncated"))?;
    let mut i = 1;
    if first & 0x1f == 0x1f {
        // High tag number: base-128 octets, the last without bit 8 (at most 4 of them).
        loop {
            let b = *input.get(i).ok_or_else(|| bad("truncated tag"))?;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 5 {
                return Err(bad("tag number too large"));
            }
        }
    }
    let identifier = &input[..i];
    let constructed = first & 0x20 != 0;
    let len_octet = *input.get(i).ok_or_else(|| bad("truncated length"))?;
    i += 1;
    if len_octet == 0x80 {
        if !constructed {
            return Err(bad("indefinite length on a primitive element"));
        }
        // Children until the end-of-contents octets 00 00.
        let start = i;
        let mut rest = &input[i..];
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let content_len = input.len() - rest.len() - start;
                let content = &input[start..start + content_len];
                return Ok((
                    Element {
                        identifier,
                        constructed,
                        content,
                    },
                    &rest[2..],
                ));
            }
            let (_, after) = read(rest, depth + 1)?;
            rest = after;
        }
    }
    let len = if len_octet & 0x80 == 0 {
        usize::from(len_octet)
    } else {
        let n = usize::from(len_octet & 0x7f);
        if n > 4 {
            return Err(bad("length too large"));
        }
        let bytes = input.get(i..i + n).ok_or_else(|| bad("truncated length"))?;
        i += n;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let end = i.checked_add(len).ok_or_else(|| bad("length overflows"))?;
    let content = input.get(i..end).ok_or_else(|| bad("truncated content"))?;
    Ok((
        Element {
            identifier,
            constructed,
            content,
        },
        &input[end..],
    ))
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// One primitive element, DER length: identifier octets, length, content.
fn push_tlv(out: &mut Vec<u8>, identifier: &[u8], content: &[u8]) {
    out.extend_from_slice(identifier);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

/// The content octets of a (possibly constructed) OCTET STRING: its segments joined.
fn octets(e: &Element<'_>, depth: usize, out: &mut Vec<u8>) -> Result<()> {
    if !e.constructed {
        out.extend_from_slice(e.content);
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply"));
    }
    let mut rest = e.content;
    while !rest.is_empty() {
        let (seg, after) = read(rest, depth + 1)?;
        if seg.identifier != [0x04] && seg.identifier != [0x24] {
            return Err(bad("an OCTET STRING segment is not an OCTET STRING"));
        }
        octets(&seg, depth + 1, out)?;
        rest = after;
    }
    Ok(())
}

fn write(e: &Element<'_>, depth: usize, out: &mut Vec<u8>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply"));
    }
    if out.len() > 2 * crate::message::MAX_MESSAGE {
        return Err(bad("too large"));
    }
    if e.identifier == [0x24] {
        let mut value = Vec::new();
        octets(e, depth, &mut value)?;
        push_tlv(out, &[0x04], &value);
        return Ok(());
    }
    if !e.constructed {
        push_tlv(out, e.identifier, e.content);
        return Ok(());
    }
    out.extend_from_slice(e.identifier);
    let mut inner = Vec::new();
    let mut rest = e.content;
    while !rest.is_empty() {
        let (child, after) = read(rest, depth + 1)?;
        write(&child, depth + 1, &mut inner)?;
        rest = after;
    }
    push_len(out, inner.len());
    out.extend_from_slice(&inner);
    Ok(())
}

/// `input` (one element, nothing after it) in DER lengths with primitive OCTET STRINGs.
pub fn to_der(input: &[u8]) -> Result<Vec<u8>> {
    let (e, rest) = read(input, 0)?;
    if !rest.is_empty() {
        return Err(bad("data after the element"));
    }
    let mut out = Vec::with_capacity(input.len());
    write(&e, 0, &mut out)?;
    Ok(out)
}

/// The inverse, for tests: every constructed element with an indefinite length, and every
/// OCTET STRING longer than `chunk` cut into constructed segments of `chunk` octets, as
/// Bouncy Castle writes them.
pub fn to_indefinite(der: &[u8], chunk: usize) -> Result<Vec<u8>> {
    fn go(e: &Element<'_>, chunk: usize, depth: usize, out: &mut Vec<u8>) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(bad("nested too deeply"));
        }
        if e.identifier == [0x04] && e.content.len() > chunk {
            out.extend_from_slice(&[0x24, 0x80]);
            for seg in e.content.chunks(chunk.max(1)) {
                push_tlv(out, &[0x04], seg);
            }
            out.extend_from_slice(&[0, 0]);
            return Ok(());
        }
        if !e.constructed {
            push_tlv(out, e.identifier, e.content);
            return Ok(());
        }
        out.extend_from_slice(e.identifier);
        out.push(0x80);
        let mut rest = e.content;
        while !rest.is_empty() {
            let (child, after) = read(rest, depth + 1)?;
            go(&child, chunk, depth + 1, out)?;
            rest = after;
        }
        out.extend_from_slice(&[0, 0]);
        Ok(())
    }
    let (e, _) = read(der, 0)?;
    let mut out = Vec::new();
    go(&e, chunk, 0, &mut out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_lengths_and_segmented_octet_strings_become_der() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed: "ab" "c"), INTEGER 5 }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x02,
            0x01, 0x05, 0x00, 0x00,
        ];
        assert_eq!(
            to_der(&ber).unwrap(),
            [0x30, 0x08, 0x04, 0x03, b'a', b'b', b'c', 0x02, 0x01, 0x05]
        );
    }

    #[test]
    fn der_is_unchanged_and_the_round_trip_holds() {
        let der = [0x30, 0x08, 0x04, 0x03, b'a', b'b', b'c', 0x02, 0x01, 0x05];
        assert_eq!(to_der(&der).unwrap(), der);
        let ber = to_indefinite(&der, 1).unwrap();
        assert_ne!(ber, der);
        assert_eq!(to_der(&ber).unwrap(), der);
    }

    #[test]
    fn bad_encodings_are_refused_without_panicking() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80],
            &[0x30, 0x80, 0x02, 0x01],
            &[0x04, 0x80, 0x00, 0x00],             // indefinite primitive
            &[0x30, 0x85, 1, 1, 1, 1, 1],          // length of 5 octets
            &[0x30, 0x02, 0x02],                   // truncated
            &[0x30, 0x00, 0x00],                   // trailing data
            &[0x24, 0x03, 0x02, 0x01, 0x05],       // segment that is not an OCTET STRING
            &[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f], // tag number too large
        ] {
            assert!(to_der(bad).is_err(), "{bad:02x?}");
        }
        let mut deep = [0x30, 0x80].repeat(MAX_DEPTH + 2);
        deep.extend([0x00, 0x00].repeat(MAX_DEPTH + 2));
        assert!(to_der(&deep).is_err());
    }
}
