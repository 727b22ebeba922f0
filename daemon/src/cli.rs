//! The `castellan` admin CLI: argument parsing and the commands. Every CA-changing
//! command builds a proposal, signs its digest with the officer's key and sends it;
//! `proposal approve` recomputes the digest from the proposal itself before signing.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use der::Encode;
use serde_json::json;

use crate::admin::{CaView, Request, Response};
use crate::client::AdminClient;
use crate::model::{CaName, CaSpec, Eku, Lifetime, Subject};
use crate::quorum::{self, Operation, Proposal, ProposalBody};
use crate::{Error, Result, x509};

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
    /// Show which officer this certificate is, and the quorum
    Whoami,
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
    /// Rows per page (at most 1000)
    #[arg(long, default_value_t = crate::report::DEFAULT_LIMIT)]
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
    /// static, one-time or signed
    #[arg(long)]
    pub challenge: String,
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

/// Connection details read from the global options.
struct Session {
    client: AdminClient,
    key_pem: Vec<u8>,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    if bytes.len() > x509::MAX_INPUT {
        return Err(Error::Invalid(format!(
            "{what} {} is too large",
            path.display()
        )));
    }
    Ok(bytes)
}

impl Cli {
    fn session(&self) -> Result<Session> {
        let need = |o: &Option<PathBuf>, flag: &str, env: &str| {
            o.clone()
                .ok_or_else(|| Error::Invalid(format!("give {flag} or set {env}")))
        };
        let admin = self
            .admin
            .clone()
            .ok_or_else(|| Error::Invalid("give --admin URL or set CASTELLAN_ADMIN".into()))?;
        let ca = read(
            &need(&self.admin_ca, "--admin-ca FILE", "CASTELLAN_ADMIN_CA")?,
            "admin CA",
        )?;
        let cert = read(
            &need(&self.cert, "--cert FILE", "CASTELLAN_CERT")?,
            "officer certificate",
        )?;
        let key_pem = read(
            &need(&self.key, "--key FILE", "CASTELLAN_KEY")?,
            "officer key",
        )?;
        Ok(Session {
            client: AdminClient::new(&admin, &ca, &cert, &key_pem)?,
            key_pem,
        })
    }
}

/// Run the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match dispatch(&cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                Error::Invalid(_) => 2,
                Error::Forbidden(_) => 3,
                Error::NotFound(_) => 4,
                Error::Conflict(_) => 5,
                _ => 1,
            }
        }
    }
}

fn spec(ca: &NewCa, validity: Option<&str>, path_len: Option<u8>) -> Result<CaSpec> {
    let spec = CaSpec {
        name: CaName::new(&ca.name)?,
        subject: Subject::new(&ca.subject)?,
        key: crate::model::key_spec(&ca.key)?.to_string(),
        hash: crate::model::hash_alg(&ca.hash)?.to_string(),
        validity: validity.map(Lifetime::new).transpose()?,
        ekus: Eku::list(&ca.eku)?,
        path_len,
    };
    spec.check()?;
    Ok(spec)
}

async fn dispatch(cli: &Cli) -> Result<()> {
    // Minting a signed challenge needs only the MDM key.
    if let Command::Challenge(ChallengeCommand::Sign {
        key,
        profile,
        subject,
        san,
        ttl,
    }) = &cli.command
    {
        crate::model::Subject::new(subject)?;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| Error::Encoding(e.to_string()))?;
        let claims = crate::challenge::Claims {
            profile: profile.clone(),
            sub: subject.clone(),
            sans: san
                .iter()
                .map(|s| crate::challenge::San::parse(s))
                .collect::<Result<_>>()?,
            exp: crate::now() + Lifetime::new(ttl)?.secs() as i64,
            nonce: hex::encode(nonce),
        };
        println!(
            "{}",
            crate::challenge::sign(&read(key, "MDM key")?, &claims)?
        );
        return Ok(());
    }
    let s = cli.session()?;
    match &cli.command {
        Command::Whoami => {
            if let Response::Whoami {
                officer,
                quorum,
                officers,
            } = s.client.call(&Request::Whoami).await?
            {
                println!(
                    "officer {officer}; quorum {quorum} of {} ({})",
                    officers.len(),
                    officers.join(", ")
                );
            }
            Ok(())
        }
        Command::Ca(c) => ca(&s, c).await,
        Command::Proposal(p) => proposal(&s, p).await,
        Command::Profile(p) => profile(&s, p).await,
        Command::Challenge(c) => challenge(&s, c).await,
        Command::Request(r) => request(&s, r).await,
        Command::Cert(c) => cert(&s, c).await,
    }
}

