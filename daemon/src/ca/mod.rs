//! CAs: lookups, chains, views, SCEP RA certificates, and the start-up key check.

use std::sync::Arc;

use der::{Decode, Encode};
use hsm::KeyUse;
use sha2::Digest;
use x509_cert::Certificate;

use crate::error::{Clash, Missing};
use crate::issuance::x509::{self, Profile};
use crate::keys::KeyRing;
use crate::store::Store;
use crate::store::rows::CaRecord;
use crate::{Error, Result};
use proto::admin::CaView;
use proto::model::{CaKind, Eku};

pub mod escrow;

/// The CA service.
#[derive(Debug)]
pub struct Cas {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
}

impl Cas {
    pub fn new(store: Arc<Store>, keys: Arc<KeyRing>) -> Self {
        Cas { store, keys }
    }

    /// The start-up key check; returns one line per key checked.
    pub fn check_keys(&self) -> Result<Vec<String>> {
        let mut report = Vec::new();
        let admin = self.store.admin_identity()?;
        for (what, id, cert) in [
            ("admin CA", &admin.ca_key_id, &admin.ca_cert),
            ("admin TLS", &admin.tls_key_id, &admin.tls_cert),
        ] {
            self.keys
                .check(what, id, hsm::KeySpec::EcP256, Some(cert))?;
            report.push(format!("{what} key {id}: ok"));
        }
        // The entries a signed checkpoint covers are checked by its tree (`Audit::checkpoint`
        // compares the rebuilt root with it); the chain is checked from there on, so start-up
        // does not read the whole log.
        self.store
            .verify_audit_from(crate::audit::last_checkpoint_size(&self.store)?)?;
        for ca in self.store.cas()? {
            let spec = ca.spec.key;
            self.keys.check(
                &format!("CA {}", ca.spec.name),
                &ca.key_id,
                spec,
                ca.cert.as_ref(),
            )?;
            report.push(format!("CA {} key {}: ok", ca.spec.name, ca.key_id));
            if let Some(ra) = &ca.ra {
                let what = format!("RA of CA {}", ca.spec.name);
                self.keys
                    .check(&what, &ra.key_id, hsm::KeySpec::Rsa2048, Some(&ra.cert))?;
                report.push(format!("{what} key {}: ok", ra.key_id));
            }
            for set in &ca.ra_sets {
                let keys = [
                    ("RA signing", Some(&set.sign)),
                    ("RA encryption", set.encrypt.as_ref()),
                ];
                for (role, ra) in keys {
                    let Some(ra) = ra else { continue };
                    let what = format!(
                        "{role} key of CA {} (layout {}{})",
                        ca.spec.name,
                        set.layout.as_str(),
                        if set.windows_eku { ", Windows EKU" } else { "" }
                    );
                    self.keys
                        .check(&what, &ra.key_id, hsm::KeySpec::Rsa2048, Some(&ra.cert))?;
                    report.push(format!("{what} {}: ok", ra.key_id));
                }
            }
            if let Some(o) = &ca.ocsp {
                let what = format!("OCSP responder of CA {}", ca.spec.name);
                self.keys
                    .check(&what, &o.key_id, hsm::KeySpec::EcP256, Some(&o.cert))?;
                report.push(format!("{what} key {}: ok", o.key_id));
            }
        }
        Ok(report)
    }

    /// A SCEP profile by name, or NotFound.
    pub fn profile(&self, name: &str) -> Result<proto::profile::ProfileSpec> {
        self.store
            .get(crate::store::Table::Profiles, name)?
            .ok_or_else(|| Error::NotFound(Missing::Profile(name.to_owned())))
    }

    pub fn ca(&self, name: &str) -> Result<CaRecord> {
        self.store
            .ca(name)?
            .ok_or_else(|| Error::NotFound(Missing::Ca(name.to_owned())))
    }

