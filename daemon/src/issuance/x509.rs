//! Certificates, CSRs and PKCS#7 bundles (RFC 5280, RFC 2986, RFC 5652), and
//! signature and chain verification with `ring` (x509-cert does not verify).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280;
use der::asn1::OctetString;
use der::{Decode, Encode};
use hsm::{HsmSignature, HsmSigner};
use sha2::Digest;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, RequestBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::EncodeError;
use crate::{Error, Result};

pub use proto::pem::{MAX_CHAIN, MAX_INPUT, p7b_certificates, parse_certificates, to_pem};

/// A random positive serial number of 127 bits from the OS CSPRNG (RFC 5280 §4.1.2.2: ≤ 20 octets).
pub fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Encoding(EncodeError::Random(e)))?;
    b[0] &= 0x7f;
    b[0] |= 0x40; // keep 16 octets so the serial is at least 64 bits whatever the draw
    SerialNumber::new(&b).map_err(Error::from)
}

/// Subject key identifier: SHA-256 of the subjectPublicKey bits, truncated to 160 bits (RFC 7093 §2 method 1).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    sha2::Sha256::digest(spki.subject_public_key.raw_bytes())[..20].to_vec()
}

/// An extension holding `value`'s DER.
pub fn ext<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> std::result::Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// What every end-entity certificate the appliance issues starts with: basicConstraints
/// CA:FALSE and `key_usage`, both critical.
pub fn end_entity(
    key_usage: flagset::FlagSet<x509_cert::ext::pkix::KeyUsages>,
) -> std::result::Result<Vec<Extension>, der::Error> {
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
    Ok(vec![
        ext(
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        ext(rfc5280::ID_CE_KEY_USAGE, true, &KeyUsage(key_usage))?,
    ])
}

/// The key identifier a CA's certificates and CRLs name as their authority: its subject key
/// identifier, else one computed from its key.
pub fn ca_key_id(ca: &Certificate) -> Vec<u8> {
    cert_ski(ca).unwrap_or_else(|| key_identifier(ca.tbs_certificate().subject_public_key_info()))
}

/// The subject key identifier a certificate carries, if any.
pub fn cert_ski(cert: &Certificate) -> Option<Vec<u8>> {
    find_ext::<SubjectKeyIdentifier>(cert, rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
        .map(|s| s.0.as_bytes().to_vec())
}

/// Decode an extension of a certificate by OID.
pub fn find_ext<T: for<'a> Decode<'a>>(cert: &Certificate, oid: ObjectIdentifier) -> Option<T> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == oid)
        .and_then(|e| T::from_der(e.extn_value.as_bytes()).ok())
}

/// A builder profile that adds exactly the extensions Castellan decides, plus SKI and AKI.
#[derive(Debug)]
pub struct Profile {
    pub subject: Name,
    /// None for a self-signed certificate.
    pub issuer: Option<Name>,
    /// The issuer's key identifier (its certificate's SKI); None for self-signed.
    pub issuer_key_id: Option<Vec<u8>>,
    pub extensions: Vec<Extension>,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let ski = sha2::Sha256::digest(spk.subject_public_key.raw_bytes())[..20].to_vec();
        let aki = self.issuer_key_id.clone().unwrap_or_else(|| ski.clone());
        let mut v = self.extensions.clone();
        v.push(Extension {
            extn_id: rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(SubjectKeyIdentifier(OctetString::new(ski)?).to_der()?)?,
        });
        v.push(Extension {
            extn_id: rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(
                AuthorityKeyIdentifier {
                    key_identifier: Some(OctetString::new(aki)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                }
                .to_der()?,
            )?,
        });
        Ok(v)
    }
}

/// The extensions of a CA certificate (RFC 5280 §4.2.1.9, §4.2.1.3): basicConstraints
/// critical with the path length, keyUsage critical keyCertSign + cRLSign + digitalSignature,
/// and the allowed EKUs (non-critical, as Microsoft-style EKU chaining expects).
pub fn ca_extensions(path_len: Option<u8>, ekus: &[ObjectIdentifier]) -> Result<Vec<Extension>> {
    let mut v = vec![
        ext(
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
        )?,
        ext(
            rfc5280::ID_CE_KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature),
        )?,
    ];
    if !ekus.is_empty() {
        v.push(ext(
            rfc5280::ID_CE_EXT_KEY_USAGE,
            false,
            &ExtendedKeyUsage(ekus.to_vec()),
        )?);
    }
    Ok(v)
}