async fn cert(s: &Session, c: &CertCommand) -> Result<()> {
    match c {
        CertCommand::Revoke { serial, ca, reason } => {
            reason.parse::<crl::Reason>().map_err(Error::Invalid)?;
            let req = Request::CertRevoke {
                ca: ca.clone(),
                serial: serial.clone(),
                reason: reason.clone(),
            };
            match s.client.call(&req).await? {
                Response::Done { message } => {
                    println!("{message}");
                    Ok(())
                }
                _ => Err(Error::Transport("unexpected answer".into())),
            }
        }
        CertCommand::List(a) => cert_list(s, a).await,
        CertCommand::Show { serial, ca, json } => {
            let c = cert_show(s, serial, ca).await?;
            if json.json {
                use sha2::Digest;
                let mut v = serde_json::to_value(&c).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.remove("der");
                    o.insert(
                        "sha256_fingerprint".into(),
                        json!(hex::encode(sha2::Sha256::digest(&c.der))),
                    );
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print_cert(&c);
            }
            Ok(())
        }
        CertCommand::Get {
            serial,
            ca,
            der,
            output: o,
        } => {
            let c = cert_show(s, serial, ca).await?;
            let data = if *der {
                c.der
            } else {
                x509::to_pem("CERTIFICATE", &c.der).into_bytes()
            };
            output(&data, o.as_ref())
        }
        CertCommand::Stats(j) => {
            let Response::CertStats { cas } = s.client.call(&Request::CertStats).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                println!("{}", serde_json::to_string_pretty(&cas).unwrap_or_default());
                return Ok(());
            }
            println!(
                "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "CA", "ACTIVE", "EXPIRED", "REVOKED", "TOTAL", "PENDING"
            );
            let mut all = crate::report::CaCertStats {
                ca: "(all)".into(),
                ..Default::default()
            };
            for c in &cas {
                all.active += c.active;
                all.expired += c.expired;
                all.revoked += c.revoked;
                all.total += c.total;
                all.pending += c.pending;
            }
            for c in cas.iter().chain(std::iter::once(&all)) {
                println!(
                    "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    c.ca, c.active, c.expired, c.revoked, c.total, c.pending
                );
            }
            Ok(())
        }
    }
}

async fn cert_show(
    s: &Session,
    serial: &str,
    ca: &Option<String>,
) -> Result<crate::report::CertDetail> {
    let serial = crate::revoke::parse_serial(serial)?;
    let req = Request::CertShow {
        ca: ca.clone(),
        serial,
    };
    match s.client.call(&req).await? {
        Response::Cert { cert } => Ok(*cert),
        _ => Err(Error::Transport("unexpected answer".into())),
    }
}

