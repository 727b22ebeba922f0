//! End-entity certificates: read and check a PKCS#10 request against a profile,
//! then build, lint and sign the certificate (RFC 5280 §4).

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc4519, rfc5280, rfc5912};
use der::asn1::Ia5String;
use der::{Decode, Encode};
use scep::ScepError;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::AccessDescription;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage,
    KeyUsages, SubjectAltName,
};
use x509_cert::name::Name;
use x509_cert::request::CertReq;

use proto::model::San;
use proto::profile::{KeyUsageName, ProfileSpec};

/// Largest CSR accepted.
pub const MAX_CSR: usize = 16 * 1024;
/// Most SANs in one request.
pub const MAX_SANS: usize = 32;
const UPN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.3");
const ANY_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const EMAIL_ATTR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

pub(crate) use proto::directory_string;

/// What a device asked for, read from its CSR.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    pub subject: Name,
    pub sans: Vec<San>,
    pub spki: SubjectPublicKeyInfoOwned,
    pub challenge: Option<String>,
    pub requested_ekus: Vec<ObjectIdentifier>,
    pub requested_ca: bool,
}

fn bad(text: impl Into<String>) -> ScepError {
    ScepError::bad_request(text)
}

/// Read SANs from a GeneralNames; types we do not issue are an error.
pub fn sans_of(names: &[GeneralName]) -> Result<Vec<San>, ScepError> {
    let mut out = Vec::new();
    for n in names {
        out.push(match n {
            GeneralName::DnsName(v) => San::Dns(v.to_string().to_ascii_lowercase()),
            GeneralName::Rfc822Name(v) => San::Email(v.to_string()),
            GeneralName::UniformResourceIdentifier(v) => San::Uri(v.to_string()),
            GeneralName::OtherName(o) if o.type_id == UPN => {
                let s = o
                    .value
                    .decode_as::<der::asn1::Utf8StringRef<'_>>()
                    .map_err(|_| bad("a UPN SAN must be a UTF8String"))?;
                San::Upn(s.as_str().to_owned())
            }
            _ => {
                return Err(bad(
                    "the request has a SAN type that is not issued (use DNS, email, UPN or URI)",
                ));
            }
        });
    }
    if out.len() > MAX_SANS {
        return Err(bad(format!("at most {MAX_SANS} SANs")));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn general_names(sans: &[San]) -> Result<Vec<GeneralName>, der::Error> {
    sans.iter()
        .map(|s| {
            Ok(match s {
                San::Dns(v) => GeneralName::DnsName(Ia5String::new(v)?),
                San::Email(v) => GeneralName::Rfc822Name(Ia5String::new(v)?),
                San::Uri(v) => GeneralName::UniformResourceIdentifier(Ia5String::new(v)?),
                San::Upn(v) => GeneralName::OtherName(OtherName {
                    type_id: UPN,
                    value: der::Any::encode_from(&der::asn1::Utf8StringRef::new(v)?)?,
                }),
            })
        })
        .collect()
}

/// Do two names match (RFC 5280 §7.1)? The same attributes in the same order, with
/// values equal ignoring case and surrounding spaces, whatever string type
/// (PrintableString, UTF8String, …) carries them.
pub fn same_name(a: &Name, b: &Name) -> bool {
    let norm = |n: &Name| -> Vec<Vec<(ObjectIdentifier, String)>> {
        n.iter_rdn()
            .map(|rdn| {
                let mut v: Vec<_> = rdn
                    .iter()
                    .map(|atv| {
                        let text = String::from_utf8_lossy(atv.value.value());
                        let folded = text
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .to_lowercase();
                        (atv.oid, folded)
                    })
                    .collect();
                v.sort();
                v
            })
            .collect()
    };
    norm(a) == norm(b)
}

/// Refuse RSA keys below 2048 bits before anything tries to verify with them.
pub fn refuse_small_rsa(spki: &SubjectPublicKeyInfoOwned) -> Result<(), ScepError> {
    if spki.algorithm.oid == rfc5912::RSA_ENCRYPTION {
        let bits = hsm::rsa_modulus_bits(spki).map_err(|_| bad("malformed RSA key"))?;
        if bits < 2048 {
            return Err(ScepError::bad_alg(format!(
                "RSA-{bits} keys are refused: at least 2048 bits are required"
            )));
        }
    }
    Ok(())
}

/// Parse a CSR, verify its self-signature (SHA-1 only if `legacy`), and read what it asks for.
pub fn parse_csr(der: &[u8], legacy: bool) -> Result<LeafRequest, ScepError> {
    if der.is_empty() || der.len() > MAX_CSR {
        return Err(bad("the CSR is empty or too large"));
    }
    let csr =
        CertReq::from_der(der).map_err(|_| bad("the request does not hold a valid PKCS#10 CSR"))?;
    refuse_small_rsa(&csr.info.public_key)?;
    let info = csr.info.to_der().map_err(|_| bad("bad CSR"))?;
    // The one verifier (scep::verify): SHA-1 only on legacy profiles, MD5 never.
    scep::verify::verify(
        &csr.info.public_key,
        &csr.algorithm.oid,
        None,
        legacy,
        &info,
        csr.signature.raw_bytes(),
    )
    .map_err(|r| match r {
        scep::verify::Refusal::Weak(_) => {
            ScepError::bad_alg("the CSR is signed with SHA-1 or MD5, refused on this profile")
        }
        scep::verify::Refusal::Unsupported(_) => ScepError::bad_alg(format!(
            "CSR signature algorithm {} is not accepted",
            csr.algorithm.oid
        )),
        scep::verify::Refusal::Bad => {
            ScepError::bad_check("the CSR's self-signature does not verify")
        }
    })?;

    let mut req = LeafRequest {
        subject: csr.info.subject.clone(),
        sans: Vec::new(),
        spki: csr.info.public_key.clone(),
        challenge: None,
        requested_ekus: Vec::new(),
        requested_ca: false,
    };
    for attr in csr.info.attributes.iter() {
        if attr.oid == scep::oids::CHALLENGE_PASSWORD {
            let v = attr
                .values
                .get(0)
                .ok_or_else(|| bad("empty challengePassword"))?;
            req.challenge = Some(directory_string(v).ok_or_else(|| {
                bad("challengePassword is not a PrintableString, UTF8String, IA5String or BMPString")
            })?);
        } else if attr.oid == scep::oids::EXTENSION_REQUEST {
            let v = attr
                .values
                .get(0)
                .ok_or_else(|| bad("empty extensionRequest"))?;
            let exts: Vec<Extension> = v
                .decode_as()
                .map_err(|_| bad("malformed extensionRequest"))?;
            for e in exts {
                let val = e.extn_value.as_bytes();
                if e.extn_id == rfc5280::ID_CE_SUBJECT_ALT_NAME {
                    let san = SubjectAltName::from_der(val)
                        .map_err(|_| bad("malformed SAN extension"))?;
                    req.sans = sans_of(&san.0)?;
                } else if e.extn_id == rfc5280::ID_CE_BASIC_CONSTRAINTS {
                    let bc = BasicConstraints::from_der(val)
                        .map_err(|_| bad("malformed basicConstraints"))?;
                    req.requested_ca = bc.ca;
                } else if e.extn_id == rfc5280::ID_CE_EXT_KEY_USAGE {
                    let eku = ExtendedKeyUsage::from_der(val)
                        .map_err(|_| bad("malformed EKU extension"))?;
                    req.requested_ekus = eku.0;
                }
                // Other requested extensions are ignored: the profile decides them.
            }
        }
    }
    Ok(req)
}

/// The requested key, checked against the profile: RSA within its bounds (never below
/// 2048), or an allowed curve.
pub fn check_key(spki: &SubjectPublicKeyInfoOwned, spec: &ProfileSpec) -> Result<(), ScepError> {
    if spki.algorithm.oid == rfc5912::RSA_ENCRYPTION {
        let bits = hsm::rsa_modulus_bits(spki).map_err(|_| bad("malformed RSA key"))?;
        if spec.keys.rsa_max_bits == 0
            || bits < spec.keys.rsa_min_bits.max(2048)
            || bits > spec.keys.rsa_max_bits
        {
            return Err(bad(format!(
                "RSA-{bits} is not accepted by this profile (allowed: {}..={} bits)",
                spec.keys.rsa_min_bits.max(2048),
                spec.keys.rsa_max_bits
            )));
        }
        return Ok(());
    }
    if spki.algorithm.oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let name = match curve {
            Some(rfc5912::SECP_256_R_1) => "p256",
            Some(rfc5912::SECP_384_R_1) => "p384",
            _ => "",
        };
        if !name.is_empty() && spec.keys.ec_curves.iter().any(|c| c == name) {
            return Ok(());
        }
        return Err(bad("this EC curve is not accepted by this profile"));
    }
    Err(bad("the key type is not accepted (RSA or EC P-256/P-384)"))
}

fn attr_name(oid: ObjectIdentifier) -> &'static str {
    match oid {
        rfc4519::CN => "CN",
        rfc4519::O => "O",
        rfc4519::OU => "OU",
        rfc4519::C => "C",
        rfc4519::ST => "ST",
        rfc4519::L => "L",
        EMAIL_ATTR => "E",
        _ => "?",
    }
}

