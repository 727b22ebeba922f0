//! The audit log's tamper evidence, without I/O: an RFC 6962 Merkle tree over the entries
//! (RFC 9162 §2.1 hashing) and checkpoints in the C2SP tlog-checkpoint format, carried in
//! C2SP signed notes with ECDSA P-256 signatures (signature type 0x02).
//!
//! - leaf hash `SHA-256(0x00 || entry bytes)`, node hash `SHA-256(0x01 || left || right)`,
//!   the empty tree's root `SHA-256("")`;
//! - checkpoint text: `ORIGIN "\n" SIZE "\n" BASE64(ROOT) "\n"`;
//! - signed note: the text, a blank line, then one line per signature:
//!   `"— " NAME " " BASE64(KEY-ID(4, big-endian) || ASN.1 DER ECDSA signature) "\n"`, the
//!   key ID being the first four bytes of SHA-256 of the key's DER SubjectPublicKeyInfo.
//!
//! An auditor who holds every entry recomputes the root at each checkpoint's size with a
//! [`Tree`] (a compact range: O(log n) memory), so no inclusion or consistency proof is
//! needed to check an export, or that it extends an earlier checkpoint.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Longest signed note accepted.
pub const MAX_NOTE: usize = 64 * 1024;
/// Most signatures on one note (C2SP: at least 16 must be accepted).
pub const MAX_SIGNATURES: usize = 32;
/// The signed-note signature type of ECDSA signatures.
pub const ECDSA_TYPE: u8 = 0x02;

/// RFC 6962 §2.1 leaf hash.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// RFC 6962 §2.1 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A Merkle tree grown one leaf at a time, keeping only the roots of the perfect subtrees
/// that cover it (largest first): its root at any size costs O(log n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    size: u64,
    stack: Vec<Hash>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append a leaf by its [`leaf_hash`].
    pub fn push(&mut self, leaf: Hash) {
        self.stack.push(leaf);
        let mut n = self.size;
        // Each trailing 1 bit of the old size is a perfect subtree of the new leaf's size.
        while n & 1 == 1 {
            let right = self.stack.pop().unwrap_or_default();
            let left = self.stack.pop().unwrap_or_default();
            self.stack.push(node_hash(&left, &right));
            n >>= 1;
        }
        self.size += 1;
    }

    /// RFC 6962 §2.1 MTH of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        match it.next() {
            None => Sha256::digest([]).into(),
            Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// A tree head: the log's name, its size and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text (C2SP tlog-checkpoint, no extension lines).
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            base64::engine::general_purpose::STANDARD.encode(self.root)
        )
    }

    /// Read a checkpoint from a note's text; extension lines are refused (Castellan writes
    /// none).
    pub fn parse(text: &str) -> Result<Checkpoint> {
        let bad = |why: &str| Error::Invalid(format!("checkpoint: {why}"));
        let mut lines = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text must end in a newline"))?
            .split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(bad("three lines: origin, size, root"));
        };
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) {
            return Err(bad(
                "the size must be a decimal number without leading zeros",
            ));
        }
        let size: u64 = size.parse().map_err(|_| bad("the size is not a number"))?;
        let root: Hash = base64::engine::general_purpose::STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root is not 32 bytes of base64"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    pub signature: Vec<u8>,
}

/// A signed note: text and signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

