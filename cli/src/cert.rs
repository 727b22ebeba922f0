//! `castellan cert …`: revoke, list, show, get, stats and export.

use proto::admin::{Request, Response};

use crate::args::*;
use crate::session::{Session, output};
use serde_json::json;

use crate::{Error, Result};

pub async fn cert(s: &Session, c: &CertCommand) -> Result<()> {
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
        CertCommand::Export {
            ca,
            status,
            search,
            name,
            expires,
            output: o,
        } => {
            let req = Request::CertExport {
                name: name.clone(),
                ca: ca.clone(),
                status: status.as_deref().map(str::parse).transpose()?,
                search: search.clone(),
                expires: expires.range()?,
            };
            let Response::Bytes { data } = s.client.call(&req).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            output(&data, o.as_ref())
        }
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
                proto::pem::to_pem("CERTIFICATE", &c.der).into_bytes()
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
                "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "CA", "ACTIVE", "EXP<=30D", "EXPIRED", "REVOKED", "TOTAL", "PENDING"
            );
            let mut all = proto::admin::CaCertStats {
                ca: "(all)".into(),
                ..Default::default()
            };
            for c in &cas {
                all.active += c.active;
                all.expired += c.expired;
                all.revoked += c.revoked;
                all.total += c.total;
                all.pending += c.pending;
                all.expiring.days30 += c.expiring.days30;
            }
            for c in cas.iter().chain(std::iter::once(&all)) {
                println!(
                    "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    c.ca, c.active, c.expiring.days30, c.expired, c.revoked, c.total, c.pending
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
) -> Result<proto::admin::CertDetail> {
    let serial = proto::model::Serial::parse(serial)?.into_hex();
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
    use proto::admin::Status;
    let status = a.status.as_deref().map(str::parse::<Status>).transpose()?;
    if !(1..=proto::admin::MAX_LIMIT).contains(&a.limit) {
        return Err(Error::Invalid(format!(
            "--limit {}: give 1 to {}",
            a.limit,
            proto::admin::MAX_LIMIT
        )));
    }
    let expires = a.expires.range()?;
    let mut certs = Vec::new();
    let mut after = a.after.clone();
    let next = loop {
        let req = Request::CertList {
            ca: a.ca.clone(),
            status,
            search: a.search.clone(),
            limit: Some(a.limit - certs.len() as u32),
            after: after.clone(),
            expires,
            name: a.name.clone(),
        };
        let Response::Certs { certs: page, next } = s.client.call(&req).await? else {
            return Err(Error::Transport("unexpected answer".into()));
        };
        certs.extend(page);
        // A search or an expiry range may return short pages (a scan's budget): follow on.
        let scan = a.search.is_some() || a.name.is_some() || !expires.is_any();
        if !scan || next.is_none() || certs.len() >= a.limit as usize {
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
        for c in &certs {
            let line: Vec<String> = c.csv_fields().iter().map(|f| csv_field(f)).collect();
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
                .map(|t| proto::rfc3339(t)[..10].to_owned())
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

fn print_cert(c: &proto::admin::CertDetail) {
    use proto::rfc3339;
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
