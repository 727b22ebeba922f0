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
                    nav {
                        a href="/" { "Castellan" } " · "
                        a href="/certs" { "Certificates" } " · "
                        a href="/proposals" { "Proposals" } " · "
                        a href="/requests" { "Requests" } " · "
                        a href="/audit" { "Audit log" }
                    }
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

/// `YYYY-MM-DD` of a time (UTC).
fn date(t: i64) -> String {
    proto::rfc3339(t).chars().take(10).collect()
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
                        th scope="col" { abbr title="active, expiring within 7 days" { "≤ 7 d" } }
                        th scope="col" { abbr title="active, expiring within 30 days" { "≤ 30 d" } }
                        th scope="col" { abbr title="active, expiring within 90 days" { "≤ 90 d" } }
                        th scope="col" { "Expired" }
                        th scope="col" { "Revoked" }
                        th scope="col" { "Pending" }
                        th scope="col" { "CRL" }
                        th scope="col" { "CRL next update" }
                        th scope="col" { "OCSP responder" }
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
                            @for (n, days) in [(counts.expiring.days7, 7), (counts.expiring.days30, 30), (counts.expiring.days90, 90)] {
                                td.n {
                                    @if n > 0 {
                                        a href={ "/certs?ca=" (ca.spec.name) "&status=active&expires_until=" (date(now + days * 86_400)) } { (n) }
                                    } @else {
                                        (n)
                                    }
                                }
                            }
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
                            td { (ocsp_state(ca, now)) }
                        }
                    }
                }
            }
            p {
                a href="/proposals" { "Pending proposals" } ": " (pending) ". "
                a href="/requests" { "Requests awaiting approval" } ": "
                (stats.iter().map(|s| s.pending).sum::<u64>()) "."
            }
            (health(&signer.store().status(), &signer.keys().store().health()))
        },
    ))
}

/// The store's and the token's health: one line each, marked while either is down.
fn health(store: &crate::store::health::StoreStatus, token: &hsm::TokenHealth) -> Markup {
    html! {
        p {
            "Store: "
            @if store.up {
                "up"
            } @else {
                span.warn {
                    "refusing writes since " (time(store.down_since.unwrap_or_default()))
                    " (" (store.cause.as_deref().unwrap_or("")) "), reopening automatically"
                }
            }
            " (I/O failures " (store.failures) ", reopened " (store.reopens) "). Token: "
            @if token.up {
                "up"
            } @else {
                span.warn { "unavailable since " (time(token.down_since.unwrap_or_default())) ", retried at every request" }
            }
            " (sessions lost " (token.losses) ", recovered " (token.recoveries) ")."
        }
    }
}

/// The OCSP responder of a CA: its certificate's end, or when it will be made.
fn ocsp_state(ca: &crate::store::rows::CaRecord, now: i64) -> String {
    use der::Decode;
    if ca.cert.is_none() {
        return "none (no CA certificate)".into();
    }
    let Some(rec) = &ca.ocsp else {
        return "made at the first request".into();
    };
    match x509_cert::Certificate::from_der(&rec.cert) {
        Ok(c) => {
            let end = crate::issuance::x509::cert_window(&c).1;
            if end <= now {
                format!(
                    "certificate expired {}, renewed at the next request",
                    time(end)
                )
            } else {
                format!("ready, certificate until {}", time(end))
            }
        }
        Err(e) => format!("unreadable certificate: {e}"),
    }
}

