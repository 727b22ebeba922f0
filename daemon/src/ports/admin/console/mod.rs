//! The web console: HTML pages on the admin port, for the same client-certificate identity
//! and through the same checks as the CLI. Each page, download and form is authorised as
//! the admin request that carries its data or action (`ca-list`, `cert-export`,
//! `cert-revoke`, ...), so scope tags hide the same CAs, a hidden CA is "not found", and
//! every view, refusal and action is in the audit log (`console:KIND`). Forms (revoke,
//! approve or reject a manual request) carry a per-admin CSRF token. No JavaScript; a
//! strict CSP; no caching of any page.

pub mod csrf;
mod pages;
pub mod query;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};

use super::access::{self, Caller};
use crate::engine::Signer;
use crate::error::Missing;
use crate::{Error, Result};
use proto::admin::Request;

/// The style sheet, the only asset (no scripts).
const CSS: &str = include_str!("console.css");

/// Largest form a page posts.
pub const MAX_FORM: usize = 4096;

/// What the console answers to a GET of `path`.
pub fn answer(
    signer: &Signer,
    caller: &Caller,
    path: &str,
    query: &str,
) -> hyper::Response<Full<Bytes>> {
    respond(route(signer, caller, path, query))
}

/// What the console answers to a form posted to `path` (None: the body was too large or
/// broken): revoking a certificate (after the confirmation box), approving or rejecting a
/// manual request. Every form carries the CSRF token of the page that showed it.
pub fn submit(
    signer: &Signer,
    caller: &Caller,
    path: &str,
    form: Option<&[u8]>,
) -> hyper::Response<Full<Bytes>> {
    respond(post(signer, caller, path, form))
}

fn post(signer: &Signer, caller: &Caller, path: &str, form: Option<&[u8]>) -> Result<Page> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let form = form
        .and_then(|f| std::str::from_utf8(f).ok())
        .ok_or_else(|| Error::Invalid(format!("the form is not UTF-8 or over {MAX_FORM} bytes")))?;
    let mut fields = query::parse(form, &["reason", "csrf", "confirm"]).map_err(Error::Invalid)?;
    let token_ok = csrf::check(caller, fields.get("csrf").map(String::as_str));
    let confirmed = fields.get("confirm").map(String::as_str) == Some("yes");
    let (request, back) = match parts.as_slice() {
        ["cert", ca, serial, "revoke"] => {
            if !confirmed {
                return Err(Error::Invalid("tick the confirmation box to revoke".into()));
            }
            let request = Request::CertRevoke {
                ca: (*ca).to_owned(),
                serial: (*serial).to_owned(),
                reason: fields
                    .remove("reason")
                    .unwrap_or_else(|| "unspecified".into()),
            };
            (request, format!("/cert/{ca}/{serial}"))
        }
        ["request", id, "approve"] => (
            Request::RequestApprove {
                id: (*id).to_owned(),
            },
            "/requests".to_owned(),
        ),
        ["request", id, "reject"] => (
            Request::RequestReject {
                id: (*id).to_owned(),
                reason: Some(
                    fields
                        .remove("reason")
                        .ok_or_else(|| Error::Invalid("give a reason to reject".into()))?,
                ),
            },
            "/requests".to_owned(),
        ),
        _ => return Err(Error::NotFound(Missing::Page(path.to_owned()))),
    };
    // Inside `audited`, so a forged post is in the audit log as refused.
    let result = access::audited(signer, caller, request, true, |a, r| {
        if !token_ok {
            return Err(Error::Forbidden(crate::error::Denied::Csrf));
        }
        super::dispatch::handle(signer, caller, a, r)
    });
    match result? {
        proto::admin::Response::Done { message } => Ok(Page::Html(pages::done(&message, &back))),
        proto::admin::Response::Issued { ca, serial } => Ok(Page::Html(pages::done(
            &format!("Issued certificate {serial} of CA {ca}."),
            &format!("/cert/{ca}/{serial}"),
        ))),
        _ => Ok(Page::Html(pages::done("Done.", &back))),
    }
}