/// The key ID of an ECDSA key (signature type 0x02): SHA-256 of its DER SPKI, first 4 bytes.
pub fn ecdsa_key_id(spki_der: &[u8]) -> u32 {
    let h = Sha256::digest(spki_der);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

impl Note {
    /// The note as text.
    pub fn encode(&self) -> String {
        let mut out = format!("{}\n", self.text);
        for s in &self.signatures {
            let mut b = s.key_id.to_be_bytes().to_vec();
            b.extend_from_slice(&s.signature);
            out.push_str(&format!(
                "\u{2014} {} {}\n",
                s.name,
                base64::engine::general_purpose::STANDARD.encode(b)
            ));
        }
        out
    }

    /// Parse a signed note (C2SP signed-note §Format): UTF-8 without control characters
    /// but newline, the text separated from the signatures by the last blank line.
    pub fn parse(note: &str) -> Result<Note> {
        let bad = |why: &str| Error::Invalid(format!("signed note: {why}"));
        if note.len() > MAX_NOTE {
            return Err(bad("too large"));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(bad("control characters"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or_else(|| bad("the signatures must end in a newline"))?;
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line starts with an em dash and a space"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line is NAME BASE64"))?;
            if !valid_key_name(name) {
                return Err(bad("bad key name"));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad("a signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad("a signature is too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                signature: raw[4..].to_vec(),
            });
            if signatures.len() > MAX_SIGNATURES {
                return Err(bad("too many signatures"));
            }
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Verify the signature of the ECDSA P-256 key `spki_der` named `name`: signatures of
    /// other keys are ignored, a signature of this key that fails is an error, and so is
    /// none at all.
    pub fn verify_ecdsa_p256(&self, name: &str, spki_der: &[u8]) -> Result<()> {
        use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
        let id = ecdsa_key_id(spki_der);
        let point = p256_point(spki_der)?;
        let mut found = false;
        for s in self
            .signatures
            .iter()
            .filter(|s| s.name == name && s.key_id == id)
        {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point)
                .verify(self.text.as_bytes(), &s.signature)
                .map_err(|_| Error::Invalid(format!("the signature of {name} does not verify")))?;
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "the note has no signature of {name}"
            )))
        }
    }
}

/// The uncompressed point of a P-256 SubjectPublicKeyInfo.
fn p256_point(spki_der: &[u8]) -> Result<Vec<u8>> {
    crate::p256_point(spki_der).map_err(|e| {
        Error::Invalid(match e {
            crate::NotP256::NotSpki => "public key: not a SubjectPublicKeyInfo".into(),
            crate::NotP256::OtherKey => "the key is not an EC P-256 key".into(),
        })
    })
}

/// The first line of an export.
pub const EXPORT_MAGIC: &str = "castellan-audit-export v1";

/// An audit export (docs/audit.md): the origin, the audit key's certificate chain, every
/// entry's exact bytes (the Merkle leaves), and every signed checkpoint.
///
/// As text, one item per line: `castellan-audit-export v1`, `origin ORIGIN`, `cert
/// BASE64(DER)` (the audit key's certificate first), `entry JSON` (the leaf bytes are
/// everything after `entry `), `checkpoint BASE64(signed note)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Export {
    pub origin: String,
    pub chain: Vec<Vec<u8>>,
    pub entries: Vec<Vec<u8>>,
    pub checkpoints: Vec<String>,
}

impl Export {
    pub fn encode(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = format!("{EXPORT_MAGIC}\norigin {}\n", self.origin);
        for c in &self.chain {
            out.push_str(&format!("cert {}\n", b64.encode(c)));
        }
        for e in &self.entries {
            out.push_str("entry ");
            out.push_str(&String::from_utf8_lossy(e));
            out.push('\n');
        }
        for c in &self.checkpoints {
            out.push_str(&format!("checkpoint {}\n", b64.encode(c)));
        }
        out
    }

    /// Parse a whole export held in memory.
    pub fn parse(text: &str) -> Result<Export> {
        let mut lines = text.split('\n');
        check_magic(lines.next().unwrap_or_default())?;
        let mut x = Export::default();
        for (i, line) in lines.enumerate() {
            if let Some(Line::Entry(e)) = x.add_line(i + 2, line)? {
                x.entries.push(e.to_vec());
            }
        }
        x.check_head()?;
        Ok(x)
    }