/// Check a request against a profile: subject attributes, SAN types, no CA, EKUs, key.
pub fn check_policy(req: &LeafRequest, spec: &ProfileSpec) -> Result<(), ScepError> {
    check_names(
        &req.subject,
        &req.sans,
        &req.requested_ekus,
        req.requested_ca,
        spec,
    )?;
    check_key(&req.spki, spec)
}

/// The policy checks that do not look at the key: subject attributes, SAN types, no CA,
/// EKUs.
pub fn check_names(
    subject: &Name,
    sans: &[San],
    requested_ekus: &[ObjectIdentifier],
    requested_ca: bool,
    spec: &ProfileSpec,
) -> Result<(), ScepError> {
    if requested_ca {
        return Err(bad(
            "the request asks for a CA certificate (basicConstraints CA:TRUE): refused",
        ));
    }
    for atv in subject.iter() {
        let n = attr_name(atv.oid);
        if !spec.subject_attrs.iter().any(|a| a == n) {
            return Err(bad(format!(
                "subject attribute {} is not allowed by this profile (allowed: {})",
                if n == "?" {
                    atv.oid.to_string()
                } else {
                    n.to_owned()
                },
                spec.subject_attrs.join(", ")
            )));
        }
    }
    if subject.is_empty() && sans.is_empty() {
        return Err(bad("the request has neither a subject nor a SAN"));
    }
    for s in sans {
        if !spec.san_types.contains(&s.kind()) {
            return Err(bad(format!(
                "SAN {s} is of a type this profile does not allow"
            )));
        }
    }
    for e in requested_ekus {
        if *e == ANY_EKU {
            return Err(bad("the request asks for the Any Purpose EKU: refused"));
        }
        if !spec.ekus.iter().any(|p| p.oid() == *e) {
            return Err(bad(format!(
                "the request asks for EKU {e}, which this profile does not issue"
            )));
        }
    }
    Ok(())
}