    /// The certificates from this CA up to its root, this CA first.
    pub fn chain(&self, ca: &CaRecord) -> Result<Vec<Certificate>> {
        let mut out = Vec::new();
        let mut current = ca.clone();
        loop {
            let der = current.cert.as_ref().ok_or_else(|| {
                Error::Conflict(Clash::NoCertificateYet(current.spec.name.to_string()))
            })?;
            out.push(Certificate::from_der(der)?);
            match (&current.kind, &current.parent) {
                (CaKind::Issuing, Some(parent)) => current = self.ca(parent.as_str())?,
                (CaKind::External, _) => {
                    for c in &current.external_chain {
                        out.push(Certificate::from_der(c)?);
                    }
                    return Ok(out);
                }
                _ => return Ok(out),
            }
            if out.len() > 32 {
                return Err(Error::Store(crate::error::StoreError::HierarchyLoops));
            }
        }
    }

    pub fn view(&self, ca: &CaRecord, with_token: bool) -> Result<CaView> {
        let cert = ca
            .cert
            .as_ref()
            .map(|d| Certificate::from_der(d))
            .transpose()?;
        let key_attributes = if with_token {
            Some(
                self.keys
                    .store()
                    .attributes(&crate::keys::key_id(&ca.key_id)?)?
                    .into(),
            )
        } else {
            None
        };
        Ok(CaView {
            name: ca.spec.name.to_string(),
            kind: match ca.kind {
                CaKind::Root => "root",
                CaKind::Issuing => "issuing",
                CaKind::External => "byoca",
            }
            .into(),
            parent: ca.parent.as_ref().map(ToString::to_string),
            status: ca.status.to_string(),
            subject: ca.spec.subject.as_str().to_owned(),
            key: ca.spec.key.to_string(),
            hash: ca.spec.hash.to_string(),
            ekus: ca.spec.ekus.iter().map(ToString::to_string).collect(),
            tags: ca.spec.scope().iter().map(ToString::to_string).collect(),
            path_len: cert
                .as_ref()
                .and_then(|c| x509::basic_constraints(c).1)
                .or(ca.spec.path_len),
            serial: cert
                .as_ref()
                .map(|c| hex::encode(c.tbs_certificate().serial_number().as_bytes())),
            not_before: cert
                .as_ref()
                .map(|c| proto::rfc3339(x509::cert_window(c).0)),
            not_after: cert
                .as_ref()
                .map(|c| proto::rfc3339(x509::cert_window(c).1)),
            issuer: cert
                .as_ref()
                .map(|c| c.tbs_certificate().issuer().to_string()),
            sha256_fingerprint: ca
                .cert
                .as_ref()
                .map(|d| hex::encode(sha2::Sha256::digest(d))),
            key_id: ca.key_id.clone(),
            key_attributes,
        })
    }

    /// Make one SCEP RA certificate of a CA (RFC 8894 §2.1): an RSA-2048 key in the token
    /// with the usage its role needs, and a certificate from the CA with the matching key
    /// usage (and the Windows Certificate Request Agent EKU if `windows_eku`).
    pub fn make_ra(
        &self,
        ca: &CaRecord,
        role: RaRole,
        windows_eku: bool,
    ) -> Result<crate::store::rows::RaRecord> {
        use x509_cert::ext::pkix::KeyUsages;
        let ca_cert = Certificate::from_der(ca.cert.as_deref().unwrap_or_default())?;
        let id = crate::keys::new_key_id()?;
        let (usage, key_usage, label, cn) = match role {
            RaRole::Combined => (
                KeyUse::SignDecrypt,
                KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
                "castellan-ra",
                "SCEP RA",
            ),
            RaRole::Sign => (
                KeyUse::Sign,
                KeyUsages::DigitalSignature.into(),
                "castellan-ra-sign",
                "SCEP RA Signing",
            ),
            RaRole::Encrypt => (
                KeyUse::Decrypt,
                KeyUsages::KeyEncipherment.into(),
                "castellan-ra-encrypt",
                "SCEP RA Encryption",
            ),
        };
        let spki = self.keys.store().generate(
            hsm::KeySpec::Rsa2048,
            &id,
            &format!("{label}:{}", ca.spec.name),
            usage,
        )?;
        let mut extensions = x509::end_entity(key_usage)?;
        if windows_eku {
            extensions.push(x509::ext(
                const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
                false,
                &x509_cert::ext::pkix::ExtendedKeyUsage(vec![WINDOWS_CERTIFICATE_REQUEST_AGENT]),
            )?);
        }
        let (_, ca_end) = x509::cert_window(&ca_cert);
        let secs = (ca_end - crate::now()).clamp(3600, 2 * 365 * 86400) as u64;
        let cert = x509::issue(
            Profile {
                subject: format!("CN={} {cn}", ca.spec.name).parse()?,
                issuer: Some(ca_cert.tbs_certificate().subject().clone()),
                issuer_key_id: Some(x509::ca_key_id(&ca_cert)),
                extensions,
            },
            x509::random_serial()?,
            x509::validity(std::time::SystemTime::now(), secs)?,
            spki,
            &self.keys.ca_signer(ca)?,
        )?;
        x509::verify_issued_by(&cert, &ca_cert)?;
        Ok(crate::store::rows::RaRecord {
            key_id: id.to_string(),
            cert: cert.to_der()?,
        })
    }
}