/// `cert list`: one page, or for a search as many requests as it takes to find
/// --limit matches (each request scans a bounded number of rows).
async fn cert_list(s: &Session, a: &ListArgs) -> Result<()> {
    use crate::report::Status;
    let status = a.status.as_deref().map(str::parse::<Status>).transpose()?;
    if !(1..=crate::report::MAX_LIMIT).contains(&a.limit) {
        return Err(Error::Invalid(format!(
            "--limit {}: give 1 to {}",
            a.limit,
            crate::report::MAX_LIMIT
        )));
    }
    let mut certs = Vec::new();
    let mut after = a.after.clone();
    let next = loop {
        let req = Request::CertList {
            ca: a.ca.clone(),
            status,
            search: a.search.clone(),
            limit: Some(a.limit - certs.len() as u32),
            after: after.clone(),
        };
        let Response::Certs { certs: page, next } = s.client.call(&req).await? else {
            return Err(Error::Transport("unexpected answer".into()));
        };
        certs.extend(page);
        if a.search.is_none() || next.is_none() || certs.len() >= a.limit as usize {
            break next;
        }
        after = next;
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"certs": certs, "next": next}))
                .unwrap_or_default()
        );
    } else if a.csv {
        let mut out = String::from(
            "ca,serial,request,status,subject,sans,profile,not_before,not_after,revoked_at\n",
        );
        let t = |t: Option<i64>| t.map(crate::report::rfc3339).unwrap_or_default();
        for c in &certs {
            let sans: Vec<String> = c.sans.iter().map(|s| s.to_string()).collect();
            let fields = [
                c.ca.clone(),
                c.serial.clone().unwrap_or_default(),
                c.request.clone().unwrap_or_default(),
                c.status.to_string(),
                c.subject.clone(),
                sans.join(" "),
                c.profile.clone(),
                t(c.not_before),
                t(c.not_after),
                t(c.revoked_at),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        output(out.as_bytes(), None)?;
        if let Some(n) = &next {
            eprintln!("next: {n}");
        }
    } else {
        println!(
            "{:<16} {:<40} {:<8} {:<10} SUBJECT",
            "CA", "SERIAL", "STATUS", "NOT AFTER"
        );
        for c in &certs {
            let id = match (&c.serial, &c.request) {
                (Some(s), _) => s.clone(),
                (None, Some(r)) => format!("request {r}"),
                _ => "-".into(),
            };
            let na = c
                .not_after
                .map(|t| crate::report::rfc3339(t)[..10].to_owned())
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<16} {:<40} {:<8} {:<10} {}",
                c.ca, id, c.status, na, c.subject
            );
        }
        if let Some(n) = &next {
            println!("next: {n}");
        }
    }
    Ok(())
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_owned()
    }
}

fn print_cert(c: &crate::report::CertDetail) {
    use crate::report::rfc3339;
    use sha2::Digest;
    println!("serial          {}", c.serial);
    println!("ca              {}", c.ca);
    println!("status          {}", c.status);
    println!("subject         {}", c.subject);
    let sans: Vec<String> = c.sans.iter().map(|s| s.to_string()).collect();
    println!(
        "sans            {}",
        if sans.is_empty() {
            "-".into()
        } else {
            sans.join(", ")
        }
    );
    println!("profile         {}", c.profile);
    println!("not-before      {}", rfc3339(c.not_before));
    println!("not-after       {}", rfc3339(c.not_after));
    println!("issued-at       {}", rfc3339(c.issued_at));
    if let Some(t) = c.revoked_at {
        println!("revoked-at      {}", rfc3339(t));
        println!(
            "revoked-reason  {}",
            c.revocation_reason.as_deref().unwrap_or("-")
        );
    }
    println!("transaction-id  {}", c.transaction_id);
    println!(
        "renewed-from    {}",
        c.renewed_from.as_deref().unwrap_or("-")
    );
    println!(
        "sha256          {}",
        hex::encode(sha2::Sha256::digest(&c.der))
    );
}

fn profile_spec(a: &ProfileArgs) -> Result<crate::profile::ProfileSpec> {
    use crate::profile::{
        ApprovalMode, ChallengeMode, KeyPolicy, KeyUsageName, ProfileSpec, SanType,
    };
    let challenge = match a.challenge.as_str() {
        "static" => {
            let secret = match (&a.secret, &a.secret_file) {
                (Some(s), None) => s.clone(),
                (None, Some(f)) => String::from_utf8(read(f, "secret file")?)
                    .map_err(|_| Error::Invalid("the secret file is not text".into()))?
                    .trim_end()
                    .to_owned(),
                _ => {
                    return Err(Error::Invalid(
                        "a static challenge needs --secret or --secret-file".into(),
                    ));
                }
            };
            if secret.len() < 8 {
                return Err(Error::Invalid(
                    "a static challenge must be at least 8 characters".into(),
                ));
            }
            ChallengeMode::Static {
                secret_hash: crate::profile::static_hash(&secret),
            }
        }
        "one-time" => ChallengeMode::OneTime,
        "signed" => ChallengeMode::Signed {
            keys: a
                .mdm_key
                .iter()
                .map(|f| crate::challenge::mdm_key_from_pem(&read(f, "MDM key")?))
                .collect::<Result<_>>()?,
        },
        other => {
            return Err(Error::Invalid(format!(
                "--challenge {other:?}: use static, one-time or signed"
            )));
        }
    };
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    let spec = ProfileSpec {
        name: CaName::new(&a.name)?,
        ca: CaName::new(&a.ca)?,
        subject_attrs: list(&a.subject_attrs)
            .into_iter()
            .map(|s| s.to_ascii_uppercase())
            .collect(),
        san_types: SanType::parse_list(&a.san_types)?,
        ekus: Eku::list(&a.eku)?,
        key_usage: KeyUsageName::parse_list(&a.key_usage)?,
        keys: KeyPolicy {
            rsa_min_bits: a.rsa_min_bits,
            rsa_max_bits: a.rsa_max_bits,
            ec_curves: list(&a.ec_curves),
        },
        validity: Lifetime::new(&a.validity)?,
        renewal_window: Lifetime::new(&a.renewal_window)?,
        approval: match a.approval.as_str() {
            "auto" => ApprovalMode::Auto,
            "manual" => ApprovalMode::Manual,
            other => {
                return Err(Error::Invalid(format!(
                    "--approval {other:?}: use auto or manual"
                )));
            }
        },
        challenge,
        legacy_algorithms: a.legacy_algorithms,
        ra_layout: crate::profile::RaLayout::parse(&a.ra_layout)?,
        ra_windows_eku: a.ra_windows_eku,
        ca_chain: crate::profile::CaCertChain::parse(&a.ca_chain)?,
    };
    spec.check()?;
    Ok(spec)
}