/// The extensions of a leaf certificate: basicConstraints CA:FALSE, keyUsage and EKUs
/// from the profile, SANs, CRL distribution point and AIA (OCSP, caIssuers) under `public_url`.
pub fn extensions(
    spec: &ProfileSpec,
    sans: &[San],
    subject_empty: bool,
    ca: &str,
    public_url: &str,
) -> Result<Vec<Extension>, der::Error> {
    let mut ku = flagset::FlagSet::<KeyUsages>::default();
    for k in &spec.key_usage {
        ku |= match k {
            KeyUsageName::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsageName::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsageName::NonRepudiation => KeyUsages::NonRepudiation,
            KeyUsageName::KeyAgreement => KeyUsages::KeyAgreement,
        };
    }
    let base = public_url.trim_end_matches('/');
    let uri = |s: String| -> Result<GeneralName, der::Error> {
        Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(&s)?))
    };
    use crate::issuance::x509::ext;
    let mut v = crate::issuance::x509::end_entity(ku)?;
    v.push(ext(
        rfc5280::ID_CE_EXT_KEY_USAGE,
        false,
        &ExtendedKeyUsage(spec.ekus.iter().map(|e| e.oid()).collect()),
    )?);
    if !sans.is_empty() {
        v.push(ext(
            rfc5280::ID_CE_SUBJECT_ALT_NAME,
            subject_empty,
            &SubjectAltName(general_names(sans)?),
        )?);
    }
    v.push(ext(
        rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS,
        false,
        &CrlDistributionPoints(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![uri(format!(
                "{base}/crl/{ca}.crl"
            ))?])),
            reasons: None,
            crl_issuer: None,
        }]),
    )?);
    v.push(ext(
        rfc5280::ID_PE_AUTHORITY_INFO_ACCESS,
        false,
        &AuthorityInfoAccessSyntax(vec![
            AccessDescription {
                access_method: rfc5280::ID_AD_OCSP,
                access_location: uri(format!("{base}/ocsp"))?,
            },
            AccessDescription {
                access_method: rfc5280::ID_AD_CA_ISSUERS,
                access_location: uri(format!("{base}/aia/{ca}.crt"))?,
            },
        ]),
    )?);
    Ok(v)
}