    /// Take one line (number `n`, counting from 1) of an export into its head (origin,
    /// chain, checkpoints); an entry is handed back, not kept, so that a verifier can stream
    /// the entries.
    pub fn add_line<'a>(&mut self, n: usize, line: &'a str) -> Result<Option<Line<'a>>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let bad = |why: &str| Error::Invalid(format!("export line {n}: {why}"));
        if line.is_empty() {
            return Ok(None);
        }
        if line.len() > MAX_LINE {
            return Err(bad("too long"));
        }
        let (kind, rest) = line.split_once(' ').ok_or_else(|| bad("no value"))?;
        match kind {
            "origin" if self.origin.is_empty() => self.origin = rest.to_owned(),
            "cert" => self.chain.push(
                b64.decode(rest)
                    .map_err(|_| bad("certificate is not base64"))?,
            ),
            "entry" => return Ok(Some(Line::Entry(rest.as_bytes()))),
            "checkpoint" => self.checkpoints.push(
                String::from_utf8(
                    b64.decode(rest)
                        .map_err(|_| bad("checkpoint is not base64"))?,
                )
                .map_err(|_| bad("checkpoint is not UTF-8"))?,
            ),
            _ => return Err(bad("unknown line")),
        }
        Ok(None)
    }

    /// After the last line: an export names its origin.
    pub fn check_head(&self) -> Result<()> {
        if self.origin.is_empty() {
            return Err(Error::Invalid("export: no origin".into()));
        }
        Ok(())
    }
}

/// Longest line of an export (an entry, a certificate, a signed note in base64).
pub const MAX_LINE: usize = 1 << 20;

/// The first line of an export must be [`EXPORT_MAGIC`].
pub fn check_magic(first: &str) -> Result<()> {
    if first.trim_end_matches('\n') == EXPORT_MAGIC {
        Ok(())
    } else {
        Err(Error::Invalid(
            "export line 1: not a castellan audit export (v1)".into(),
        ))
    }
}

/// A line of an export that is not part of its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// An entry's exact bytes: a leaf.
    Entry(&'a [u8]),
}

/// What [`verify_export`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub entries: u64,
    pub checkpoints: usize,
    /// Entries the last checkpoint covers; the rest are not yet signed.
    pub signed: u64,
}

/// Verify an export offline against the appliance's root certificate (the admin CA):
/// 1. the audit key's certificate (the chain's first) must be signed by `root` (ECDSA
///    P-256) and name it as issuer;
/// 2. recompute the tree over the entries in order; every checkpoint must be signed by the
///    audit key under the export's origin, name that origin, not exceed the entries, and
///    have the root of the entries up to its size;
/// 3. with `previous` (a signed checkpoint kept from before), the export must extend it:
///    the same origin, at least its size, and the same root at its size.
pub fn verify_export(x: &Export, root_der: &[u8], previous: Option<&str>) -> Result<Report> {
    let mut v = Verifier::new(x, x.entries.len() as u64, root_der, previous)?;
    for e in &x.entries {
        v.push(e)?;
    }
    v.finish()
}

/// [`verify_export`] one entry at a time, in memory for the checkpoints and O(log n)
/// hashes: made from the export's head and the number of entries it holds (a first pass
/// over a file), then fed the entries in order (a second pass).
#[derive(Debug)]
pub struct Verifier {
    /// The checkpoints and `previous`, by size; `next` is the first not yet reached.
    wanted: Vec<Checkpoint>,
    next: usize,
    previous: Option<Checkpoint>,
    tree: Tree,
    entries: u64,
    checkpoints: usize,
    signed: u64,
}

