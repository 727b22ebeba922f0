//! The command line: global options and one subcommand enum per command group.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "castellan",
    version,
    about = "Castellan admin CLI: CAs, proposals and approvals over the signer's mTLS admin port"
)]
pub struct Cli {
    /// Admin port URL, e.g. https://127.0.0.1:8443
    #[arg(long, env = "CASTELLAN_ADMIN")]
    pub admin: Option<String>,
    /// The officer's certificate (PEM)
    #[arg(long, env = "CASTELLAN_CERT")]
    pub cert: Option<PathBuf>,
    /// The officer's private key (PEM)
    #[arg(long, env = "CASTELLAN_KEY")]
    pub key: Option<PathBuf>,
    /// The admin CA certificate (admin-ca.pem from the signer's state directory)
    #[arg(long, env = "CASTELLAN_ADMIN_CA")]
    pub admin_ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Certificate authorities
    #[command(subcommand)]
    Ca(CaCommand),
    /// Quorum proposals
    #[command(subcommand)]
    Proposal(ProposalCommand),
    /// Show which admin this certificate is: assignments, effective permissions and their
    /// tags, and the quorum
    Whoami(Json),
    /// SCEP profiles
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// SCEP challenges
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// SCEP requests waiting for manual approval
    #[command(subcommand)]
    Request(RequestCommand),
    /// Issued certificates
    #[command(subcommand)]
    Cert(CertCommand),
    /// PKCS certificates: key pairs made by the signer, delivered as PKCS#12 files
    #[command(subcommand)]
    Pkcs12(Pkcs12Command),
    /// Escrowed keys: recovery by quorum
    #[command(subcommand)]
    Key(KeyCommand),
    /// What an MDM administrator needs to enrol devices through a profile
    #[command(subcommand)]
    Export(ExportCommand),
    /// The audit log: signed checkpoints, export, offline verification
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Admins and their assignments (changes are proposals)
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Roles: the built-in ones and custom ones (changes are proposals)
    #[command(subcommand)]
    Role(RoleCommand),
    /// The quorum (a change is a proposal)
    #[command(subcommand)]
    Quorum(QuorumCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List admins with their certificate fingerprints and assignments
    List(Json),
    /// Propose a new admin: a certificate with a role within tags
    Add {
        name: String,
        /// The admin's certificate (PEM or DER)
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        role: String,
        /// T1,T2 or * for every tag
        #[arg(long)]
        tags: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose giving an admin a role within tags (replaces their assignment of that role)
    Assign {
        name: String,
        #[arg(long)]
        role: String,
        /// T1,T2 or * for every tag
        #[arg(long)]
        tags: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose taking a role from an admin
    Unassign {
        name: String,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose removing an admin
    Remove {
        name: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List roles, their permissions and who holds them
    List(Json),
    /// Show one role
    Show {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose a custom role from permissions (P1,P2: ca.read, leaf.revoke, ...)
    Create {
        name: String,
        #[arg(long)]
        permissions: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose deleting a custom role nobody holds
    Delete {
        name: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuorumCommand {
    /// Propose a new quorum: M approvals execute a proposal, R rejections end one
    Set {
        /// Approvals a proposal needs
        approvals: u32,
        /// Rejections that end a proposal (default: the current number)
        #[arg(long)]
        rejections: Option<u32>,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first; the last line `next: SEQ` continues with --after
    List {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
        /// Only entries about this CA
        #[arg(long)]
        ca: Option<String>,
        /// 1 to 1000 (default 100)
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        after: Option<u64>,
        #[command(flatten)]
        json: Json,
    },
    /// Write the latest signed checkpoint (a C2SP signed note; a fresh one if the log grew)
    Checkpoint {
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Write everything an auditor verifies offline: entries, checkpoints, the audit key's
    /// certificate chain
    Export {
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Verify an export offline (no admin port, no token) against the appliance's root
    /// certificate (admin-ca.pem); with --previous, prove it extends an earlier checkpoint
    Verify {
        file: PathBuf,
        /// The appliance root (admin-ca.pem) the audit key's certificate chains to
        #[arg(long)]
        root: PathBuf,
        /// A checkpoint kept from before (`castellan audit checkpoint -o FILE`)
        #[arg(long)]
        previous: Option<PathBuf>,
        /// NAME=CERT.pem: require NAME's cosignature (`audit cosign`) on a checkpoint,
        /// checked with this certificate (repeatable)
        #[arg(long)]
        cosigner: Vec<String>,
    },
    /// Add your signature to the latest checkpoint (your key must be ECDSA P-256), so that
    /// rewriting the log would need your key too
    Cosign,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write an Apple configuration profile (.mobileconfig, unsigned XML): the profile's CA
    /// chain as certificate payloads and a SCEP payload
    Mobileconfig(MobileconfigArgs),
    /// Write a directory for an MDM administrator: each CA certificate as DER NAME.cer (the
    /// root and every CA down to the profile's), chain.p7b, scep-url.txt, and README.txt with
    /// the values to enter in the MDM's trusted-certificate and SCEP profiles
    Bundle {
        /// The SCEP profile
        #[arg(long)]
        profile: String,
        /// The directory to write (absent or empty, unless --force)
        #[arg(short, long)]
        output: PathBuf,
        /// Write into an existing non-empty directory, replacing files of the same names
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct MobileconfigArgs {
    /// The SCEP profile
    #[arg(long)]
    pub profile: String,
    /// The SCEP challenge to embed; the file is then readable by its owner only, and a
    /// static profile's secret is checked against its hash. Without it the payload carries
    /// the placeholder $SCEP_CHALLENGE: replace it, or have the MDM put its challenge
    /// variable there
    #[arg(long)]
    pub challenge: Option<String>,
    /// The subject devices request, e.g. "CN=$SERIALNUMBER,O=Example" (CN required; only
    /// attributes the profile allows). MDM variables are kept for the MDM to substitute.
    /// Default CN=$SERIALNUMBER (Jamf Pro's variable; Intune's is {{SerialNumber}})
    #[arg(long)]
    pub subject: Option<String>,
    /// PayloadOrganization shown on the device
    #[arg(long)]
    pub organization: Option<String>,
    /// The file to write
    #[arg(short, long)]
    pub output: PathBuf,
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Revoke a certificate (RFC 5280 reasons: unspecified, keyCompromise, affiliationChanged,
    /// superseded, cessationOfOperation, certificateHold; removeFromCRL lifts a hold)
    Revoke {
        /// Serial number in hex, as `openssl x509 -serial` prints it
        serial: String,
        #[arg(long)]
        ca: String,
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// List certificates a page at a time; the last line `next: CURSOR` continues with --after
    List(Box<ListArgs>),
    /// Show a certificate: status, subject, SANs, CA, profile, validity, revocation
    Show {
        /// Serial number in hex (colons allowed)
        serial: String,
        /// The issuing CA (needed only when several CAs issued this serial)
        #[arg(long)]
        ca: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Write a certificate (PEM, or DER with --der)
    Get {
        /// Serial number in hex (colons allowed)
        serial: String,
        #[arg(long)]
        ca: Option<String>,
        #[arg(long)]
        der: bool,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Certificate counts by CA and status
    Stats(Json),
    /// Every certificate matching the filter as one CSV (no paging, no cap; needs report.export)
    Export {
        #[arg(long)]
        ca: Option<String>,
        /// active, expired, revoked, or pending
        #[arg(long)]
        status: Option<String>,
        /// Case-insensitive substring of the subject, a SAN or the serial
        #[arg(long)]
        search: Option<String>,
        /// CN or SAN starting with this, case-insensitive
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        expires: ExpiresArgs,
        /// Write here instead of standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// An expiry range of listings (UTC days, both included).
#[derive(Debug, Args)]
pub struct ExpiresArgs {
    /// Only certificates expiring on or after this day (YYYY-MM-DD, UTC)
    #[arg(long, value_name = "DATE")]
    pub expires_from: Option<String>,
    /// Only certificates expiring on or before this day (YYYY-MM-DD, UTC)
    #[arg(long, value_name = "DATE")]
    pub expires_until: Option<String>,
}

impl ExpiresArgs {
    pub fn range(&self) -> Result<proto::admin::Expires, crate::Error> {
        proto::admin::Expires::from_dates(
            self.expires_from.as_deref(),
            self.expires_until.as_deref(),
        )
        .map_err(crate::Error::Invalid)
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this CA's certificates
    #[arg(long)]
    pub ca: Option<String>,
    /// active, expired, revoked, or pending (SCEP requests waiting for approval)
    #[arg(long)]
    pub status: Option<String>,
    /// Case-insensitive substring of the subject, a SAN or the serial (a scan, not an index)
    #[arg(long)]
    pub search: Option<String>,
    /// CN or SAN starting with this, case-insensitive (indexed: instant at any size)
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub expires: ExpiresArgs,
    /// Rows per page (at most 1000)
    #[arg(long, default_value_t = proto::admin::DEFAULT_LIMIT)]
    pub limit: u32,
    /// Continue after this cursor (the `next` of the previous page)
    #[arg(long)]
    pub after: Option<String>,
    /// JSON: {"certs": [...], "next": CURSOR or null}
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header line; the next cursor goes to stderr as `next: CURSOR`
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Propose the recovery of a certificate's escrowed key (a quorum approves it)
    Recover {
        /// Serial number in hex
        serial: String,
        #[arg(long)]
        ca: String,
        #[command(flatten)]
        json: Json,
    },
    /// Fetch the key of an executed recovery you proposed, once, as a new PKCS#12 file with
    /// a new password (printed once)
    Fetch {
        /// The recovery proposal's id
        proposal: String,
        /// modern or compat (the profile's by default)
        #[arg(long)]
        encoding: Option<String>,
        /// The PKCS#12 file to create (never overwritten)
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum Pkcs12Command {
    /// Have the signer make a key pair, issue its certificate through a pkcs profile, and
    /// write both with the chain as a PKCS#12 file (the password is printed once)
    Issue {
        #[arg(long)]
        profile: String,
        /// RFC 4514 subject, e.g. "CN=Ada Lovelace,O=Example"
        #[arg(long)]
        subject: String,
        /// TYPE:VALUE (dns, email, upn, uri); repeatable
        #[arg(long)]
        san: Vec<String>,
        /// rsa-2048, rsa-3072, rsa-4096, ec-p256 or ec-p384 (the profile's first by default)
        #[arg(long)]
        key: Option<String>,
        /// modern (AES-256, SHA-256) or compat (3DES, SHA-1: older Apple and Android)
        #[arg(long)]
        encoding: Option<String>,
        /// The file's password, from a file only you can read (else the signer makes one)
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The PKCS#12 file to create (never overwritten)
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Propose a SCEP profile on an issuing CA
    Create(Box<ProfileArgs>),
    /// List profiles
    List(Json),
    /// Show a profile
    Show {
        name: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Profile name (appears in the URL /scep/NAME)
    pub name: String,
    /// The issuing CA
    #[arg(long)]
    pub ca: String,
    /// Subject attributes a request may carry
    #[arg(long, default_value = "CN,O,OU,C,ST,L")]
    pub subject_attrs: String,
    /// SAN types a request may carry: dns, email, upn, uri
    #[arg(long, default_value = "")]
    pub san_types: String,
    /// EKUs of issued certificates (a subset of the CA's)
    #[arg(long, default_value = "client-auth")]
    pub eku: String,
    /// Key usages of issued certificates
    #[arg(long, default_value = "digital-signature,key-encipherment")]
    pub key_usage: String,
    #[arg(long, default_value_t = 2048)]
    pub rsa_min_bits: u32,
    /// 0 refuses RSA keys
    #[arg(long, default_value_t = 4096)]
    pub rsa_max_bits: u32,
    /// Allowed EC curves (p256, p384); empty refuses EC keys
    #[arg(long, default_value = "p256,p384")]
    pub ec_curves: String,
    /// Lifetime of issued certificates
    #[arg(long, default_value = "1y")]
    pub validity: String,
    /// Renewal is accepted this long before expiry
    #[arg(long, default_value = "30d")]
    pub renewal_window: String,
    /// auto, or manual (requests wait for `castellan request approve`)
    #[arg(long, default_value = "auto")]
    pub approval: String,
    /// static, one-time, signed, intune (Intune validates, through castellan-mdm) or webhook;
    /// none for a pkcs profile
    #[arg(long)]
    pub challenge: Option<String>,
    /// A pkcs profile: the signer makes key pairs of these types (rsa-2048, rsa-3072,
    /// rsa-4096, ec-p256, ec-p384; the first is the default) and returns PKCS#12 files
    #[arg(long, value_name = "TYPES")]
    pub pkcs_keys: Option<String>,
    /// A pkcs profile's default PKCS#12 encoding: modern or compat
    #[arg(long, default_value = "modern")]
    pub pkcs_encoding: String,
    /// A pkcs profile keeps each private key encrypted to an escrow key in the token
    /// (encryption keys only; not available yet)
    #[arg(long)]
    pub escrow: bool,
    /// The static challenge (or --secret-file)
    #[arg(long)]
    pub secret: Option<String>,
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// MDM public key (PEM public key or certificate) for signed challenges; repeatable
    #[arg(long)]
    pub mdm_key: Vec<PathBuf>,
    /// Also accept DES/3DES envelopes and SHA-1 signatures (old clients)
    #[arg(long)]
    pub legacy_algorithms: bool,
    /// RA layout: split (NDES: a signing and an encryption RA certificate; serves every
    /// common client), combined (one RA certificate for both), or ca (no RA: the RSA issuing
    /// CA's key decrypts)
    #[arg(long, default_value = "split")]
    pub ra_layout: String,
    /// RA certificates also carry the Windows Certificate Request Agent EKU
    #[arg(long)]
    pub ra_windows_eku: bool,
    /// GetCACert returns the issuing CA only, or the full chain up to the root
    #[arg(long, default_value = "issuing")]
    pub ca_chain: String,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Subcommand)]
pub enum ChallengeCommand {
    /// Mint a one-time challenge (profile in one-time mode)
    New {
        #[arg(long)]
        profile: String,
        /// Bind the subject, e.g. "CN=device-1"
        #[arg(long)]
        subject: Option<String>,
        /// Bind a SAN (TYPE:VALUE); repeatable
        #[arg(long)]
        san: Vec<String>,
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[command(flatten)]
        json: Json,
    },
    /// Mint a signed challenge with an MDM key (offline; no admin connection)
    Sign {
        /// The MDM's EC P-256 private key (PKCS#8 PEM)
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        profile: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        san: Vec<String>,
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// List requests waiting for approval
    List(Json),
    /// Issue a waiting request
    Approve { id: String },
    /// Refuse a waiting request
    Reject {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct Json {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NewCa {
    /// CA name (a-z, 0-9, '-', '_', '.')
    pub name: String,
    /// Subject, e.g. "CN=Issuing CA,O=Example,C=US" (CN required; O, OU, C, ST, L optional)
    #[arg(long)]
    pub subject: String,
    /// rsa-2048, rsa-3072, rsa-4096, ec-p256 or ec-p384
    #[arg(long)]
    pub key: String,
    /// sha256, sha384 or sha512
    #[arg(long, default_value = "sha256")]
    pub hash: String,
    /// Allowed EKUs: client-auth, server-auth, email-protection, code-signing, ... or OIDs
    #[arg(long)]
    pub eku: String,
    /// Scope tags T1,T2 (default: the tags on which you may create CAs; `default` if you
    /// hold them all)
    #[arg(long)]
    pub tags: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// List CAs
    List(Json),
    /// Show a CA, with its key's attributes as the token reports them
    Show {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose a self-signed root CA
    CreateRoot {
        #[command(flatten)]
        ca: NewCa,
        /// Lifetime, e.g. 20y
        #[arg(long)]
        validity: String,
        /// basicConstraints pathLen (default: unlimited)
        #[arg(long)]
        path_len: Option<u8>,
        #[command(flatten)]
        json: Json,
    },
    /// Propose an issuing CA signed by PARENT
    CreateIssuing {
        #[command(flatten)]
        ca: NewCa,
        #[arg(long)]
        parent: String,
        /// Lifetime, e.g. 10y (must end before the parent's)
        #[arg(long)]
        validity: String,
        /// basicConstraints pathLen (default 0: issues end-entity certificates only)
        #[arg(long, default_value_t = 0)]
        path_len: u8,
        #[command(flatten)]
        json: Json,
    },
    /// Propose changing a CA's scope tags
    Tags {
        name: String,
        /// Tags to add (T1,T2)
        #[arg(long, default_value = "")]
        add: String,
        /// Tags to remove (T1,T2)
        #[arg(long, default_value = "")]
        remove: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose a bring-your-own CA: key in the token, certificate from an external CA
    CreateByoca {
        #[command(flatten)]
        ca: NewCa,
        #[command(flatten)]
        json: Json,
    },
    /// Write a bring-your-own CA's CSR (PEM, or DER with --der)
    Csr {
        name: String,
        #[arg(long)]
        der: bool,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Propose installing the externally signed certificate and its chain on a bring-your-own CA
    Import {
        name: String,
        /// The signed certificate (.cer/.crt/.pem, DER or PEM)
        #[arg(long)]
        cert: PathBuf,
        /// The external chain: PEM bundle, certificate files or .p7b (repeatable)
        #[arg(long, required = true)]
        chain: Vec<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// Propose disabling a CA (it signs nothing until enabled)
    Disable {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Propose enabling a disabled CA
    Enable {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Write a CA certificate (PEM, or DER with --der)
    Cert {
        name: String,
        #[arg(long)]
        der: bool,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Propose revoking an issuing CA (it goes on its parent's CRL and signs nothing more)
    Revoke {
        name: String,
        #[arg(long, default_value = "cessationOfOperation")]
        reason: String,
        #[command(flatten)]
        json: Json,
    },
    /// Write a CA's current CRL (DER, or PEM with --pem)
    Crl {
        name: String,
        #[arg(long)]
        pem: bool,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Write the chain from a CA to its root as PKCS#7 (.p7b, DER)
    Chain {
        name: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProposalCommand {
    /// List proposals
    List(Json),
    /// Show a proposal
    Show {
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Approve a proposal: sign its digest with your key
    Approve {
        id: String,
        /// Only approve if the digest is this (as reviewed out of band)
        #[arg(long)]
        digest: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Reject a pending proposal (it will never run)
    Reject {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        json: Json,
    },
}