/// Lint a leaf's TBSCertificate before the HSM signs it (RFC 5280): CA:FALSE, key usage
/// present, EKUs inside the CA's, validity inside the CA's, SKI/AKI present, serial ≥ 64
/// bits and positive, and the issuer is the CA's subject.
pub fn lint(
    tbs: &x509_cert::certificate::TbsCertificate,
    ca_cert: &Certificate,
    ca_ekus: &[ObjectIdentifier],
) -> Result<(), String> {
    let find = |oid| {
        tbs.extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == oid)
    };
    let is_ca = find(rfc5280::ID_CE_BASIC_CONSTRAINTS)
        .and_then(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).ok()
        })
        .is_some_and(|b| b.ca);
    if is_ca {
        return Err("leaf has CA:TRUE".into());
    }
    if find(rfc5280::ID_CE_KEY_USAGE).is_none() {
        return Err("leaf has no keyUsage".into());
    }
    if find(rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER).is_none()
        || find(rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER).is_none()
    {
        return Err("leaf lacks SKI or AKI".into());
    }
    if let Some(e) = find(rfc5280::ID_CE_EXT_KEY_USAGE) {
        let eku = ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).map_err(|e| e.to_string())?;
        if eku.0.iter().any(|o| !ca_ekus.contains(o)) {
            return Err("leaf EKU outside the CA's".into());
        }
    }
    let unix = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    let (nb, na) = (
        unix(&tbs.validity().not_before),
        unix(&tbs.validity().not_after),
    );
    let (cnb, cna) = crate::issuance::x509::cert_window(ca_cert);
    if nb < cnb || na > cna || na <= nb {
        return Err("leaf validity is not inside the CA's".into());
    }
    let serial = tbs.serial_number().as_bytes();
    if serial.len() < 8 || serial[0] & 0x80 != 0 {
        return Err("serial is not a positive number of at least 64 bits".into());
    }
    if tbs.issuer() != ca_cert.tbs_certificate().subject() {
        return Err("leaf issuer is not the CA's subject".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Certificates made with software keys by the same builder profile the signer uses.
    mod lint {
        use std::time::{Duration, SystemTime};

        use const_oid::db::rfc5280;
        use x509_cert::Certificate;
        use x509_cert::builder::{Builder, CertificateBuilder};
        use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
        use x509_cert::serial_number::SerialNumber;

        use crate::issuance::x509::{self, Profile};

        type Signer = rsa::pkcs1v15::SigningKey<sha2::Sha256>;

        fn key() -> rsa::RsaPrivateKey {
            use std::sync::OnceLock;
            static K: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
            K.get_or_init(|| scep::client::Device::generate(2048, "CN=k").unwrap().key)
                .clone()
        }

        fn spki() -> spki::SubjectPublicKeyInfoOwned {
            spki::SubjectPublicKeyInfoOwned::from_key(&key().to_public_key()).unwrap()
        }

        fn ca() -> Certificate {
            let extensions = vec![
                x509::ext(
                    rfc5280::ID_CE_BASIC_CONSTRAINTS,
                    true,
                    &BasicConstraints {
                        ca: true,
                        path_len_constraint: None,
                    },
                )
                .unwrap(),
                x509::ext(
                    rfc5280::ID_CE_KEY_USAGE,
                    true,
                    &KeyUsage(KeyUsages::KeyCertSign.into()),
                )
                .unwrap(),
            ];
            let profile = Profile {
                subject: "CN=Lint CA".parse().unwrap(),
                issuer: None,
                issuer_key_id: None,
                extensions,
            };
            let validity = x509::validity(SystemTime::now(), 10 * 365 * 86400).unwrap();
            CertificateBuilder::new(
                profile,
                SerialNumber::new(&[1; 9]).unwrap(),
                validity,
                spki(),
            )
            .unwrap()
            .build::<_, rsa::pkcs1v15::Signature>(&Signer::new(key()))
            .unwrap()
        }

        struct Leaf {
            extensions: Vec<x509_cert::ext::Extension>,
            serial: Vec<u8>,
            secs: u64,
            issuer: &'static str,
        }

        fn good() -> Leaf {
            let mut extensions = x509::end_entity(KeyUsages::DigitalSignature.into()).unwrap();
            extensions.push(
                x509::ext(
                    rfc5280::ID_CE_EXT_KEY_USAGE,
                    false,
                    &ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_CLIENT_AUTH]),
                )
                .unwrap(),
            );
            Leaf {
                extensions,
                serial: vec![0x11; 9],
                secs: 86400,
                issuer: "CN=Lint CA",
            }
        }

        fn lint(l: Leaf) -> Result<(), String> {
            let ca = ca();
            let profile = Profile {
                subject: "CN=leaf".parse().unwrap(),
                issuer: Some(l.issuer.parse().unwrap()),
                issuer_key_id: Some(x509::ca_key_id(&ca)),
                extensions: l.extensions,
            };
            let start = SystemTime::now() + Duration::from_secs(5);
            let cert = CertificateBuilder::new(
                profile,
                SerialNumber::new(&l.serial).unwrap(),
                x509::validity(start, l.secs).unwrap(),
                spki(),
            )
            .unwrap()
            .build::<_, rsa::pkcs1v15::Signature>(&Signer::new(key()))
            .unwrap();
            super::super::lint(cert.tbs_certificate(), &ca, &[rfc5280::ID_KP_CLIENT_AUTH])
        }

        fn refused(l: Leaf, why: &str) {
            let e = lint(l).unwrap_err();
            assert!(e.contains(why), "{e}");
        }

        #[test]
        fn a_sound_leaf_passes() {
            lint(good()).unwrap();
        }

        #[test]
        fn each_defect_is_refused_with_its_name() {
            let mut l = good();
            l.extensions[0] = x509::ext(
                rfc5280::ID_CE_BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
            )
            .unwrap();
            refused(l, "CA:TRUE");
            let mut l = good();
            l.extensions
                .retain(|e| e.extn_id != rfc5280::ID_CE_KEY_USAGE);
            refused(l, "keyUsage");
            let mut l = good();
            l.extensions.pop();
            l.extensions.push(
                x509::ext(
                    rfc5280::ID_CE_EXT_KEY_USAGE,
                    false,
                    &ExtendedKeyUsage(vec![rfc5280::ID_KP_SERVER_AUTH]),
                )
                .unwrap(),
            );
            refused(l, "EKU outside");
            refused(
                Leaf {
                    secs: 20 * 365 * 86400,
                    ..good()
                },
                "validity",
            );
            refused(
                Leaf {
                    serial: vec![0x11; 4],
                    ..good()
                },
                "64 bits",
            );
            refused(
                Leaf {
                    issuer: "CN=Someone Else",
                    ..good()
                },
                "issuer",
            );
        }
    }

    #[test]
    fn challenge_passwords_are_read_from_every_string_type_clients_use() {
        let any = |tag, bytes: &[u8]| der::Any::new(tag, bytes.to_vec()).unwrap();
        for tag in [
            der::Tag::PrintableString,
            der::Tag::Utf8String,
            der::Tag::Ia5String,
        ] {
            assert_eq!(
                directory_string(&any(tag, b"s3cret")).as_deref(),
                Some("s3cret")
            );
        }
        let bmp: Vec<u8> = "s3cret".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(
            directory_string(&any(der::Tag::BmpString, &bmp)).as_deref(),
            Some("s3cret")
        );
        assert_eq!(directory_string(&any(der::Tag::BmpString, &bmp[1..])), None);
        assert_eq!(
            directory_string(&any(der::Tag::OctetString, b"s3cret")),
            None
        );
    }

    #[test]
    fn names_match_whatever_string_type_carries_them() {
        let utf8 = Name::from_str("CN=dev4,OU=MDM,O=scep-client,C=US").unwrap();
        // The same name with PrintableString values, as Go clients encode it: retag
        // each UTF8String (0x0C) value as PrintableString (0x13).
        let mut der = utf8.to_der().unwrap();
        for value in ["dev4", "MDM", "scep-client"] {
            let pos = der
                .windows(value.len())
                .position(|w| w == value.as_bytes())
                .unwrap();
            assert_eq!(der[pos - 2], 0x0c);
            der[pos - 2] = 0x13;
        }
        let printable = Name::from_der(&der).unwrap();
        assert_ne!(printable.to_der().unwrap(), utf8.to_der().unwrap());
        assert!(same_name(&printable, &utf8));
        assert!(same_name(
            &Name::from_str("CN=Dev4 ,O=X").unwrap(),
            &Name::from_str("CN=dev4,O=x").unwrap()
        ));
        assert!(!same_name(
            &Name::from_str("CN=dev4").unwrap(),
            &Name::from_str("CN=dev5").unwrap()
        ));
        assert!(!same_name(
            &Name::from_str("CN=a,O=b").unwrap(),
            &Name::from_str("CN=a").unwrap()
        ));
    }
}
