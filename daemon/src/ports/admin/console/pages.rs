//! The console's pages, as maud templates (compiled in; every value is HTML-escaped).

use maud::{DOCTYPE, Markup, html};

use crate::Result;
use crate::engine::Signer;
use crate::ports::admin::access::{Access, cas_with, operation_scope};
use crate::report::Scope;
use proto::roles::Permission;

fn layout(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Castellan" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header {
                    p { a href="/" { "Castellan" } }
                    h1 { (title) }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

/// An error page: the status and the same reason the CLI would print.
pub fn refusal(status: u16, why: &str) -> String {
    layout(
        &status.to_string(),
        html! {
            p { (why) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

fn time(t: i64) -> String {
    proto::rfc3339(t)
}

/// Every CA the viewer may read, with its certificate counts and CRL, and the pending
/// proposals they can see.
pub fn overview(signer: &Signer, access: &Access) -> Result<String> {
    let grants = &access.grants;
    let visible = cas_with(signer.store(), grants, Permission::CaRead)?;
    let stats = crate::report::stats(signer.store(), &Scope::Only(visible.clone()), crate::now())?;
    let now = crate::now();
    let warn = signer.revocation().timing().warn_before_secs;
    let mut rows = Vec::new();
    for ca in signer.store().cas()? {
        let name = ca.spec.name.to_string();
        if !visible.contains(&name) {
            continue;
        }
        let counts = stats
            .iter()
            .find(|s| s.ca == name)
            .cloned()
            .unwrap_or_default();
        let crl = signer
            .revocation()
            .current_crl(&name)?
            .map(|c| c.state.clone());
        rows.push((ca, counts, crl));
    }
    let pending = signer
        .store()
        .proposals()?
        .into_iter()
        .filter(|p| p.status_at(now) == proto::governance::Status::Pending)
        .filter(|p| {
            operation_scope(signer.store(), &p.body.operation)
                .ok()
                .flatten()
                .is_none_or(|(_, tags)| grants.sees(&tags))
        })
        .count();
    Ok(layout(
        "Certificate authorities",
        html! {
            table {
                caption { (rows.len()) " CAs you may read" }
                thead {
                    tr {
                        th scope="col" { "CA" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Status" }
                        th scope="col" { "Tags" }
                        th scope="col" { "Active" }
                        th scope="col" { "Expired" }
                        th scope="col" { "Revoked" }
                        th scope="col" { "Pending" }
                        th scope="col" { "CRL" }
                        th scope="col" { "CRL next update" }
                    }
                }
                tbody {
                    @for (ca, counts, crl) in &rows {
                        tr {
                            td { a href={ "/ca/" (ca.spec.name) } { (ca.spec.name) } }
                            td { (format!("{:?}", ca.kind).to_lowercase()) }
                            td { (ca.status) }
                            td { (ca.spec.scope().iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")) }
                            td.n { (counts.active) }
                            td.n { (counts.expired) }
                            td.n { (counts.revoked) }
                            td.n { (counts.pending) }
                            @match crl {
                                Some(c) => {
                                    td.n { (c.number) }
                                    @if now >= c.next_update - warn {
                                        td.warn { (time(c.next_update)) " (due)" }
                                    } @else {
                                        td { (time(c.next_update)) }
                                    }
                                }
                                None => { td { "none" } td { "" } }
                            }
                        }
                    }
                }
            }
            p { "Pending proposals: " (pending) }
        },
    ))
}

/// One CA: its properties, its certificate to download, its CRL and its profiles.
pub fn ca(signer: &Signer, name: &str) -> Result<String> {
    let record = signer.cas().ca(name)?;
    let view = signer.cas().view(&record, false)?;
    let crl = signer
        .revocation()
        .current_crl(name)?
        .map(|c| c.state.clone());
    let base = signer.public_url().trim_end_matches('/').to_owned();
    let profiles: Vec<proto::profile::ProfileSpec> = signer
        .store()
        .values::<proto::profile::ProfileSpec>(crate::store::Table::Profiles)?
        .into_iter()
        .filter(|p| p.ca.as_str() == name)
        .collect();
    let field = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    Ok(layout(
        &format!("CA {name}"),
        html! {
            dl {
                dt { "Subject" } dd { (view.subject) }
                dt { "Kind" } dd { (view.kind) }
                dt { "Status" } dd { (view.status) }
                dt { "Parent" } dd { (field(&view.parent)) }
                dt { "Issuer" } dd { (field(&view.issuer)) }
                dt { "Key" } dd { (view.key) }
                dt { "Hash" } dd { (view.hash) }
                dt { "Serial" } dd { code { (field(&view.serial)) } }
                dt { "Not before" } dd { (field(&view.not_before)) }
                dt { "Not after" } dd { (field(&view.not_after)) }
                dt { "SHA-256" } dd { code { (field(&view.sha256_fingerprint)) } }
                dt { "EKUs" } dd { (view.ekus.join(", ")) }
                dt { "Tags" } dd { (view.tags.join(", ")) }
                dt { "CRL" } dd {
                    @match &crl {
                        Some(c) => { "number " (c.number) ", " (c.entries) " entries, next update " (time(c.next_update)) }
                        None => { "none yet" }
                    }
                }
                dt { "CRL URL" } dd { code { (base) "/crl/" (name) ".crl" } }
                dt { "AIA URL" } dd { code { (base) "/aia/" (name) ".crt" } }
            }
            @if record.cert.is_some() {
                p { a href={ "/ca/" (name) "/cert.pem" } download { "Download the certificate (PEM)" } }
            }
            h2 { "SCEP profiles" }
            @if profiles.is_empty() {
                p { "None." }
            } @else {
                ul {
                    @for p in &profiles {
                        li { (p.name) ": " code { (base) "/scep/" (p.name) } }
                    }
                }
            }
        },
    ))
}