/// Issuance per day as a bar chart (server-drawn SVG, no script; presentation attributes
/// only, so the CSP needs no inline style). `per_day` is oldest first, ending today.
fn issuance_chart(per_day: &[u64], today: i64) -> Markup {
    const W: usize = 4;
    const H: u64 = 80;
    let max = per_day.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = per_day.iter().sum();
    let width = per_day.len() * W + 40;
    let first = today - per_day.len() as i64 + 1;
    let label = |d: i64| date(d * 86400);
    html! {
        figure {
            svg xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height=(H + 24)
                viewBox={ "0 0 " (width) " " (H + 24) }
                aria-label={ (total) " certificates issued in the last " (per_day.len()) " days, at most " (max) " on one day" } {
                line x1="0" y1=(H) x2=(per_day.len() * W) y2=(H) stroke="currentColor" {}
                @for (i, n) in per_day.iter().enumerate() {
                    @if *n > 0 {
                        @let h = (n * H).div_ceil(max);
                        rect x=(i * W) y=(H - h) width=(W - 1) height=(h) fill="#2b6cb0" {
                            title { (label(first + i as i64)) ": " (n) }
                        }
                    }
                }
                text x=(per_day.len() * W + 2) y="10" font-size="10" fill="currentColor" { (max) }
                text x="0" y=(H + 14) font-size="10" fill="currentColor" { (label(first)) }
                text x=(per_day.len() * W) y=(H + 14) font-size="10" text-anchor="end" fill="currentColor" { (label(today)) }
            }
            figcaption { (total) " certificates issued in the last " (per_day.len()) " days (UTC days; busiest day " (max) ")." }
        }
    }
}

/// Days in a CA page's issuance chart.
const CHART_DAYS: usize = 90;

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
    let now = crate::now();
    let per_day = crate::report::issued_per_day(signer.store(), name, CHART_DAYS, now)?;
    let file = |f: &str| format!("/ca/{name}/{f}");
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
                dt { "OCSP URL" } dd { code { (base) "/ocsp" } " (responder: " (ocsp_state(&record, now)) ")" }
            }
            h2 { "Downloads" }
            ul {
                @if record.cert.is_some() {
                    li { a href=(file("cert.der")) download { "Certificate (DER)" } }
                    li { a href=(file("cert.pem")) download { "Certificate (PEM)" } }
                    li { a href=(file("chain.p7b")) download { "Chain up to the root (PKCS#7, .p7b)" } }
                    @if crl.is_some() {
                        li { a href=(file("crl.der")) download { "Current CRL (DER)" } }
                    }
                } @else {
                    li { "No certificate yet." }
                }
                @if record.csr.is_some() && record.cert.is_none() {
                    li { a href=(file("csr.pem")) download { "Certificate signing request to take to the parent CA (PEM)" } }
                }
            }
            h2 { "Issuance, last " (CHART_DAYS) " days" }
            (issuance_chart(&per_day, crate::report::day_of(now)))
            p { a href={ "/certs?ca=" (super::query::encode(name)) } { "This CA's certificates" } }
            h2 { "Profiles" }
            @if profiles.is_empty() {
                p { "None." }
            } @else {
                ul {
                    @for p in &profiles {
                        @match &p.pkcs {
                            None => { li { (p.name) " (SCEP): " code { (base) "/scep/" (p.name) } } }
                            Some(k) => { li { (p.name) " (PKCS#12, keys made by the signer: " (k.key_types.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) "; " (k.encoding) "): " code { "castellan pkcs12 issue --profile " (p.name) } } }
                        }
                    }
                }
            }
        },
    ))
}