impl Verifier {
    pub fn new(
        head: &Export,
        entries: u64,
        root_der: &[u8],
        previous: Option<&str>,
    ) -> Result<Verifier> {
        use der::{Decode, Encode};
        let fail = |why: String| Error::Invalid(why);
        let root = x509_cert::Certificate::from_der(root_der)
            .map_err(|e| fail(format!("root certificate: {e}")))?;
        let audit_der = head
            .chain
            .first()
            .ok_or_else(|| fail("the export has no audit certificate".into()))?;
        let audit = x509_cert::Certificate::from_der(audit_der)
            .map_err(|e| fail(format!("audit certificate: {e}")))?;
        if audit.tbs_certificate().issuer() != root.tbs_certificate().subject() {
            return Err(fail(
                "the audit certificate was not issued by this root".into(),
            ));
        }
        let root_spki = root
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| fail(e.to_string()))?;
        let tbs = audit
            .tbs_certificate()
            .to_der()
            .map_err(|e| fail(e.to_string()))?;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            p256_point(&root_spki)?,
        )
        .verify(&tbs, audit.signature().raw_bytes())
        .map_err(|_| {
            fail("the audit certificate's signature does not verify with the root".into())
        })?;
        let key = audit
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| fail(e.to_string()))?;
        let signed_by_key = |text: &str, what: &str| -> Result<Checkpoint> {
            let note = Note::parse(text)?;
            note.verify_ecdsa_p256(&head.origin, &key)
                .map_err(|e| fail(format!("{what}: {e}")))?;
            let cp = Checkpoint::parse(&note.text)?;
            if cp.origin != head.origin {
                return Err(fail(format!("{what} is of another log")));
            }
            Ok(cp)
        };
        let mut checkpoints = Vec::new();
        for (i, text) in head.checkpoints.iter().enumerate() {
            checkpoints.push(signed_by_key(text, &format!("checkpoint {}", i + 1))?);
        }
        let signed = checkpoints.iter().map(|c| c.size).max().unwrap_or(0);
        let count = checkpoints.len();
        let previous = previous
            .map(|text| signed_by_key(text, "the previous checkpoint"))
            .transpose()?;
        let mut wanted: Vec<Checkpoint> = checkpoints.into_iter().chain(previous.clone()).collect();
        wanted.sort_by_key(|c| c.size);
        if let Some(c) = wanted.iter().find(|c| c.size > entries) {
            return Err(fail(format!(
                "a checkpoint covers {} entries but the export has {entries}: entries were removed",
                c.size
            )));
        }
        let mut v = Verifier {
            wanted,
            next: 0,
            previous,
            tree: Tree::new(),
            entries,
            checkpoints: count,
            signed,
        };
        v.check_reached()?;
        Ok(v)
    }

    /// The next entry's exact bytes.
    pub fn push(&mut self, entry: &[u8]) -> Result<()> {
        if self.tree.size() == self.entries {
            return Err(Error::Invalid(
                "more entries than the export's first pass counted".into(),
            ));
        }
        self.tree.push(leaf_hash(entry));
        self.check_reached()
    }

    /// Every checkpoint at the tree's current size must have its root.
    fn check_reached(&mut self) -> Result<()> {
        while let Some(c) = self
            .wanted
            .get(self.next)
            .filter(|c| c.size == self.tree.size())
        {
            if c.root != self.tree.root() {
                let what = if self.previous.as_ref() == Some(c) {
                    "the export does not extend the previous checkpoint"
                } else if c.size == 0 {
                    "a checkpoint of the empty log has another root"
                } else {
                    "the entries do not match a signed checkpoint"
                };
                return Err(Error::Invalid(format!(
                    "{what} (at {} entries): an entry was changed, removed or reordered",
                    c.size
                )));
            }
            self.next += 1;
        }
        Ok(())
    }

    /// After the last entry: every entry is covered by a checkpoint.
    pub fn finish(self) -> Result<Report> {
        if self.tree.size() != self.entries {
            return Err(Error::Invalid(
                "fewer entries than the export's first pass counted".into(),
            ));
        }
        if self.entries > self.signed {
            return Err(Error::Invalid(format!(
                "{} entries after the last checkpoint ({}) are not signed: entries were \
                 appended without a checkpoint",
                self.entries - self.signed,
                self.signed
            )));
        }
        Ok(Report {
            entries: self.entries,
            checkpoints: self.checkpoints,
            signed: self.signed,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The root by the RFC's recursive definition, to check [`Tree`] against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn the_compact_tree_agrees_with_the_rfc_definition_at_every_size() {
        let mut t = Tree::new();
        let mut leaves = Vec::new();
        assert_eq!(t.root(), mth(&leaves));
        for i in 0..300u32 {
            let l = leaf_hash(&i.to_be_bytes());
            leaves.push(l);
            t.push(l);
            assert_eq!(t.size(), u64::from(i) + 1);
            assert_eq!(t.root(), mth(&leaves), "size {}", i + 1);
        }
    }

    /// The same roots as ct-merkle, an independent RFC 6962 implementation.
    #[test]
    fn roots_match_an_independent_implementation() {
        let mut theirs = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, Vec<u8>>::new();
        let mut ours = Tree::new();
        for i in 0..200u32 {
            let entry = format!("entry {i}").into_bytes();
            ours.push(leaf_hash(&entry));
            theirs.push(entry);
            assert_eq!(
                theirs.root().as_bytes().as_slice(),
                ours.root().as_slice(),
                "size {}",
                i + 1
            );
        }
    }

    #[test]
    fn known_answers() {
        // SHA-256 of the empty string, and of a single 0x00 byte (the empty leaf).
        assert_eq!(
            hex::encode(Tree::new().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    fn key() -> (ring::signature::EcdsaKeyPair, Vec<u8>) {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(kp.public_key().as_ref());
        (kp, spki)
    }

    fn signed(kp: &ring::signature::EcdsaKeyPair, spki: &[u8], text: &str) -> Note {
        let sig = kp
            .sign(&ring::rand::SystemRandom::new(), text.as_bytes())
            .unwrap();
        Note {
            text: text.to_owned(),
            signatures: vec![NoteSignature {
                name: "castellan.test/audit".into(),
                key_id: ecdsa_key_id(spki),
                signature: sig.as_ref().to_vec(),
            }],
        }
    }

    #[test]
    fn checkpoints_round_trip_and_verify_only_unchanged_with_their_key() {
        let (kp, spki) = key();
        let (_, other) = key();
        let mut t = Tree::new();
        t.push(leaf_hash(b"entry"));
        let cp = Checkpoint {
            origin: "castellan.test/audit".into(),
            size: t.size(),
            root: t.root(),
        };
        let note = signed(&kp, &spki, &cp.text());
        let text = note.encode();
        assert!(
            text.contains("\n\n\u{2014} castellan.test/audit "),
            "{text}"
        );
        let back = Note::parse(&text).unwrap();
        assert_eq!(back, note);
        assert_eq!(Checkpoint::parse(&back.text).unwrap(), cp);
        back.verify_ecdsa_p256("castellan.test/audit", &spki)
            .unwrap();
        assert!(
            back.verify_ecdsa_p256("castellan.test/audit", &other)
                .is_err()
        );
        assert!(back.verify_ecdsa_p256("someone-else", &spki).is_err());
        // Any change to the text breaks the signature.
        let forged = text.replace("\n1\n", "\n2\n");
        let forged = Note::parse(&forged).unwrap();
        assert!(
            forged
                .verify_ecdsa_p256("castellan.test/audit", &spki)
                .is_err()
        );
    }

    #[test]
    fn malformed_notes_and_checkpoints_are_refused() {
        for n in [
            "",
            "text\n",
            "text\n\n",
            "text\n\n- name AAAAAAA=\n",
            "text\n\n\u{2014} name\n",
            "text\n\n\u{2014} na+me AAAAAAA=\n",
            "text\n\n\u{2014} name !!!\n",
            "text\n\n\u{2014} name AAAA\n",
            "te\u{7}xt\n\n\u{2014} name AAAAAAA=\n",
        ] {
            assert!(Note::parse(n).is_err(), "{n:?}");
        }
        for c in [
            "",
            "origin\n1\n",
            "origin\n01\nAAAA\n",
            "origin\nx\nAAAA\n",
            "origin\n1\nAAAA\n",
            "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n",
        ] {
            assert!(Checkpoint::parse(c).is_err(), "{c:?}");
        }
        assert!(Checkpoint::parse("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n").is_ok());
    }
}