/// The extensions of a TLS server certificate for the admin port.
pub fn tls_server_extensions(names: &[String]) -> Result<Vec<Extension>> {
    use x509_cert::ext::pkix::name::GeneralName;
    let mut sans = Vec::new();
    for n in names {
        match n.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => sans.push(GeneralName::IpAddress(OctetString::new(
                ip.octets().to_vec(),
            )?)),
            Ok(std::net::IpAddr::V6(ip)) => sans.push(GeneralName::IpAddress(OctetString::new(
                ip.octets().to_vec(),
            )?)),
            Err(_) => sans.push(GeneralName::DnsName(
                der::asn1::Ia5String::new(n).map_err(Error::from)?,
            )),
        }
    }
    Ok(vec![
        ext(
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        ext(
            rfc5280::ID_CE_KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::DigitalSignature.into()),
        )?,
        ext(
            rfc5280::ID_CE_EXT_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![rfc5280::ID_KP_SERVER_AUTH]),
        )?,
        ext(
            rfc5280::ID_CE_SUBJECT_ALT_NAME,
            false,
            &x509_cert::ext::pkix::SubjectAltName(sans),
        )?,
    ])
}

/// A validity from `not_before` (now, less a minute of clock skew) lasting `secs`.
pub fn validity(from: SystemTime, secs: u64) -> Result<Validity> {
    let nb = from
        .checked_sub(Duration::from_secs(60))
        .unwrap_or(UNIX_EPOCH);
    let na = from + Duration::from_secs(secs);
    Ok(Validity::new(Time::try_from(nb)?, Time::try_from(na)?))
}

/// Sign a certificate with a token key.
pub fn issue(
    profile: Profile,
    serial: SerialNumber,
    validity: Validity,
    spki: SubjectPublicKeyInfoOwned,
    signer: &HsmSigner,
) -> Result<Certificate> {
    issue_linted(profile, serial, validity, spki, signer, |_| Ok(()))
}

/// Issue a certificate the way boulder does (prepare, lint, sign once): (1) build the
/// TBSCertificate with every extension and the signer's algorithm; (2) hand it to `lint`,
/// and stop if it objects, so a certificate that fails the lint never reaches the token;
/// (3) have the HSM sign those exact TBS bytes, once; (4) assemble the certificate.
pub fn issue_linted(
    profile: Profile,
    serial: SerialNumber,
    validity: Validity,
    spki: SubjectPublicKeyInfoOwned,
    signer: &HsmSigner,
    lint: impl FnOnce(&TbsCertificate) -> std::result::Result<(), String>,
) -> Result<Certificate> {
    use signature::Signer;
    use spki::SignatureBitStringEncoding;
    let enc = |what: &'static str, e: &dyn std::fmt::Display| {
        Error::Encoding(EncodeError::Build {
            what,
            reason: e.to_string(),
        })
    };
    let mut builder = CertificateBuilder::new(profile, serial, validity, spki)
        .map_err(|e| enc("the certificate", &e))?;
    let tbs_der = builder
        .finalize(signer)
        .map_err(|e| enc("the certificate", &e))?;
    let tbs = TbsCertificate::from_der(&tbs_der)?;
    lint(&tbs).map_err(|e| Error::Encoding(EncodeError::Lint(e)))?;
    let signature: HsmSignature = signer
        .try_sign(&tbs_der)
        .map_err(|e| enc("signing the certificate", &e))?;
    let bits = signature
        .to_bitstring()
        .map_err(|e| enc("signing the certificate", &e))?;
    builder
        .assemble(bits, signer)
        .map_err(|e| enc("the certificate", &e))
}