/// A page of certificates (and pending requests) matching a filter, with a link to the next
/// page: the same listing and cursors as `castellan cert list`.
pub fn certs(
    visible: &std::collections::BTreeSet<String>,
    certs: &[proto::admin::CertSummary],
    next: Option<String>,
    query: &super::query::CertQuery,
) -> String {
    let next = next.as_ref().map(|cursor| {
        format!(
            "/certs?{}after={}",
            query.params(),
            super::query::encode(cursor)
        )
    });
    let chosen = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let csv = format!("/certs.csv?{}", query.params());
    layout(
        "Certificates",
        html! {
            form method="get" action="/certs" {
                label for="ca" { "CA " }
                select id="ca" name="ca" {
                    option value="" { "any" }
                    @for ca in visible {
                        option value=(ca) selected[chosen(&query.ca, ca)] { (ca) }
                    }
                }
                " "
                label for="status" { "Status " }
                select id="status" name="status" {
                    option value="" { "any" }
                    @for s in ["active", "expired", "revoked", "pending"] {
                        option value=(s) selected[chosen(&query.status, s)] { (s) }
                    }
                }
                " "
                label for="name" { "Name starts with " }
                input id="name" name="name" type="search" value=(query.name.clone().unwrap_or_default());
                " "
                label for="search" { "Subject, SAN or serial contains " }
                input id="search" name="search" type="search" value=(query.search.clone().unwrap_or_default());
                " "
                label for="expires_from" { "Expiring from " }
                input id="expires_from" name="expires_from" type="date" value=(query.expires_from.clone().unwrap_or_default());
                " "
                label for="expires_until" { "until " }
                input id="expires_until" name="expires_until" type="date" value=(query.expires_until.clone().unwrap_or_default());
                " "
                button type="submit" { "Search" }
            }
            table {
                caption { (certs.len()) " on this page" }
                thead {
                    tr {
                        th scope="col" { "Serial" }
                        th scope="col" { "CA" }
                        th scope="col" { "Status" }
                        th scope="col" { "Subject" }
                        th scope="col" { "SANs" }
                        th scope="col" { "Profile" }
                        th scope="col" { "Not after" }
                    }
                }
                tbody {
                    @for c in certs {
                        tr {
                            td {
                                @match (&c.serial, &c.request) {
                                    (Some(s), _) => { a href={ "/cert/" (c.ca) "/" (s) } { code { (s) } } }
                                    (None, Some(r)) => { "request " code { (r) } }
                                    (None, None) => { "" }
                                }
                            }
                            td { (c.ca) }
                            td { (c.status) }
                            td { (c.subject) }
                            td { (c.sans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            td { (c.profile) }
                            td { (c.not_after.map(time).unwrap_or_default()) }
                        }
                    }
                }
            }
            p {
                @if let Some(link) = &next {
                    a href=(link) rel="next" { "Next page" } " · "
                }
                a href=(csv) download { "Export every match as CSV" }
            }
        },
    )
}

/// The outcome of a form, with the way back.
pub fn done(message: &str, back: &str) -> String {
    layout(
        "Done",
        html! {
            p role="status" { (message) }
            p { a href=(back) { "Back" } }
        },
    )
}

/// One certificate, everything `castellan cert show` prints; with `csrf`, the viewer may
/// revoke it, and the form (a reason and a confirmation box) is shown.
pub fn cert(d: &proto::admin::CertDetail, csrf: Option<&str>) -> String {
    layout(
        &format!("Certificate {}", d.serial),
        html! {
            dl {
                dt { "CA" } dd { a href={ "/ca/" (d.ca) } { (d.ca) } }
                dt { "Serial" } dd { code { (d.serial) } }
                dt { "Status" } dd { (d.status) }
                dt { "Subject" } dd { (d.subject) }
                dt { "SANs" } dd { (d.sans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                dt { "Profile" } dd { (d.profile) }
                dt { "Not before" } dd { (time(d.not_before)) }
                dt { "Not after" } dd { (time(d.not_after)) }
                dt { "Issued" } dd { (time(d.issued_at)) }
                dt { "Revoked" } dd {
                    @match d.revoked_at {
                        Some(t) => { (time(t)) " (" (d.revocation_reason.clone().unwrap_or_else(|| "unspecified".into())) ")" }
                        None => { "no" }
                    }
                }
                dt { "SCEP transaction" } dd { code { (d.transaction_id) } }
                dt { "Renewed from" } dd { (d.renewed_from.clone().unwrap_or_else(|| "—".into())) }
                dt { "Key SHA-256" } dd { code { (d.key_hash) } }
                dt { "Certificate SHA-256" } dd { code { (hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&d.der))) } }
            }
            h2 { "Downloads" }
            ul {
                li { a href={ "/cert/" (d.ca) "/" (d.serial) "/cert.pem" } download { "Certificate (PEM)" } }
                li { a href={ "/cert/" (d.ca) "/" (d.serial) "/cert.der" } download { "Certificate (DER)" } }
                li { a href={ "/ca/" (d.ca) "/chain.p7b" } download { "Issuing CA chain (PKCS#7)" } }
            }
            @if let (Some(token), None) = (csrf, d.revoked_at) {
                h2 { "Revoke" }
                form method="post" action={ "/cert/" (d.ca) "/" (d.serial) "/revoke" } {
                    input type="hidden" name="csrf" value=(token);
                    label for="reason" { "Reason " }
                    select id="reason" name="reason" {
                        @for r in ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold"] {
                            option value=(r) { (r) }
                        }
                    }
                    " "
                    input id="confirm" type="checkbox" name="confirm" value="yes" required;
                    label for="confirm" { " I mean to revoke " (d.serial) " of CA " (d.ca) }
                    " "
                    button type="submit" { "Revoke" }
                }
            }
        },
    )
}

/// The proposals the viewer can see (with their status as of now); approving needs an officer's own signature, so a
/// pending one shows the command that makes it.
pub fn proposals(proposals: &[proto::governance::Proposal]) -> String {
    let list: Vec<&proto::governance::Proposal> = proposals.iter().rev().collect();
    layout(
        "Proposals",
        html! {
            table {
                caption { (list.len()) " proposals, newest first" }
                thead {
                    tr {
                        th scope="col" { "Proposal" }
                        th scope="col" { "Status" }
                        th scope="col" { "Approvals" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Digest and how to approve" }
                    }
                }
                tbody {
                    @for p in &list {
                        @let status = p.status.clone();
                        tr {
                            td { (p.body.operation.summary()) br; code { (p.body.id) } }
                            td { (status) }
                            td.n { (p.approvals.len()) "/" (p.quorum) }
                            td { (time(p.body.expires_at)) }
                            td {
                                code { (p.digest) }
                                @if status == proto::governance::Status::Pending {
                                    br;
                                    code { "castellan proposal approve " (p.body.id) " --digest " (p.digest) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A page of audit entries (newest last, as `castellan audit list`), with the filters, and
/// the latest checkpoint checked against the audit key's certificate.
pub fn audit(
    signer: &Signer,
    entries: &[proto::admin::AuditView],
    next: Option<u64>,
    query: &super::query::AuditQuery,
) -> Result<String> {
    let checkpoint = signer.store().last_checkpoint()?;
    let state = match &checkpoint {
        None => "no checkpoint yet".to_owned(),
        Some(note) => checkpoint_state(signer, note),
    };
    let unsigned = signer.audit().unsigned()?;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let next = next.map(|n| {
        let mut link = String::from("/audit?");
        for (k, v) in [
            ("actor", &query.actor),
            ("action", &query.action),
            ("ca", &query.ca),
        ] {
            if let Some(v) = v {
                link.push_str(&format!("{k}={}&", super::query::encode(v)));
            }
        }
        link.push_str(&format!("after={n}"));
        link
    });
    Ok(layout(
        "Audit log",
        html! {
            p { "Latest checkpoint: " (state) ". Entries not yet in a checkpoint: " (unsigned) "." }
            p { "Verify an export offline with " code { "castellan audit verify FILE --root admin-ca.pem" } "." }
            form method="get" action="/audit" {
                label for="actor" { "Actor " }
                input id="actor" name="actor" value=(value(&query.actor));
                " "
                label for="action" { "Action " }
                input id="action" name="action" value=(value(&query.action));
                " "
                label for="ca" { "CA " }
                input id="ca" name="ca" value=(value(&query.ca));
                " "
                button type="submit" { "Filter" }
            }
            table {
                caption { (entries.len()) " entries on this page" }
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "Time" }
                        th scope="col" { "Actor" }
                        th scope="col" { "Action" }
                        th scope="col" { "Detail" }
                        th scope="col" { "CA" }
                        th scope="col" { "Permission" }
                        th scope="col" { "Outcome" }
                        th scope="col" { "From" }
                    }
                }
                tbody {
                    @for e in entries {
                        tr {
                            td.n { (e.seq) }
                            td { (time(e.at)) }
                            td { (e.actor) }
                            td { (e.action) }
                            td { (e.detail) }
                            td { (value(&e.ca)) }
                            td { (value(&e.permission)) }
                            td { (value(&e.outcome)) }
                            td { (value(&e.source)) }
                        }
                    }
                }
            }
            @if let Some(link) = &next {
                p { a href=(link) rel="next" { "Next page" } }
            }
        },
    ))
}

/// "size N, signature verified", or why not.
fn checkpoint_state(signer: &Signer, note: &str) -> String {
    let check = || -> std::result::Result<u64, String> {
        use der::{Decode, Encode};
        let id = signer.store().admin_identity().map_err(|e| e.to_string())?;
        let cert = id.audit_cert.ok_or("no audit key yet")?;
        let der = proto::b64::decode(&cert).map_err(|e| e.to_string())?;
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| e.to_string())?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| e.to_string())?;
        let note = proto::audit::Note::parse(note).map_err(|e| e.to_string())?;
        note.verify_ecdsa_p256(crate::audit::ORIGIN, &spki)
            .map_err(|e| e.to_string())?;
        Ok(proto::audit::Checkpoint::parse(&note.text)
            .map_err(|e| e.to_string())?
            .size)
    };
    match check() {
        Ok(size) => format!("{size} entries, signature verified with the audit key"),
        Err(e) => format!("NOT VERIFIED: {e}"),
    }
}

/// SCEP requests waiting for manual approval, with a form to decide each (when a CSRF token
/// could be made) and the commands that do the same.
pub fn requests(requests: &[proto::admin::PendingView], csrf: Option<&str>) -> String {
    layout(
        "Requests awaiting approval",
        html! {
            @if requests.is_empty() {
                p { "None." }
            } @else {
                table {
                    caption { (requests.len()) " waiting" }
                    thead {
                        tr {
                            th scope="col" { "Request" }
                            th scope="col" { "Profile" }
                            th scope="col" { "Subject" }
                            th scope="col" { "SANs" }
                            th scope="col" { "Received" }
                            th scope="col" { "Decide with" }
                        }
                    }
                    tbody {
                        @for r in requests {
                            tr {
                                td { code { (r.id) } }
                                td { (r.profile) }
                                td { (r.subject) }
                                td { (r.sans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                                td { (time(r.created_at)) }
                                td {
                                    @if let Some(token) = csrf {
                                        form method="post" action={ "/request/" (r.id) "/approve" } {
                                            input type="hidden" name="csrf" value=(token);
                                            button type="submit" { "Approve and issue" }
                                        }
                                        form method="post" action={ "/request/" (r.id) "/reject" } {
                                            input type="hidden" name="csrf" value=(token);
                                            label for={ "reason-" (r.id) } { "Reason " }
                                            input id={ "reason-" (r.id) } name="reason" required maxlength="200";
                                            " "
                                            button type="submit" { "Reject" }
                                        }
                                    }
                                    code { "castellan request approve " (r.id) }
                                    br;
                                    code { "castellan request reject " (r.id) " --reason ..." }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proto::admin::{CertDetail, CertSummary, PendingView, Status};
    use proto::model::San;

    const HOSTILE: &str = "CN=<script>alert(1)</script>\"' onload=x&amp;";

    #[test]
    fn health_marks_a_down_store_and_a_missing_token() {
        use crate::store::health::StoreStatus;
        let up = StoreStatus {
            up: true,
            down_since: None,
            cause: None,
            failures: 1,
            reopens: 1,
        };
        let token = hsm::TokenHealth {
            up: true,
            down_since: None,
            losses: 2,
            recoveries: 2,
        };
        let fine = health(&up, &token).into_string();
        assert!(!fine.contains("warn"), "{fine}");
        assert!(
            fine.contains("Store: up (I/O failures 1, reopened 1)"),
            "{fine}"
        );
        let down = StoreStatus {
            up: false,
            down_since: Some(1_767_225_600),
            cause: Some(HOSTILE.into()),
            ..up
        };
        let gone = hsm::TokenHealth {
            up: false,
            down_since: Some(1_767_225_600),
            ..token
        };
        let bad = health(&down, &gone).into_string();
        assert!(bad.contains("refusing writes since 2026-01-01"), "{bad}");
        assert!(bad.contains("unavailable since 2026-01-01"), "{bad}");
        assert_eq!(bad.matches("class=\"warn\"").count(), 2, "{bad}");
        assert_escaped(&bad);
    }

    /// No hostile markup survives: the tag, the quote that would end an attribute.
    fn assert_escaped(page: &str) {
        assert!(!page.contains("<script"), "unescaped script tag in {page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("\"' onload"), "an attribute could be closed");
    }

    fn summary(subject: &str) -> CertSummary {
        CertSummary {
            ca: "issuing".into(),
            serial: Some("0a1b".into()),
            request: None,
            status: Status::Active,
            subject: subject.into(),
            sans: vec![San::Dns(format!("{subject}.example"))],
            profile: "wifi".into(),
            not_before: Some(0),
            not_after: Some(86_400),
            revoked_at: None,
        }
    }

    fn detail(subject: &str) -> CertDetail {
        CertDetail {
            ca: "issuing".into(),
            serial: "0a1b".into(),
            status: Status::Active,
            subject: subject.into(),
            sans: vec![San::Email(subject.into())],
            profile: "wifi".into(),
            not_before: 0,
            not_after: 86_400,
            issued_at: 0,
            revoked_at: None,
            revocation_reason: None,
            transaction_id: subject.into(),
            renewed_from: None,
            key_hash: "00".into(),
            der: vec![0x30, 0],
        }
    }

    #[test]
    fn empty_lists_render() {
        let q = super::super::query::CertQuery::default();
        let page = certs(&Default::default(), &[], None, &q);
        assert!(page.contains("0 on this page"));
        assert!(!page.contains("rel=\"next\""));
        assert!(page.contains("href=\"/certs.csv?\""));
        assert!(requests(&[], Some("t")).contains("None."));
        assert!(proposals(&[]).contains("0 proposals"));
    }

    #[test]
    fn hostile_subjects_and_sans_are_escaped() {
        let q = super::super::query::CertQuery {
            search: Some(HOSTILE.into()),
            ..Default::default()
        };
        let visible = [HOSTILE.to_owned()].into_iter().collect();
        let page = certs(&visible, &[summary(HOSTILE)], Some("c&d".into()), &q);
        assert_escaped(&page);
        // The search is carried, percent-encoded, into the next page and the CSV export.
        assert!(page.contains("search=CN%3D%3Cscript%3E"));
        assert!(page.contains("after=c%26d"));
        assert_escaped(&cert(&detail(HOSTILE), Some("tok")));
        let pending = PendingView {
            id: "r1".into(),
            profile: "wifi".into(),
            transaction_id: "t".into(),
            subject: HOSTILE.into(),
            sans: vec![],
            csr: vec![],
            created_at: 0,
            renewed_from: None,
            tx_key: "k".into(),
        };
        assert_escaped(&requests(&[pending], Some("tok")));
        assert_escaped(&refusal(400, HOSTILE));
        assert_escaped(&done(HOSTILE, "/"));
    }

    #[test]
    fn very_long_subjects_render_whole() {
        let long = format!("CN={}", "x".repeat(20_000));
        let page = cert(&detail(&long), None);
        assert!(page.contains(&long));
        // Without a token there is no form (the viewer may not revoke).
        assert!(!page.contains("<form"));
        let page = cert(&detail(&long), Some("tok"));
        assert!(page.contains("name=\"csrf\" value=\"tok\""));
        assert!(page.contains("name=\"confirm\""));
    }

    #[test]
    fn request_forms_need_a_token() {
        let pending = PendingView {
            id: "r1".into(),
            profile: "wifi".into(),
            transaction_id: "t".into(),
            subject: "CN=a".into(),
            sans: vec![],
            csr: vec![],
            created_at: 0,
            renewed_from: None,
            tx_key: "k".into(),
        };
        let with = requests(std::slice::from_ref(&pending), Some("tok"));
        assert!(with.contains("action=\"/request/r1/approve\""));
        assert!(with.contains("action=\"/request/r1/reject\""));
        let without = requests(&[pending], None);
        assert!(!without.contains("<form"));
        assert!(without.contains("castellan request approve r1"));
    }

    #[test]
    fn chart_scales_bars_and_labels_days() {
        let mut per_day = vec![0u64; 90];
        per_day[89] = 10;
        per_day[0] = 5;
        let today = 20_000;
        let svg = issuance_chart(&per_day, today).into_string();
        // Two bars: the busiest day full height, the other half.
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("height=\"80\""));
        assert!(svg.contains("height=\"40\""));
        assert!(svg.contains("15 certificates issued in the last 90 days"));
        assert!(svg.contains(&proto::rfc3339(today * 86400)[..10]));
        assert!(svg.contains(&proto::rfc3339((today - 89) * 86400)[..10]));
        // Nothing issued: no bars, no division by zero.
        let empty = issuance_chart(&[0; 90], today).into_string();
        assert_eq!(empty.matches("<rect").count(), 0);
        assert!(empty.contains("0 certificates issued"));
    }
}
