//! Software keys behind the [`KeyStore`] trait, for unit tests only: they answer the calls
//! the token answers (and refuse what it refuses: a sign-only key does not decrypt, a
//! decrypt-only key does not sign), and count every signature so that a test can assert
//! that nothing reached the key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hsm::{HashAlg, KeyAttributes, KeyId, KeySpec, KeyStore, KeyUse, RsaPadding};
use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair, KeyPair};
use spki::SubjectPublicKeyInfoOwned;

#[derive(Debug, Clone)]
enum Key {
    Rsa(Box<rsa::RsaPrivateKey>),
    /// PKCS#8 of a P-256 or P-384 key.
    Ec(KeySpec, Vec<u8>),
}

#[derive(Debug, Default)]
pub struct SoftKeys {
    keys: Mutex<HashMap<KeyId, (Key, KeyUse)>>,
    signatures: AtomicUsize,
}

fn err(what: &str) -> hsm::Error {
    hsm::Error::Unsupported(what.to_owned())
}

impl SoftKeys {
    /// How many signatures these keys have made.
    pub fn signatures(&self) -> usize {
        self.signatures.load(Ordering::SeqCst)
    }

    /// Forget a key, as a token that lost it would.
    pub fn remove(&self, id: &KeyId) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn get(&self, id: &KeyId) -> hsm::Result<(Key, KeyUse)> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| hsm::Error::KeyNotFound { id: id.to_string() })
    }

    fn ec_alg(
        spec: KeySpec,
        hash: HashAlg,
    ) -> hsm::Result<&'static ring_sig::EcdsaSigningAlgorithm> {
        Ok(match (spec, hash) {
            (KeySpec::EcP256, HashAlg::Sha256) => &ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            (KeySpec::EcP384, HashAlg::Sha384) => &ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            // ring signs only these two pairs; the tests use no other.
            _ => return Err(err("EC key/hash pair")),
        })
    }

    fn spki(key: &Key) -> hsm::Result<SubjectPublicKeyInfoOwned> {
        match key {
            Key::Rsa(k) => SubjectPublicKeyInfoOwned::from_key(&k.to_public_key())
                .map_err(|e| hsm::Error::Encoding(e.to_string())),
            Key::Ec(spec, pkcs8) => {
                let alg = Self::ec_alg(
                    *spec,
                    if *spec == KeySpec::EcP256 {
                        HashAlg::Sha256
                    } else {
                        HashAlg::Sha384
                    },
                )?;
                let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8, &SystemRandom::new())
                    .map_err(|e| hsm::Error::Encoding(e.to_string()))?;
                hsm::ec_spki(*spec, kp.public_key().as_ref())
            }
        }
    }
}

impl KeyStore for SoftKeys {
    fn generate(
        &self,
        spec: KeySpec,
        id: &KeyId,
        _label: &str,
        usage: KeyUse,
    ) -> hsm::Result<SubjectPublicKeyInfoOwned> {
        if self.get(id).is_ok() {
            return Err(hsm::Error::KeyExists { id: id.to_string() });
        }
        let key = if spec.is_rsa() {
            let device = scep::client::Device::generate(spec.bits() as usize, "CN=soft")
                .map_err(|e| hsm::Error::Encoding(e.text))?;
            Key::Rsa(Box::new(device.key))
        } else {
            if usage != KeyUse::Sign {
                return Err(err("an EC key only signs"));
            }
            let alg = Self::ec_alg(
                spec,
                if spec == KeySpec::EcP256 {
                    HashAlg::Sha256
                } else {
                    HashAlg::Sha384
                },
            )?;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
                .map_err(|e| hsm::Error::Encoding(e.to_string()))?;
            Key::Ec(spec, pkcs8.as_ref().to_vec())
        };
        let spki = Self::spki(&key)?;
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (key, usage));
        Ok(spki)
    }

    fn public_key(&self, _spec: KeySpec, id: &KeyId) -> hsm::Result<SubjectPublicKeyInfoOwned> {
        Self::spki(&self.get(id)?.0)
    }

    fn sign(&self, spec: KeySpec, hash: HashAlg, id: &KeyId, data: &[u8]) -> hsm::Result<Vec<u8>> {
        let (key, usage) = self.get(id)?;
        if !usage.signs() {
            return Err(err("this key does not sign"));
        }
        self.signatures.fetch_add(1, Ordering::SeqCst);
        match key {
            Key::Rsa(k) => {
                use signature::{SignatureEncoding, Signer};
                let k = *k;
                Ok(match hash {
                    HashAlg::Sha256 => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k)
                        .sign(data)
                        .to_vec(),
                    HashAlg::Sha384 => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(k)
                        .sign(data)
                        .to_vec(),
                    HashAlg::Sha512 => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(k)
                        .sign(data)
                        .to_vec(),
                })
            }
            Key::Ec(_, pkcs8) => {
                let rng = SystemRandom::new();
                let kp = EcdsaKeyPair::from_pkcs8(Self::ec_alg(spec, hash)?, &pkcs8, &rng)
                    .map_err(|e| hsm::Error::Encoding(e.to_string()))?;
                kp.sign(&rng, data)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| err("ECDSA signing failed"))
            }
        }
    }

    fn rsa_decrypt_with(
        &self,
        id: &KeyId,
        padding: RsaPadding,
        ciphertext: &[u8],
    ) -> hsm::Result<Vec<u8>> {
        let (key, usage) = self.get(id)?;
        let Key::Rsa(k) = key else {
            return Err(err("only RSA keys decrypt"));
        };
        if !usage.decrypts() {
            return Err(err("this key does not decrypt"));
        }
        match padding {
            RsaPadding::Pkcs1 => k.decrypt(rsa::Pkcs1v15Encrypt, ciphertext),
            RsaPadding::OaepSha1 => k.decrypt(rsa::Oaep::<sha1::Sha1>::new(), ciphertext),
        }
        .map_err(|_| err("decryption failed"))
    }

    fn attributes(&self, id: &KeyId) -> hsm::Result<KeyAttributes> {
        self.get(id)?;
        Ok(KeyAttributes {
            token: true,
            private: true,
            sensitive: true,
            always_sensitive: true,
            extractable: false,
            never_extractable: true,
            local: true,
        })
    }

    fn check_key(&self, id: &KeyId) -> hsm::Result<KeyAttributes> {
        self.attributes(id)
    }

    fn allow_decrypt(&self, id: &KeyId) -> hsm::Result<()> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let entry = keys
            .get_mut(id)
            .ok_or_else(|| hsm::Error::KeyNotFound { id: id.to_string() })?;
        entry.1 = KeyUse::SignDecrypt;
        Ok(())
    }
}