/// A profile as shown: the spec, without the static secret's hash, plus warnings.
pub fn profile_json(p: &crate::profile::ProfileSpec) -> serde_json::Value {
    use crate::profile::ChallengeMode;
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["ra_layout"] = json!(p.ra_layout.as_str());
    v["ca_chain"] = json!(match p.ca_chain {
        crate::profile::CaCertChain::Issuing => "issuing",
        crate::profile::CaCertChain::Full => "full",
    });
    v["ra_windows_eku"] = json!(p.ra_windows_eku);
    v["challenge"] = json!(match &p.challenge {
        ChallengeMode::Static { .. } => "static",
        ChallengeMode::OneTime => "one-time",
        ChallengeMode::Signed { .. } => "signed",
    });
    let mut warnings = Vec::new();
    if p.legacy_algorithms {
        warnings.push("legacy algorithms accepted: DES/3DES envelopes and SHA-1 signatures");
    }
    v["warnings"] = json!(warnings);
    v
}

async fn profile(s: &Session, c: &ProfileCommand) -> Result<()> {
    match c {
        ProfileCommand::Create(a) => {
            let spec = profile_spec(a)?;
            propose(s, Operation::CreateProfile { spec }, a.json.json).await
        }
        ProfileCommand::List(j) => {
            let Response::Profiles { profiles } = s.client.call(&Request::ProfileList).await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                let v: Vec<_> = profiles.iter().map(profile_json).collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "{:<20} {:<20} {:<10} {:<8} LEGACY",
                    "NAME", "CA", "CHALLENGE", "APPROVAL"
                );
                for p in &profiles {
                    let v = profile_json(p);
                    println!(
                        "{:<20} {:<20} {:<10} {:<8} {}",
                        p.name,
                        p.ca,
                        v["challenge"].as_str().unwrap_or(""),
                        v["approval"].as_str().unwrap_or(""),
                        if p.legacy_algorithms {
                            "yes (warning)"
                        } else {
                            "no"
                        }
                    );
                }
            }
            Ok(())
        }
        ProfileCommand::Show { name, json } => {
            let Response::Profile { profile } = s
                .client
                .call(&Request::ProfileShow { name: name.clone() })
                .await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            let v = profile_json(&profile);
            if json.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for w in v["warnings"].as_array().into_iter().flatten() {
                    println!("WARNING: {}", w.as_str().unwrap_or_default());
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            Ok(())
        }
    }
}

async fn challenge(s: &Session, c: &ChallengeCommand) -> Result<()> {
    let ChallengeCommand::New {
        profile,
        subject,
        san,
        ttl,
        json,
    } = c
    else {
        return Ok(());
    };
    let req = Request::ChallengeNew {
        profile: profile.clone(),
        subject: subject.clone(),
        sans: san
            .iter()
            .map(|s| crate::challenge::San::parse(s))
            .collect::<Result<_>>()?,
        ttl_secs: Lifetime::new(ttl)?.secs() as i64,
    };
    let Response::Challenge {
        challenge,
        expires_at,
    } = s.client.call(&req).await?
    else {
        return Err(Error::Transport("unexpected answer".into()));
    };
    if json.json {
        println!(
            "{}",
            json!({ "challenge": challenge, "expires_at": expires_at, "profile": profile })
        );
    } else {
        println!("{challenge}");
    }
    Ok(())
}

