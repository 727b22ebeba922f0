//! [`HsmSigner`]: a token key as a `signature::Signer`, so that the RustCrypto
//! builders (`x509-cert` certificates and CSRs, `cms` SignedData) sign with it.

use std::sync::Arc;

use der::asn1::BitString;
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SignatureBitStringEncoding, SubjectPublicKeyInfoOwned,
};

use crate::{HashAlg, KeyId, KeySpec, KeyStore, Result};

/// A signature as X.509 carries it (PKCS#1 v1.5 bytes or DER ECDSA-Sig-Value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmSignature(pub Vec<u8>);

impl SignatureBitStringEncoding for HsmSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

/// The public half of a token key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub SubjectPublicKeyInfoOwned);

impl EncodePublicKey for PublicKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::encode_msg(&self.0)?)
    }
}

/// A private key in a [`KeyStore`] (the token) together with the hash it signs with.
#[derive(Debug, Clone)]
pub struct HsmSigner {
    hsm: Arc<dyn KeyStore>,
    id: KeyId,
    spec: KeySpec,
    hash: HashAlg,
    public: PublicKey,
    algorithm: AlgorithmIdentifierOwned,
}

impl HsmSigner {
    /// Look the key up and fix the signature algorithm; fails if the key is missing.
    pub fn new(hsm: Arc<dyn KeyStore>, id: KeyId, spec: KeySpec, hash: HashAlg) -> Result<Self> {
        let algorithm = crate::signature_algorithm(spec, hash)?;
        let public = PublicKey(hsm.public_key(spec, &id)?);
        Ok(HsmSigner {
            hsm,
            id,
            spec,
            hash,
            public,
            algorithm,
        })
    }

    pub fn key_id(&self) -> &KeyId {
        &self.id
    }
    pub fn spec(&self) -> KeySpec {
        self.spec
    }
    pub fn hash(&self) -> HashAlg {
        self.hash
    }
    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public.0
    }
    pub fn hsm(&self) -> &Arc<dyn KeyStore> {
        &self.hsm
    }
}

impl signature::Signer<HsmSignature> for HsmSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<HsmSignature, signature::Error> {
        self.hsm
            .sign(self.spec, self.hash, &self.id, msg)
            .map(HsmSignature)
            .map_err(|e| {
                tracing::error!(key = %self.id, error = %e, "HSM signing failed");
                signature::Error::from_source(e)
            })
    }
}

impl signature::Keypair for HsmSigner {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.public.clone()
    }
}

impl DynSignatureAlgorithmIdentifier for HsmSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.algorithm.clone())
    }
}
