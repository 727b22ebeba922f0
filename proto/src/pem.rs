//! Certificate files as users hand them over (PEM bundles, DER, .p7b), and PEM output.

use const_oid::db::rfc6268;
use der::Decode;
use x509_cert::Certificate;

use crate::{Error, Result};

/// Largest file accepted where a user gives certificates.
pub const MAX_INPUT: usize = 1 << 20;
/// Most certificates in a chain file.
pub const MAX_CHAIN: usize = 16;

/// Read one or more certificates from user bytes: PEM (one or many CERTIFICATE or
/// PKCS7 blocks), a DER certificate, or a DER/PEM PKCS#7 (.p7b). Refuses empty and garbage input.
pub fn parse_certificates(bytes: &[u8], what: &str) -> Result<Vec<Certificate>> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::Invalid(format!("{what} is empty")));
    }
    if bytes.len() > MAX_INPUT {
        return Err(Error::Invalid(format!(
            "{what} is larger than {MAX_INPUT} bytes"
        )));
    }
    let garbage = |why: String| {
        Error::Invalid(format!(
            "{what} is not a certificate (DER or PEM) or a PKCS#7 bundle: {why}"
        ))
    };
    let mut certs = Vec::new();
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(bytes).map_err(|_| garbage("PEM is not text".into()))?;
        for block in pem_blocks(text) {
            let (label, der) = block.map_err(garbage)?;
            match label.as_str() {
                "CERTIFICATE" | "X509 CERTIFICATE" => {
                    certs.push(Certificate::from_der(&der).map_err(|e| garbage(e.to_string()))?)
                }
                "PKCS7" | "CMS" => certs.extend(p7b_certificates(&der).map_err(garbage)?),
                other => return Err(garbage(format!("unexpected PEM block {other:?}"))),
            }
        }
    } else if let Ok(c) = Certificate::from_der(bytes) {
        certs.push(c);
    } else {
        certs.extend(p7b_certificates(bytes).map_err(|_| garbage("not DER either".into()))?);
    }
    if certs.is_empty() {
        return Err(garbage("no certificate found".into()));
    }
    if certs.len() > MAX_CHAIN {
        return Err(Error::Invalid(format!(
            "{what} holds more than {MAX_CHAIN} certificates"
        )));
    }
    Ok(certs)
}

/// Split PEM text into (label, DER) blocks.
fn pem_blocks(text: &str) -> Vec<Result<(String, Vec<u8>), String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            out.push(Err("unterminated PEM header".into()));
            break;
        };
        let label = after[..label_end].to_owned();
        let end_marker = format!("-----END {label}-----");
        let body_start = label_end + 5;
        let Some(end) = after[body_start..].find(&end_marker) else {
            out.push(Err(format!("no {end_marker}")));
            break;
        };
        let b64: String = after[body_start..body_start + end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        out.push(
            crate::b64::decode(&b64)
                .map(|d| (label, d))
                .map_err(|e| format!("bad base64 in PEM: {e}")),
        );
        rest = &after[body_start + end + end_marker.len()..];
    }
    out
}

/// Certificates inside a PKCS#7/CMS SignedData (a "degenerate" .p7b).
pub fn p7b_certificates(der: &[u8]) -> std::result::Result<Vec<Certificate>, String> {
    use cms::cert::CertificateChoices;
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    let ci = ContentInfo::from_der(der).map_err(|e| e.to_string())?;
    if ci.content_type != rfc6268::ID_SIGNED_DATA {
        return Err("PKCS#7 content is not SignedData".into());
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e: der::Error| e.to_string())?;
    Ok(sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            _ => None,
        })
        .collect())
}

/// PEM-encode DER under `label` (RFC 7468, through `der`'s encoder). Labels are this crate's
/// constants, which the encoder accepts; it fails on nothing else.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ROOT: &[u8] = include_bytes!("../testdata/root.pem");
    const INT_PEM: &[u8] = include_bytes!("../testdata/intermediate.pem");
    const INT_DER: &[u8] = include_bytes!("../testdata/intermediate.der");
    const P7B: &[u8] = include_bytes!("../testdata/chain.p7b");

    fn one(b: &[u8]) -> Certificate {
        parse_certificates(b, "t").unwrap().remove(0)
    }

    #[test]
    fn reads_pem_der_bundles_and_p7b() {
        assert_eq!(parse_certificates(INT_PEM, "t").unwrap().len(), 1);
        assert_eq!(parse_certificates(INT_DER, "t").unwrap()[0], one(INT_PEM));
        let bundle = [INT_PEM, ROOT].concat();
        assert_eq!(parse_certificates(&bundle, "t").unwrap().len(), 2);
        assert_eq!(parse_certificates(P7B, "t").unwrap().len(), 2);
        let p7b_pem = to_pem("PKCS7", P7B);
        assert_eq!(
            parse_certificates(p7b_pem.as_bytes(), "t").unwrap().len(),
            2
        );
    }

    #[test]
    fn empty_and_garbage_input_are_refused_clearly() {
        let e = parse_certificates(b"", "chain.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("chain.pem is empty"), "{e}");
        let e = parse_certificates(b"  \n", "x").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = parse_certificates(b"\x30\x03garbage", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a certificate"), "{e}");
        let e = parse_certificates(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unexpected PEM block"), "{e}");
    }
}