/// What an RA certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaRole {
    /// Signs CertReps and decrypts envelopes (layout `combined`).
    Combined,
    /// Signs CertReps only (layout `split`).
    Sign,
    /// Decrypts envelopes only (layout `split`): keyEncipherment without digitalSignature,
    /// which is how NDES-convention clients find it.
    Encrypt,
}

/// Microsoft Certificate Request Agent EKU (szOID_ENROLLMENT_AGENT), on NDES's RA certificates.
const WINDOWS_CERTIFICATE_REQUEST_AGENT: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.1");

pub fn oids(ekus: &[Eku]) -> Vec<const_oid::ObjectIdentifier> {
    ekus.iter().map(Eku::oid).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{Kit, profile};
    use proto::governance::Operation;
    use proto::profile::RaLayout;
    use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

    fn key_usage(c: &Certificate) -> KeyUsage {
        x509::find_ext::<KeyUsage>(c, const_oid::db::rfc5280::ID_CE_KEY_USAGE).unwrap()
    }

    /// A `split` profile gets an encryption RA certificate (keyEncipherment only) and a
    /// signing one (digitalSignature), both issued by the profile's CA, keys behind the seam.
    #[test]
    fn a_split_profile_gets_two_ra_certificates_from_its_ca() {
        let kit = Kit::new().unwrap();
        kit.two_tier().unwrap();
        kit.run(Operation::CreateProfile {
            spec: profile("devices", RaLayout::Split, "s3cret").unwrap(),
        })
        .unwrap();
        let ca = kit.signer.cas().ca("issuing").unwrap();
        let ca_cert = Certificate::from_der(ca.cert.as_deref().unwrap()).unwrap();
        let [set] = ca.ra_sets.as_slice() else {
            panic!("one RA set: {:?}", ca.ra_sets);
        };
        assert_eq!(set.layout, RaLayout::Split);
        let sign = Certificate::from_der(&set.sign.cert).unwrap();
        let encrypt = Certificate::from_der(&set.encrypt.as_ref().unwrap().cert).unwrap();
        x509::verify_issued_by(&sign, &ca_cert).unwrap();
        x509::verify_issued_by(&encrypt, &ca_cert).unwrap();
        assert_eq!(
            key_usage(&sign).0,
            flagset::FlagSet::from(KeyUsages::DigitalSignature)
        );
        assert_eq!(
            key_usage(&encrypt).0,
            flagset::FlagSet::from(KeyUsages::KeyEncipherment)
        );
        let chain = kit.signer.cas().chain(&ca).unwrap();
        assert_eq!(chain.len(), 2, "issuing CA, then root");
    }

    /// The start-up check covers every key a CA record names: with one RA key gone from
    /// the key store it fails and names that key.
    #[test]
    fn the_key_check_names_a_missing_ra_key() {
        let kit = Kit::new().unwrap();
        kit.two_tier().unwrap();
        kit.run(Operation::CreateProfile {
            spec: profile("devices", RaLayout::Split, "s3cret").unwrap(),
        })
        .unwrap();
        let lines = kit.signer.check_keys().unwrap();
        assert!(
            lines.iter().any(|l| l.contains("RA encryption")),
            "{lines:?}"
        );
        let ca = kit.signer.cas().ca("issuing").unwrap();
        let gone = &ca.ra_sets[0].encrypt.as_ref().unwrap().key_id;
        kit.keys.remove(&crate::keys::key_id(gone).unwrap());
        let err = kit.signer.check_keys().unwrap_err().to_string();
        assert!(err.contains("RA encryption"), "{err}");
        assert!(err.contains(gone.as_str()), "{err}");
    }
}