/// A PKCS#10 request for a bring-your-own CA, signed by its token key, asking for
/// basicConstraints CA:TRUE and the CA key usages.
pub fn ca_csr(subject: Name, signer: &HsmSigner) -> Result<Vec<u8>> {
    let mut b = RequestBuilder::new(subject).map_err(|e| {
        Error::Encoding(EncodeError::Build {
            what: "the CSR",
            reason: e.to_string(),
        })
    })?;
    b.add_extension(&BasicConstraints {
        ca: true,
        path_len_constraint: None,
    })
    .map_err(Error::from)?;
    b.add_extension(&KeyUsage(
        KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
    ))
    .map_err(Error::from)?;
    let csr = b.build::<_, HsmSignature>(signer).map_err(|e| {
        Error::Encoding(EncodeError::Build {
            what: "signing the CSR",
            reason: e.to_string(),
        })
    })?;
    Ok(csr.to_der()?)
}

/// Verify `sig` over `msg` by the key in `spki`, with the X.509 signature algorithm `alg`.
/// SHA-1, MD5 and RSA-PSS are refused with a message saying so.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: &[u8],
) -> Result<()> {
    use scep::verify::Refusal;
    scep::verify::verify(spki, &alg.oid, None, false, msg, sig).map_err(|r| match r {
        Refusal::Weak(_) => Error::Invalid(format!(
            "signature algorithm {} uses SHA-1 or MD5, which Castellan refuses",
            alg.oid
        )),
        Refusal::Unsupported(_) => Error::Invalid(format!(
            "unsupported signature algorithm {} for this key (RSA PKCS#1 v1.5 with SHA-2, or \
             ECDSA P-256/P-384)",
            alg.oid
        )),
        Refusal::Bad => Error::Invalid("signature does not verify".into()),
    })
}

/// Verify that `issuer` signed `cert`.
pub fn verify_issued_by(cert: &Certificate, issuer: &Certificate) -> Result<()> {
    let tbs = cert.tbs_certificate().to_der()?;
    verify_signature(
        issuer.tbs_certificate().subject_public_key_info(),
        cert.signature_algorithm(),
        &tbs,
        cert.signature().raw_bytes(),
    )
}