fn respond(page: Result<Page>) -> hyper::Response<Full<Bytes>> {
    let (status, content_type, body, download) = match page {
        Ok(Page::Html(html)) => (200, "text/html; charset=utf-8", html.into_bytes(), None),
        Ok(Page::Css) => (
            200,
            "text/css; charset=utf-8",
            CSS.as_bytes().to_vec(),
            None,
        ),
        Ok(Page::Download {
            name,
            content_type,
            data,
        }) => (200, content_type, data, Some(name)),
        Err(e) => (
            e.http_status(),
            "text/html; charset=utf-8",
            pages::refusal(e.http_status(), &e.to_string()).into_bytes(),
            None,
        ),
    };
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(name) = download
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

enum Page {
    Html(String),
    Css,
    Download {
        name: String,
        content_type: &'static str,
        data: Vec<u8>,
    },
}

/// The files a CA's page offers: (file name, the request that has its bytes, MIME type, PEM
/// label or None for DER as is).
fn ca_file(name: &str, file: &str) -> Option<(Request, &'static str, Option<&'static str>)> {
    let name = name.to_owned();
    Some(match file {
        "cert.pem" => (
            Request::CaCert { name },
            "application/x-pem-file",
            Some("CERTIFICATE"),
        ),
        "cert.der" => (Request::CaCert { name }, "application/pkix-cert", None),
        "chain.p7b" => (Request::CaChain { name }, "application/pkcs7-mime", None),
        "csr.pem" => (
            Request::CaCsr { name },
            "application/x-pem-file",
            Some("CERTIFICATE REQUEST"),
        ),
        "crl.der" => (Request::CaCrl { name }, "application/pkix-crl", None),
        _ => return None,
    })
}

fn route(signer: &Signer, caller: &Caller, path: &str, query: &str) -> Result<Page> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut filter = query::CertQuery::default();
    let mut audit_filter = query::AuditQuery::default();
    let mut file: Option<(String, &'static str, Option<&'static str>)> = None;
    let request = match parts.as_slice() {
        ["certs.csv"] => {
            let q = query::cert_query(query).map_err(Error::Invalid)?;
            let request = Request::CertExport {
                expires: q.expires().map_err(Error::Invalid)?,
                name: q.name,
                ca: q.ca,
                status: q.status.as_deref().map(str::parse).transpose()?,
                search: q.search,
            };
            file = Some(("certificates.csv".into(), "text/csv; charset=utf-8", None));
            request
        }
        ["certs"] => {
            filter = query::cert_query(query).map_err(Error::Invalid)?;
            let status = filter
                .status
                .as_deref()
                .map(str::parse::<proto::admin::Status>)
                .transpose()?;
            Request::CertList {
                ca: filter.ca.clone(),
                status,
                search: filter.search.clone(),
                limit: Some(100),
                after: filter.after.clone(),
                expires: filter.expires().map_err(Error::Invalid)?,
                name: filter.name.clone(),
            }
        }
        ["cert", ca, serial] => Request::CertShow {
            ca: Some((*ca).to_owned()),
            serial: (*serial).to_owned(),
        },
        ["cert", ca, serial, f @ ("cert.pem" | "cert.der")] => {
            let pem = (*f == "cert.pem").then_some("CERTIFICATE");
            let mime = if pem.is_some() {
                "application/x-pem-file"
            } else {
                "application/pkix-cert"
            };
            file = Some((format!("{serial}.{}", &f[5..]), mime, pem));
            Request::CertShow {
                ca: Some((*ca).to_owned()),
                serial: (*serial).to_owned(),
            }
        }
        ["proposals"] => Request::ProposalList,
        ["requests"] => Request::RequestList,
        ["audit"] => {
            audit_filter = query::audit_query(query).map_err(Error::Invalid)?;
            Request::AuditList {
                actor: audit_filter.actor.clone(),
                action: audit_filter.action.clone(),
                ca: audit_filter.ca.clone(),
                limit: Some(100),
                after: audit_filter.after,
            }
        }
        [""] => Request::CaList,
        ["console.css"] => return Ok(Page::Css),
        ["ca", name] => Request::CaShow {
            name: (*name).to_owned(),
        },
        ["ca", name, f] => {
            let (request, mime, pem) =
                ca_file(name, f).ok_or_else(|| Error::NotFound(Missing::Page(path.to_owned())))?;
            file = Some((format!("{name}-{f}"), mime, pem));
            request
        }
        _ => return Err(Error::NotFound(Missing::Page(path.to_owned()))),
    };
    access::audited(signer, caller, request, true, |a, r| match file {
        Some((name, content_type, pem)) => download(signer, caller, a, r, name, content_type, pem),
        None => render(signer, caller, a, r, (&filter, &audit_filter)),
    })
}

/// A file: the bytes of an authorised request's answer, as DER or PEM.
fn download(
    signer: &Signer,
    caller: &Caller,
    access: &access::Access,
    request: Request,
    name: String,
    content_type: &'static str,
    pem: Option<&'static str>,
) -> Result<Page> {
    use proto::admin::Response;
    let data = match super::dispatch::handle(signer, caller, access, request)? {
        Response::Bytes { data } => data,
        Response::Cert { cert } => cert.der,
        _ => return Err(Error::NotFound(Missing::Page(name))),
    };
    let data = match pem {
        Some(label) => crate::issuance::x509::to_pem(label, &data).into_bytes(),
        None => data,
    };
    Ok(Page::Download {
        name,
        content_type,
        data,
    })
}

/// Draw the page of an authorised request. The data comes from the admin port's own
/// dispatch (the same filtering by scope as the CLI gets); only the overview and a CA's page
/// gather more than one answer holds.
fn render(
    signer: &Signer,
    caller: &Caller,
    access: &access::Access,
    request: Request,
    (filter, audit_filter): (&query::CertQuery, &query::AuditQuery),
) -> Result<Page> {
    use proto::admin::Response;
    match &request {
        Request::CaList => return Ok(Page::Html(pages::overview(signer, access)?)),
        Request::CaShow { name } => return Ok(Page::Html(pages::ca(signer, name)?)),
        _ => {}
    }
    match super::dispatch::handle(signer, caller, access, request)? {
        Response::Audit { entries, next } => Ok(Page::Html(pages::audit(
            signer,
            &entries,
            next,
            audit_filter,
        )?)),
        Response::Requests { requests } => Ok(Page::Html(pages::requests(
            &requests,
            csrf::token(caller).as_deref(),
        ))),
        Response::Certs { certs, next } => {
            let visible = access::cas_with(
                signer.store(),
                &access.grants,
                proto::roles::Permission::CaRead,
            )?;
            Ok(Page::Html(pages::certs(&visible, &certs, next, filter)))
        }
        Response::Cert { cert } => {
            let may_revoke = signer.cas().ca(&cert.ca).is_ok_and(|c| {
                access
                    .grants
                    .may(proto::roles::Permission::LeafRevoke, &c.spec.scope())
            });
            let token = may_revoke.then(|| csrf::token(caller)).flatten();
            Ok(Page::Html(pages::cert(&cert, token.as_deref())))
        }
        Response::Proposals { proposals } => Ok(Page::Html(pages::proposals(&proposals))),
        _ => Err(Error::NotFound(Missing::Page(String::new()))),
    }
}