async fn request(s: &Session, c: &RequestCommand) -> Result<()> {
    match c {
        RequestCommand::List(j) => {
            let Response::Requests { requests } = s.client.call(&Request::RequestList).await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                let v: Vec<_> = requests
                    .iter()
                    .map(|r| json!({"id": r.id, "profile": r.profile, "transaction_id": r.transaction_id, "subject": r.subject, "sans": r.sans, "created_at": r.created_at, "renewal": r.renewed_from.is_some()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("{:<16} {:<16} SUBJECT", "ID", "PROFILE");
                for r in requests {
                    println!("{:<16} {:<16} {}", r.id, r.profile, r.subject);
                }
            }
            Ok(())
        }
        RequestCommand::Approve { id } => {
            let Response::Issued { ca, serial } = s
                .client
                .call(&Request::RequestApprove { id: id.clone() })
                .await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            println!("issued {serial} from CA {ca}");
            Ok(())
        }
        RequestCommand::Reject { id, reason } => {
            s.client
                .call(&Request::RequestReject {
                    id: id.clone(),
                    reason: reason.clone(),
                })
                .await?;
            println!("request {id} rejected");
            Ok(())
        }
    }
}

async fn propose(s: &Session, operation: Operation, json: bool) -> Result<()> {
    let Response::Whoami { officer, .. } = s.client.call(&Request::Whoami).await? else {
        return Err(Error::Transport("unexpected answer".into()));
    };
    let body = ProposalBody::new(operation, &officer, quorum::DEFAULT_TTL_SECS)?;
    let digest = body.digest()?;
    let approval = quorum::sign_approval(&s.key_pem, &digest, &officer)?;
    let p = expect_proposal(s.client.call(&Request::Propose { body, approval }).await?)?;
    print_proposal(&p, json);
    Ok(())
}

fn expect_proposal(r: Response) -> Result<Proposal> {
    match r {
        Response::Proposal { proposal } => Ok(proposal),
        _ => Err(Error::Transport("unexpected answer".into())),
    }
}

async fn bytes(s: &Session, req: Request) -> Result<Vec<u8>> {
    match s.client.call(&req).await? {
        Response::Bytes { data } => Ok(data),
        _ => Err(Error::Transport("unexpected answer".into())),
    }
}

fn output(data: &[u8], to: Option<&PathBuf>) -> Result<()> {
    match to {
        Some(p) => std::fs::write(p, data)
            .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", p.display()))),
        None => std::io::stdout()
            .write_all(data)
            .map_err(|e| Error::Transport(e.to_string())),
    }
}

async fn ca(s: &Session, c: &CaCommand) -> Result<()> {
    match c {
        CaCommand::List(j) => {
            let Response::Cas { cas } = s.client.call(&Request::CaList).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                println!("{}", serde_json::to_string_pretty(&cas).unwrap_or_default());
            } else {
                println!(
                    "{:<20} {:<8} {:<17} {:<9} {:<10} SUBJECT",
                    "NAME", "KIND", "STATUS", "KEY", "NOT AFTER"
                );
                for ca in cas {
                    println!(
                        "{:<20} {:<8} {:<17} {:<9} {:<10} {}",
                        ca.name,
                        ca.kind,
                        ca.status,
                        ca.key,
                        ca.not_after
                            .as_deref()
                            .map_or("-", |d| d.get(..10).unwrap_or(d)),
                        ca.subject
                    );
                }
            }
            Ok(())
        }
        CaCommand::Show { name, json } => {
            let Response::Ca { ca } = s
                .client
                .call(&Request::CaShow { name: name.clone() })
                .await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if json.json {
                println!("{}", serde_json::to_string_pretty(&ca).unwrap_or_default());
            } else {
                print_ca(&ca);
            }
            Ok(())
        }
        CaCommand::CreateRoot {
            ca,
            validity,
            path_len,
            json,
        } => {
            let spec = spec(ca, Some(validity), *path_len)?;
            propose(s, Operation::CreateRoot { spec }, json.json).await
        }
        CaCommand::CreateIssuing {
            ca,
            parent,
            validity,
            path_len,
            json,
        } => {
            let spec = spec(ca, Some(validity), Some(*path_len))?;
            let parent = CaName::new(parent)?;
            propose(s, Operation::CreateIssuing { parent, spec }, json.json).await
        }
        CaCommand::CreateByoca { ca, json } => {
            let spec = spec(ca, None, None)?;
            propose(s, Operation::CreateByoca { spec }, json.json).await
        }
        CaCommand::Csr {
            name,
            der,
            output: o,
        } => {
            let data = bytes(s, Request::CaCsr { name: name.clone() }).await?;
            let data = if *der {
                data
            } else {
                x509::to_pem("CERTIFICATE REQUEST", &data).into_bytes()
            };
            output(&data, o.as_ref())
        }
        CaCommand::Import {
            name,
            cert,
            chain,
            json,
        } => {
            let certs =
                x509::parse_certificates(&read(cert, "certificate")?, &cert.display().to_string())?;
            let [leaf] = certs.as_slice() else {
                return Err(Error::Invalid(format!(
                    "{} must hold exactly one certificate (put the issuers in --chain)",
                    cert.display()
                )));
            };
            let mut pool = Vec::new();
            for f in chain {
                for c in
                    x509::parse_certificates(&read(f, "chain file")?, &f.display().to_string())?
                {
                    let d = c.to_der()?;
                    if !pool.contains(&d) {
                        pool.push(d);
                    }
                }
            }
            let op = Operation::ImportCa {
                name: CaName::new(name)?,
                cert: leaf.to_der()?,
                chain: pool,
            };
            propose(s, op, json.json).await
        }
        CaCommand::Disable { name, json } => {
            propose(
                s,
                Operation::DisableCa {
                    name: CaName::new(name)?,
                },
                json.json,
            )
            .await
        }
        CaCommand::Enable { name, json } => {
            propose(
                s,
                Operation::EnableCa {
                    name: CaName::new(name)?,
                },
                json.json,
            )
            .await
        }
        CaCommand::Cert {
            name,
            der,
            output: o,
        } => {
            let data = bytes(s, Request::CaCert { name: name.clone() }).await?;
            let data = if *der {
                data
            } else {
                x509::to_pem("CERTIFICATE", &data).into_bytes()
            };
            output(&data, o.as_ref())
        }
        CaCommand::Revoke { name, reason, json } => {
            reason.parse::<crl::Reason>().map_err(Error::Invalid)?;
            let op = Operation::RevokeCa {
                name: CaName::new(name)?,
                reason: reason.clone(),
            };
            propose(s, op, json.json).await
        }
        CaCommand::Crl {
            name,
            pem,
            output: o,
        } => {
            let data = bytes(s, Request::CaCrl { name: name.clone() }).await?;
            let data = if *pem {
                x509::to_pem("X509 CRL", &data).into_bytes()
            } else {
                data
            };
            output(&data, o.as_ref())
        }
        CaCommand::Chain { name, output: o } => {
            let data = bytes(s, Request::CaChain { name: name.clone() }).await?;
            output(&data, o.as_ref())
        }
    }
}

async fn proposal(s: &Session, c: &ProposalCommand) -> Result<()> {
    match c {
        ProposalCommand::List(j) => {
            let Response::Proposals { proposals } = s.client.call(&Request::ProposalList).await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                let v: Vec<_> = proposals.iter().map(proposal_json).collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("{:<32} {:<9} {:<9} SUMMARY", "ID", "STATUS", "APPROVALS");
                for p in proposals {
                    println!(
                        "{:<32} {:<9} {:<9} {}",
                        p.body.id,
                        p.status,
                        format!("{}/{}", p.approvals.len(), p.quorum),
                        p.body.operation.summary()
                    );
                }
            }
            Ok(())
        }
        ProposalCommand::Show { id, json } => {
            let p = expect_proposal(
                s.client
                    .call(&Request::ProposalShow { id: id.clone() })
                    .await?,
            )?;
            if json.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&proposal_json(&p)).unwrap_or_default()
                );
            } else {
                print_proposal(&p, false);
                println!(
                    "operation:\n{}",
                    serde_json::to_string_pretty(&p.body.operation).unwrap_or_default()
                );
            }
            Ok(())
        }
        ProposalCommand::Approve { id, digest, json } => {
            let Response::Whoami { officer, .. } = s.client.call(&Request::Whoami).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            let p = expect_proposal(
                s.client
                    .call(&Request::ProposalShow { id: id.clone() })
                    .await?,
            )?;
            // Sign what the proposal says, not what the signer claims its digest is.
            let ours = p.body.digest()?;
            if hex::encode(ours) != p.digest {
                return Err(Error::Forbidden(format!(
                    "the signer reports digest {} but the proposal's content hashes to {}: not approving",
                    p.digest,
                    hex::encode(ours)
                )));
            }
            if let Some(expected) = digest
                && !expected.eq_ignore_ascii_case(&p.digest)
            {
                return Err(Error::Forbidden(format!(
                    "proposal {id} has digest {}, not the {expected} you reviewed: not approving",
                    p.digest
                )));
            }
            let approval = quorum::sign_approval(&s.key_pem, &ours, &officer)?;
            let p = expect_proposal(
                s.client
                    .call(&Request::Approve {
                        id: id.clone(),
                        approval,
                    })
                    .await?,
            )?;
            print_proposal(&p, json.json);
            Ok(())
        }
        ProposalCommand::Reject { id, reason, json } => {
            let p = expect_proposal(
                s.client
                    .call(&Request::Reject {
                        id: id.clone(),
                        reason: reason.clone(),
                    })
                    .await?,
            )?;
            print_proposal(&p, json.json);
            Ok(())
        }
    }
}