fn unix(t: &Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// Not-before and not-after of a certificate as Unix seconds.
pub fn cert_window(cert: &Certificate) -> (i64, i64) {
    let v = cert.tbs_certificate().validity();
    (unix(&v.not_before), unix(&v.not_after))
}

/// A degenerate SignedData carrying only certificates (RFC 8894 §3.4, the .p7b format), in
/// the order given (this CA first, up to the root): the one builder, shared with GetCACert.
pub fn p7b(certs: &[Certificate]) -> Result<Vec<u8>> {
    scep::certrep::degenerate(certs).map_err(|e| {
        Error::Encoding(EncodeError::Build {
            what: "the PKCS#7",
            reason: e.text,
        })
    })
}

fn is_self_issued(c: &Certificate) -> bool {
    c.tbs_certificate().issuer() == c.tbs_certificate().subject()
}

/// basicConstraints of a certificate: (is CA, pathLen).
pub fn basic_constraints(c: &Certificate) -> (bool, Option<u8>) {
    find_ext::<BasicConstraints>(c, rfc5280::ID_CE_BASIC_CONSTRAINTS)
        .map_or((false, None), |b| (b.ca, b.path_len_constraint))
}

fn may_sign_certs(c: &Certificate) -> bool {
    match find_ext::<KeyUsage>(c, rfc5280::ID_CE_KEY_USAGE) {
        Some(ku) => ku.0.contains(KeyUsages::KeyCertSign),
        None => true,
    }
}

/// Check an externally signed CA certificate for a bring-your-own CA and build its chain.
///
/// Steps: (1) the certificate's public key is `our_key`; (2) it is a CA (basicConstraints
/// cA, keyCertSign if keyUsage is present); (3) its validity is sane and current;
/// (4) a path is built through `pool` by subject/issuer name, every signature verified,
/// every issuer a CA in its validity, path lengths respected, ending at a self-signed
/// root whose own signature verifies. Returns the chain above the certificate, issuer first.
pub fn check_external_ca(
    cert: &Certificate,
    pool: &[Certificate],
    our_key: &SubjectPublicKeyInfoOwned,
    now: i64,
) -> Result<Vec<Certificate>> {
    if cert.tbs_certificate().subject_public_key_info() != our_key {
        return Err(Error::Invalid(
            "the certificate is for another key: its public key is not this CA's key (was the CSR from this CA signed?)".into(),
        ));
    }
    let (ca, _) = basic_constraints(cert);
    if !ca || !may_sign_certs(cert) {
        return Err(Error::Invalid(
            "the certificate is not a CA certificate (basicConstraints CA:TRUE and keyUsage keyCertSign are required)".into(),
        ));
    }
    check_window(cert, now, "the certificate")?;
    let mut chain = Vec::new();
    let mut current = cert.clone();
    // CA certificates below the issuer being checked: this CA's own certificate counts,
    // because it will sit between that issuer and the end-entity certificates it issues.
    let mut below = 1u32;
    loop {
        if is_self_issued(&current) && verify_issued_by(&current, &current).is_ok() {
            if chain.is_empty() {
                return Err(Error::Invalid(
                    "the certificate is self-signed: an external CA must sign this CA's CSR".into(),
                ));
            }
            return Ok(chain);
        }
        if chain.len() >= MAX_CHAIN {
            return Err(Error::Invalid("the chain is too long".into()));
        }
        let issuer_name = current.tbs_certificate().issuer().to_string();
        let candidates: Vec<&Certificate> = pool
            .iter()
            .filter(|c| c.tbs_certificate().subject() == current.tbs_certificate().issuer())
            .collect();
        if candidates.is_empty() {
            return Err(Error::Invalid(format!(
                "the chain does not reach a self-signed root: no certificate for issuer \"{issuer_name}\" was given"
            )));
        }
        let Some(issuer) = candidates
            .into_iter()
            .find(|c| verify_issued_by(&current, c).is_ok())
        else {
            let why = pool
                .iter()
                .find(|c| c.tbs_certificate().subject() == current.tbs_certificate().issuer())
                .map(|c| verify_issued_by(&current, c))
                .and_then(|r| r.err())
                .map_or_else(String::new, |e| format!(" ({e})"));
            return Err(Error::Invalid(format!(
                "the chain does not verify: the signature on \"{}\" by \"{issuer_name}\" is not valid{why}",
                current.tbs_certificate().subject()
            )));
        };
        let (is_ca, path_len) = basic_constraints(issuer);
        if !is_ca || !may_sign_certs(issuer) {
            return Err(Error::Invalid(format!(
                "the chain does not verify: \"{issuer_name}\" is not a CA certificate"
            )));
        }
        if let Some(max) = path_len
            && below > u32::from(max)
        {
            return Err(Error::Invalid(format!(
                "the chain does not verify: \"{issuer_name}\" allows only {max} CA certificates below it (pathLen), and this CA would be one too many"
            )));
        }
        check_window(issuer, now, &format!("\"{issuer_name}\""))?;
        below += 1;
        chain.push(issuer.clone());
        current = issuer.clone();
    }
}

fn check_window(c: &Certificate, now: i64, what: &str) -> Result<()> {
    let (nb, na) = cert_window(c);
    if na <= nb {
        return Err(Error::Invalid(format!(
            "{what} has an empty validity period"
        )));
    }
    if nb > now + 300 {
        return Err(Error::Invalid(format!("{what} is not valid yet")));
    }
    if na <= now {
        return Err(Error::Invalid(format!("{what} has expired")));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ROOT: &[u8] = include_bytes!("../../testdata/root.pem");
    const INT_PEM: &[u8] = include_bytes!("../../testdata/intermediate.pem");
    const INT_DER: &[u8] = include_bytes!("../../testdata/intermediate.der");
    const P7B: &[u8] = include_bytes!("../../testdata/chain.p7b");
    const LEAF: &[u8] = include_bytes!("../../testdata/leaf_not_ca.pem");
    const FAKE_ROOT: &[u8] = include_bytes!("../../testdata/root_same_name_other_key.pem");
    const NOW: i64 = 1_900_000_000;

    fn one(b: &[u8]) -> Certificate {
        parse_certificates(b, "t").unwrap().remove(0)
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_not_a_panic() {
        for input in [INT_DER, P7B, INT_PEM] {
            for n in 0..input.len() {
                let _ = parse_certificates(&input[..n], "t");
            }
            for i in 0..input.len() {
                let mut m = input.to_vec();
                m[i] ^= 0x41;
                if let Ok(certs) = parse_certificates(&m, "t") {
                    let spki = certs[0].tbs_certificate().subject_public_key_info().clone();
                    let _ = check_external_ca(&certs[0], &certs, &spki, NOW);
                }
            }
        }
    }

    #[test]
    fn p7b_round_trips() {
        let certs = vec![one(INT_PEM), one(ROOT)];
        let back = parse_certificates(&p7b(&certs).unwrap(), "t").unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.contains(&certs[0]) && back.contains(&certs[1]));
    }

    #[test]
    fn external_chain_builds_to_the_root() {
        let int = one(INT_PEM);
        let ours = int.tbs_certificate().subject_public_key_info().clone();
        let chain = check_external_ca(&int, &[one(ROOT)], &ours, NOW).unwrap();
        assert_eq!(chain, vec![one(ROOT)]);
    }

    #[test]
    fn external_chain_refusals_say_why() {
        let int = one(INT_PEM);
        let ours = int.tbs_certificate().subject_public_key_info().clone();
        let other = one(ROOT)
            .tbs_certificate()
            .subject_public_key_info()
            .clone();
        let e = check_external_ca(&int, &[one(ROOT)], &other, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another key"), "{e}");
        let e = check_external_ca(&int, &[], &ours, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not reach a self-signed root"), "{e}");
        let e = check_external_ca(&int, &[one(FAKE_ROOT)], &ours, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not verify"), "{e}");
        let leaf = one(LEAF);
        let leaf_key = leaf.tbs_certificate().subject_public_key_info().clone();
        let e = check_external_ca(&leaf, &[int.clone(), one(ROOT)], &leaf_key, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a CA certificate"), "{e}");
        let e = check_external_ca(&int, &[one(ROOT)], &ours, 5_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expired"), "{e}");
        let root = one(ROOT);
        let root_key = root.tbs_certificate().subject_public_key_info().clone();
        let e = check_external_ca(&root, &[], &root_key, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("self-signed"), "{e}");
    }

    #[test]
    fn a_ca_under_a_pathlen_0_issuer_is_refused() {
        let ours = one(include_bytes!("../../testdata/ca_under_pathlen0.pem"));
        let key = ours.tbs_certificate().subject_public_key_info().clone();
        let pool = [
            one(include_bytes!("../../testdata/pathlen0.pem")),
            one(ROOT),
        ];
        let e = check_external_ca(&ours, &pool, &key, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pathLen"), "{e}");
    }

    #[test]
    fn serials_are_positive_and_at_least_64_bits() {
        for _ in 0..100 {
            let s = random_serial().unwrap();
            let b = s.as_bytes();
            assert!(b.len() >= 8 && b.len() <= 20, "{b:?}");
            assert!(b[0] & 0x80 == 0 && b[0] != 0);
        }
    }

    /// Prepare -> lint -> sign once, with software keys behind the key seam: a TBS the lint
    /// refuses never reaches the key; one it accepts is signed exactly once.
    #[test]
    fn a_lint_failure_never_reaches_the_key() {
        use hsm::KeyStore;
        let keys = std::sync::Arc::new(crate::keys::soft::SoftKeys::default());
        let id = crate::keys::new_key_id().unwrap();
        let spki = keys
            .generate(hsm::KeySpec::EcP256, &id, "t", hsm::KeyUse::Sign)
            .unwrap();
        let signer =
            HsmSigner::new(keys.clone(), id, hsm::KeySpec::EcP256, hsm::HashAlg::Sha256).unwrap();
        let profile = || Profile {
            subject: "CN=Seam CA".parse().unwrap(),
            issuer: None,
            issuer_key_id: None,
            extensions: ca_extensions(None, &[]).unwrap(),
        };
        let window = validity(SystemTime::now(), 86400).unwrap();
        let mut seen = None;
        let err = issue_linted(
            profile(),
            random_serial().unwrap(),
            window,
            spki.clone(),
            &signer,
            |tbs| {
                seen = Some(tbs.subject().to_string());
                Err("refused by the test".into())
            },
        )
        .unwrap_err();
        assert_eq!(seen.as_deref(), Some("CN=Seam CA"), "the lint saw the TBS");
        assert!(err.to_string().contains("nothing was signed"), "{err}");
        assert_eq!(keys.signatures(), 0);
        let cert = issue_linted(
            profile(),
            random_serial().unwrap(),
            window,
            spki,
            &signer,
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(keys.signatures(), 1);
        verify_issued_by(&cert, &cert).unwrap();
    }
}
