//! The token: one PKCS#11 context, a session pool, keys generated and used inside it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::Encode;

use crate::{
    Error, HashAlg, KeyAttributes, KeyId, KeySpec, KeyUse, PinSource, Result, RsaPadding,
    ecdsa_raw_to_der, rsa_modulus_bits,
};
use spki::SubjectPublicKeyInfoOwned;

/// Where SoftHSM2's module lives on Debian.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// How to reach the token.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// Path to the PKCS#11 module (.so).
    pub module: PathBuf,
    /// CKA_LABEL of the token (slot ids change; labels do not).
    pub token_label: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
}

/// A process's connection to one token.
pub struct Hsm {
    ctx: Pkcs11,
    label: String,
    pin: AuthPin,
    slot: RwLock<Slot>,
    idle: Mutex<Vec<Session>>,
    /// Private/public key handles by (CKA_ID, class); cleared on recovery.
    handles: RwLock<HashMap<(KeyId, bool), ObjectHandle>>,
    /// Since when (Unix seconds) the token has been unreachable: the last recovery failed.
    down_since: Mutex<Option<i64>>,
    /// Sessions lost (and recoveries that brought the token back) since start.
    losses: AtomicU64,
    recoveries: AtomicU64,
    /// Set by the first recovery: from then on a key found again has its attributes
    /// checked again (the token that came back may not be the one that left).
    recovered: AtomicBool,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm").field("token", &self.label).finish()
    }
}

/// Errors after which a fresh session and login may succeed.
pub(crate) fn recoverable(e: &cryptoki::error::Error) -> bool {
    matches!(
        e,
        cryptoki::error::Error::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SlotIdInvalid
                | RvError::UserNotLoggedIn
                | RvError::DeviceError,
            _
        )
    )
}

fn p11(op: &'static str) -> impl FnOnce(cryptoki::error::Error) -> Error {
    move |source| Error::Pkcs11 { op, source }
}