/// The stable JSON shape of a proposal for scripts.
pub fn proposal_json(p: &Proposal) -> serde_json::Value {
    json!({
        "id": p.body.id,
        "digest": p.digest,
        "status": p.status.to_string(),
        "approvals": p.approvals.len(),
        "quorum": p.quorum,
        "approved_by": p.approvals.iter().map(|a| a.officer.clone()).collect::<Vec<_>>(),
        "summary": p.body.operation.summary(),
        "proposer": p.body.proposer,
        "created_at": p.body.created_at,
        "expires_at": p.body.expires_at,
        "outcome": p.outcome,
        "operation": p.body.operation,
    })
}

fn print_proposal(p: &Proposal, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&proposal_json(p)).unwrap_or_default()
        );
        return;
    }
    println!("proposal  {}", p.body.id);
    println!("summary   {}", p.body.operation.summary());
    println!("digest    {}", p.digest);
    println!(
        "approvals {}/{} ({})",
        p.approvals.len(),
        p.quorum,
        p.approvals
            .iter()
            .map(|a| a.officer.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("status    {}", p.status);
    if let Some(o) = &p.outcome {
        println!("outcome   {o}");
    }
}

fn print_ca(ca: &CaView) {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    println!("name        {}", ca.name);
    println!("kind        {}", ca.kind);
    if let Some(p) = &ca.parent {
        println!("parent      {p}");
    }
    println!("status      {}", ca.status);
    println!("subject     {}", ca.subject);
    println!("issuer      {}", opt(&ca.issuer));
    println!("key         {}", ca.key);
    println!("hash        {}", ca.hash);
    println!("ekus        {}", ca.ekus.join(", "));
    println!(
        "path-len    {}",
        ca.path_len.map_or("unlimited".into(), |p| p.to_string())
    );
    println!("serial      {}", opt(&ca.serial));
    println!("not-before  {}", opt(&ca.not_before));
    println!("not-after   {}", opt(&ca.not_after));
    println!("sha256      {}", opt(&ca.sha256_fingerprint));
    println!("key-id      {}", ca.key_id);
    if let Some(a) = &ca.key_attributes {
        println!(
            "key-attrs   token={} private={} sensitive={} always-sensitive={} extractable={} never-extractable={} local={} => {}",
            a.token,
            a.private,
            a.sensitive,
            a.always_sensitive,
            a.extractable,
            a.never_extractable,
            a.local,
            if a.sound { "ok" } else { "FAILS CHECK" }
        );
    }
}