impl Hsm {
    /// Load the module, find the token by label and log in.
    pub fn open(config: &HsmConfig) -> Result<Arc<Hsm>> {
        let pin = config.pin.read()?;
        let ctx = Pkcs11::new(&config.module).map_err(|source| Error::Module {
            path: config.module.clone(),
            source,
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(source) => {
                return Err(Error::Module {
                    path: config.module.clone(),
                    source,
                });
            }
        }
        let slot = find_slot(&ctx, &config.token_label)?;
        let hsm = Hsm {
            ctx,
            label: config.token_label.clone(),
            pin: AuthPin::from(pin),
            slot: RwLock::new(slot),
            idle: Mutex::new(Vec::new()),
            handles: RwLock::new(HashMap::new()),
            down_since: Mutex::new(None),
            losses: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            recovered: AtomicBool::new(false),
        };
        // Open one session now so that a wrong PIN fails at start-up, not at the first request.
        let s = hsm.open_session()?;
        hsm.put_back(s);
        Ok(Arc::new(hsm))
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.label
    }

    fn open_session(&self) -> Result<Session> {
        let slot = *self.slot.read().unwrap_or_else(|p| p.into_inner());
        let session = self
            .ctx
            .open_rw_session(slot)
            .map_err(p11("C_OpenSession"))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                Ok(session)
            }
            Err(source) => Err(Error::Pkcs11 {
                op: "C_Login",
                source,
            }),
        }
    }

    fn take(&self) -> Result<Session> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(s) => Ok(s),
            None => {
                let s = self.open_session()?;
                self.came_back();
                Ok(s)
            }
        }
    }

    fn put_back(&self, s: Session) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    /// Drop every pooled session, find the token again (its slot may have changed) and log
    /// in. While that fails the token is *down* ([`Hsm::health`]); each later operation tries
    /// again, so service resumes by itself when the token returns.
    fn recover(&self, cause: &cryptoki::error::Error) -> Result<()> {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            tracing::warn!(token = %self.label, error = %cause, "PKCS#11 session lost; reopening and logging in again");
            self.losses.fetch_add(1, Ordering::Relaxed);
        }
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.recovered.store(true, Ordering::Relaxed);
        let reopened = find_slot(&self.ctx, &self.label).and_then(|slot| {
            *self.slot.write().unwrap_or_else(|p| p.into_inner()) = slot;
            self.open_session()
        });
        match reopened {
            Ok(s) => {
                self.put_back(s);
                if let Some(since) = down.take() {
                    tracing::warn!(token = %self.label, down_secs = now() - since, "the token is back: signing resumes");
                }
                self.recoveries.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                if down.is_none() {
                    tracing::error!(token = %self.label, error = %e, "the token is unavailable: every operation that needs it fails until it returns");
                    *down = Some(now());
                }
                Err(e)
            }
        }
    }

    /// A session opened: if the token was down, it is back.
    fn came_back(&self) {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = down.take() {
            tracing::warn!(token = %self.label, down_secs = now() - since, "the token is back: signing resumes");
            self.recoveries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the token is reachable, and how often it was lost and found again.
    pub fn health(&self) -> crate::TokenHealth {
        let down = *self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        crate::TokenHealth {
            up: down.is_none(),
            down_since: down,
            losses: self.losses.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
        }
    }

    /// Run `f` on a session of this worker's own. On a recoverable error the session is
    /// discarded, the token found again and logged in, and `f` runs once more, with the
    /// same input: only for operations that may safely run twice (a signature over the
    /// same bytes, a decryption, a lookup). See [`Hsm::once`] for the others.
    pub fn with_session<T>(
        &self,
        op: &'static str,
        f: impl FnMut(&Hsm, &Session) -> Result<T, cryptoki::error::Error>,
    ) -> Result<T> {
        self.session_op(op, true, f)
    }

    /// Run `f` once: after a recoverable error the token is reopened for the next
    /// operation, but `f` is not run again, for it may have taken effect (a key pair
    /// generated before the answer was lost).
    fn once<T>(
        &self,
        op: &'static str,
        f: impl FnMut(&Hsm, &Session) -> Result<T, cryptoki::error::Error>,
    ) -> Result<T> {
        self.session_op(op, false, f)
    }

    fn session_op<T>(
        &self,
        op: &'static str,
        retry: bool,
        mut f: impl FnMut(&Hsm, &Session) -> Result<T, cryptoki::error::Error>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            // No session yet: nothing ran, so trying again is always safe.
            let session = match self.take() {
                Ok(s) => s,
                Err(Error::Pkcs11 { source, .. }) if !retried && recoverable(&source) => {
                    retried = true;
                    self.recover(&source)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match f(self, &session) {
                Ok(v) => {
                    self.put_back(session);
                    return Ok(v);
                }
                // A broken session never goes back to the pool.
                Err(e) if recoverable(&e) => {
                    drop(session);
                    if retried {
                        return Err(Error::Pkcs11 { op, source: e });
                    }
                    retried = true;
                    if !retry {
                        // For the next operation; this one's error stands.
                        let _ = self.recover(&e);
                        return Err(Error::Pkcs11 { op, source: e });
                    }
                    self.recover(&e)?;
                }
                Err(source) => {
                    self.put_back(session);
                    return Err(Error::Pkcs11 { op, source });
                }
            }
        }
    }

    /// Run `f` with the handle of key `id`. A handle can go stale (a token logs
    /// out and back in, a module restarts): then the cache is dropped, the key
    /// is looked up again and `f` runs once more.
    fn with_key<T>(
        &self,
        id: &KeyId,
        private: bool,
        op: &'static str,
        mut f: impl FnMut(&Session, ObjectHandle) -> Result<T, cryptoki::error::Error>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            let handle = self.find_key(id, private)?;
            match self.with_session(op, |_, s| f(s, handle)) {
                Err(Error::Pkcs11 {
                    source:
                        cryptoki::error::Error::Pkcs11(
                            RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid,
                            _,
                        ),
                    ..
                }) if !retried => {
                    retried = true;
                    self.handles
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                }
                other => return other,
            }
        }
    }

    /// Log the application out of the token (every session loses its login, as after
    /// a token reset). The next operation logs in again: tests use this to exercise recovery.
    pub fn logout(&self) -> Result<()> {
        let s = self.take()?;
        let r = s.logout().map_err(p11("C_Logout"));
        self.put_back(s);
        r
    }

    /// Generate a key pair inside the token. Refuses if a key with this CKA_ID exists.
    pub fn generate(
        &self,
        spec: KeySpec,
        id: &KeyId,
        label: &str,
        usage: KeyUse,
    ) -> Result<SubjectPublicKeyInfoOwned> {
        if usage.decrypts() && !spec.is_rsa() {
            return Err(Error::Unsupported(format!("{spec} cannot decrypt")));
        }
        if self.find_key(id, true).is_ok() {
            return Err(Error::KeyExists { id: id.to_string() });
        }
        let decrypt = usage.decrypts();
        let common_pub = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(id.as_bytes().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Verify(usage.signs()),
            Attribute::Encrypt(decrypt),
            Attribute::Wrap(false),
            Attribute::Derive(false),
        ];
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Id(id.as_bytes().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Sign(usage.signs()),
            Attribute::Decrypt(decrypt),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::SignRecover(false),
        ];
        let (mechanism, public) = if spec.is_rsa() {
            let mut t = common_pub;
            t.push(Attribute::ModulusBits((spec.bits() as u64).into()));
            t.push(Attribute::PublicExponent(vec![1, 0, 1]));
            (Mechanism::RsaPkcsKeyPairGen, t)
        } else {
            let curve = spec
                .curve_oid()
                .ok_or_else(|| Error::Unsupported(spec.to_string()))?;
            let params = curve.to_der().map_err(|e| Error::Encoding(e.to_string()))?;
            let mut t = common_pub;
            t.push(Attribute::EcParams(params));
            (Mechanism::EccKeyPairGen, t)
        };
        let (_pub, _priv) = self.once("C_GenerateKeyPair", |_, s| {
            s.generate_key_pair(&mechanism, &public, &private)
        })?;
        tracing::info!(key = %id, %spec, label, "generated key pair in the token");
        self.public_key(spec, id)
    }

    /// Find a key object by CKA_ID: the private key if `private`, else the public key.
    fn find_key(&self, id: &KeyId, private: bool) -> Result<ObjectHandle> {
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(id.clone(), private))
        {
            return Ok(*h);
        }
        let class = if private {
            ObjectClass::PRIVATE_KEY
        } else {
            ObjectClass::PUBLIC_KEY
        };
        let template = [
            Attribute::Class(class),
            Attribute::Id(id.as_bytes().to_vec()),
        ];
        let found = self.with_session("C_FindObjects", |_, s| {
            let found = s.find_objects(&template)?;
            // Private objects are invisible to a session that lost its login: report
            // that, so the pool logs in again, instead of "no such key".
            if found.is_empty() && private && !logged_in(s)? {
                return Err(cryptoki::error::Error::Pkcs11(
                    RvError::UserNotLoggedIn,
                    cryptoki::context::Function::FindObjects,
                ));
            }
            Ok(found)
        })?;
        match found.as_slice() {
            [h] => {
                if private && self.recovered.load(Ordering::Relaxed) {
                    let attrs = self.with_session("C_GetAttributeValue", |_, s| {
                        s.get_attributes(*h, &KEY_ATTRIBUTES)
                    })?;
                    sound(id, key_attributes(attrs))?;
                }
                self.handles
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((id.clone(), private), *h);
                Ok(*h)
            }
            [] => Err(Error::KeyNotFound { id: id.to_string() }),
            _ => Err(Error::Encoding(format!(
                "{} objects share CKA_ID {id}",
                found.len()
            ))),
        }
    }

    /// Does the token hold a private key with this CKA_ID?
    pub fn has_key(&self, id: &KeyId) -> Result<bool> {
        match self.find_key(id, true) {
            Ok(_) => Ok(true),
            Err(Error::KeyNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The public key of a key pair, as SubjectPublicKeyInfo.
    pub fn public_key(&self, spec: KeySpec, id: &KeyId) -> Result<SubjectPublicKeyInfoOwned> {
        let wanted: Vec<AttributeType> = if spec.is_rsa() {
            vec![
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ]
        } else {
            vec![AttributeType::KeyType, AttributeType::EcPoint]
        };
        let attrs = self.with_key(id, false, "C_GetAttributeValue", |s, h| {
            s.get_attributes(h, &wanted)
        })?;
        let (mut modulus, mut exponent, mut point, mut key_type) = (None, None, None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(m) => modulus = Some(m),
                Attribute::PublicExponent(e) => exponent = Some(e),
                Attribute::EcPoint(p) => point = Some(p),
                Attribute::KeyType(k) => key_type = Some(k),
                _ => {}
            }
        }
        let expect = if spec.is_rsa() {
            KeyType::RSA
        } else {
            KeyType::EC
        };
        if key_type != Some(expect) {
            return Err(Error::Encoding(format!("key {id} is not a {spec} key")));
        }
        let spki = match (modulus, exponent, point) {
            (Some(m), Some(e), _) => crate::key::rsa_spki(&m, &e)?,
            (_, _, Some(p)) => crate::key::ec_spki(spec, &p)?,
            _ => return Err(Error::Encoding(format!("key {id} lacks public attributes"))),
        };
        if spec.is_rsa() {
            // Check the size too: a CA record must not silently point at a different key.
            let bits = rsa_modulus_bits(&spki)?;
            if bits != spec.bits() {
                return Err(Error::Encoding(format!(
                    "key {id} is RSA-{bits}, expected {spec}"
                )));
            }
        }
        Ok(spki)
    }

    /// Read the security attributes of a private key.
    pub fn attributes(&self, id: &KeyId) -> Result<KeyAttributes> {
        let attrs = self.with_key(id, true, "C_GetAttributeValue", |s, h| {
            s.get_attributes(h, &KEY_ATTRIBUTES)
        })?;
        Ok(key_attributes(attrs))
    }

    /// Read the attributes and refuse a key that could have been outside the token.
    pub fn check_key(&self, id: &KeyId) -> Result<KeyAttributes> {
        sound(id, self.attributes(id)?)
    }

    /// Sign `data` with the private key `id`, returning the signature as X.509/CMS
    /// carry it: RSA PKCS#1 v1.5 bytes, or a DER ECDSA-Sig-Value.
    pub fn sign(&self, spec: KeySpec, hash: HashAlg, id: &KeyId, data: &[u8]) -> Result<Vec<u8>> {
        /// Inputs larger than this are signed with C_SignUpdate in parts of this size.
        const SIGN_PART: usize = 1 << 20;
        if !spec.allows(hash) {
            return Err(Error::Unsupported(format!("{spec} with {hash}")));
        }
        if spec.is_rsa() {
            let mech = match hash {
                HashAlg::Sha256 => Mechanism::Sha256RsaPkcs,
                HashAlg::Sha384 => Mechanism::Sha384RsaPkcs,
                HashAlg::Sha512 => Mechanism::Sha512RsaPkcs,
            };
            self.with_key(id, true, "C_Sign", |s, h| {
                if data.len() <= SIGN_PART {
                    s.sign(&mech, h, data)
                } else {
                    // Large input (a CRL of a million entries is ~50 MB): in parts, so the
                    // module hashes it as it comes instead of copying it whole.
                    s.sign_init(&mech, h)?;
                    for part in data.chunks(SIGN_PART) {
                        s.sign_update(part)?;
                    }
                    s.sign_final()
                }
            })
        } else {
            // Hash here and use plain CKM_ECDSA: every module has it, not all have ECDSA_SHA*.
            let digest = hash.digest(data);
            let raw = self.with_key(id, true, "C_Sign", |s, h| {
                s.sign(&Mechanism::Ecdsa, h, &digest)
            })?;
            ecdsa_raw_to_der(&raw)
        }
    }

    /// Decrypt with an RSA private key using PKCS#1 v1.5 (CKM_RSA_PKCS), e.g. a
    /// SCEP content-encryption key. Callers must not reveal why it failed.
    pub fn rsa_decrypt(&self, id: &KeyId, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.rsa_decrypt_with(id, RsaPadding::Pkcs1, ciphertext)
    }

    /// [`Hsm::rsa_decrypt`] with the padding the key transport named (CKM_RSA_PKCS or
    /// CKM_RSA_PKCS_OAEP with an empty label).
    pub fn rsa_decrypt_with(
        &self,
        id: &KeyId,
        padding: RsaPadding,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        use cryptoki::mechanism::MechanismType;
        use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
        let oaep = |hash, mgf| {
            Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty()))
        };
        let mechanism = match padding {
            RsaPadding::Pkcs1 => Mechanism::RsaPkcs,
            RsaPadding::OaepSha1 => oaep(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        };
        self.with_key(id, true, "C_Decrypt", |s, h| {
            s.decrypt(&mechanism, h, ciphertext)
        })
    }

    /// Let an existing RSA private key decrypt (CKA_DECRYPT true): a SCEP profile without
    /// an RA, where the CA key opens request envelopes (RFC 8894 §2.2). Refused by a token
    /// that keeps the attribute fixed.
    pub fn allow_decrypt(&self, id: &KeyId) -> Result<()> {
        let h = self.find_key(id, true)?;
        self.with_session("C_SetAttributeValue", |_, s| {
            s.update_attributes(h, &[Attribute::Decrypt(true)])
        })
    }

    /// Fill `buf` from the token's random number generator.
    pub fn random(&self, buf: &mut [u8]) -> Result<()> {
        self.with_session("C_GenerateRandom", |_, s| s.generate_random_slice(buf))
    }

    /// Labels and CKA_IDs of every private key in the token (for `castellan-signer check-config`).
    pub fn list_private_keys(&self) -> Result<Vec<(KeyId, String)>> {
        self.with_session("C_FindObjects", |_, s| {
            let handles = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
            let mut out = Vec::new();
            for h in handles {
                let attrs = s.get_attributes(h, &[AttributeType::Id, AttributeType::Label])?;
                let (mut id, mut label) = (None, String::new());
                for a in attrs {
                    match a {
                        Attribute::Id(v) => id = KeyId::new(v).ok(),
                        Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                        _ => {}
                    }
                }
                if let Some(id) = id {
                    out.push((id, label));
                }
            }
            Ok(out)
        })
    }
}

fn logged_in(s: &Session) -> Result<bool, cryptoki::error::Error> {
    use cryptoki::session::SessionState;
    Ok(matches!(
        s.get_session_info()?.session_state(),
        SessionState::RwUser | SessionState::RoUser | SessionState::RwSecurityOfficer
    ))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The private-key attributes the start-up check reads.
const KEY_ATTRIBUTES: [AttributeType; 7] = [
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Sensitive,
    AttributeType::AlwaysSensitive,
    AttributeType::Extractable,
    AttributeType::NeverExtractable,
    AttributeType::Local,
];

fn key_attributes(attrs: Vec<Attribute>) -> KeyAttributes {
    let mut a = KeyAttributes {
        token: false,
        private: false,
        sensitive: false,
        always_sensitive: false,
        extractable: true,
        never_extractable: false,
        local: false,
    };
    for attr in attrs {
        match attr {
            Attribute::Token(v) => a.token = v,
            Attribute::Private(v) => a.private = v,
            Attribute::Sensitive(v) => a.sensitive = v,
            Attribute::AlwaysSensitive(v) => a.always_sensitive = v,
            Attribute::Extractable(v) => a.extractable = v,
            Attribute::NeverExtractable(v) => a.never_extractable = v,
            Attribute::Local(v) => a.local = v,
            _ => {}
        }
    }
    a
}

/// Refuse a key that could have been outside the token.
fn sound(id: &KeyId, a: KeyAttributes) -> Result<KeyAttributes> {
    let problems = a.problems();
    if problems.is_empty() {
        Ok(a)
    } else {
        Err(Error::KeyAttributes {
            id: id.to_string(),
            problems: problems.join(", "),
        })
    }
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(p11("C_GetSlotList"))?;
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(p11("C_GetTokenInfo"))?;
        if info.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(Error::TokenNotFound {
        label: label.to_owned(),
    })
}

impl crate::KeyStore for Hsm {
    fn generate(
        &self,
        spec: KeySpec,
        id: &KeyId,
        label: &str,
        usage: KeyUse,
    ) -> Result<SubjectPublicKeyInfoOwned> {
        Hsm::generate(self, spec, id, label, usage)
    }
    fn public_key(&self, spec: KeySpec, id: &KeyId) -> Result<SubjectPublicKeyInfoOwned> {
        Hsm::public_key(self, spec, id)
    }
    fn sign(&self, spec: KeySpec, hash: HashAlg, id: &KeyId, data: &[u8]) -> Result<Vec<u8>> {
        Hsm::sign(self, spec, hash, id, data)
    }
    fn rsa_decrypt_with(
        &self,
        id: &KeyId,
        padding: RsaPadding,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        Hsm::rsa_decrypt_with(self, id, padding, ciphertext)
    }
    fn attributes(&self, id: &KeyId) -> Result<KeyAttributes> {
        Hsm::attributes(self, id)
    }
    fn check_key(&self, id: &KeyId) -> Result<KeyAttributes> {
        Hsm::check_key(self, id)
    }
    fn allow_decrypt(&self, id: &KeyId) -> Result<()> {
        Hsm::allow_decrypt(self, id)
    }
    fn health(&self) -> crate::TokenHealth {
        Hsm::health(self)
    }
}
