//! Admins, roles and the quorum as quorum operations: each change is computed on a copy of
//! the governance settings, checked whole, and stored in the transaction that executes the
//! proposal. The one rule every change must keep: at least `quorum` admins can still
//! approve CA creation, so the appliance can never lock itself out.

use std::collections::BTreeSet;

use der::Decode;
use sha2::Digest;

use crate::error::{Clash, Missing};
use crate::store::{Governance, Officer};
use crate::{Error, Result};
use proto::admin::AdminView;
use proto::governance::Operation;
use proto::model::RoleName;
use proto::roles::{Assignment, BuiltinRole, RoleDef, RoleView, role_permissions};

/// The governance settings after `op` (an admin, role or quorum operation), checked; other
/// operations leave them as they are.
pub fn apply(g: &Governance, op: &Operation) -> Result<Governance> {
    let mut next = g.clone();
    match op {
        Operation::AddAdmin {
            name,
            cert,
            role,
            tags,
        } => {
            proto::model::check_admin_name(name)?;
            if g.officer(name).is_some() {
                return Err(Error::Conflict(Clash::AdminExists(name.clone())));
            }
            let parsed = x509_cert::Certificate::from_der(cert)
                .map_err(|e| Error::Invalid(format!("the admin's certificate: {e}")))?;
            if let Some(o) = g.officers.iter().find(|o| &o.cert == cert) {
                return Err(Error::Conflict(Clash::CertRegistered(o.name.clone())));
            }
            let (_, not_after) = crate::issuance::x509::cert_window(&parsed);
            if not_after < crate::now() {
                return Err(Error::Invalid("the admin's certificate has expired".into()));
            }
            known_role(g, role)?;
            next.officers.push(Officer {
                name: name.clone(),
                cert: cert.clone(),
                assignments: vec![Assignment {
                    role: role.clone(),
                    tags: tags.clone(),
                }],
            });
        }
        Operation::Assign { name, role, tags } => {
            known_role(g, role)?;
            let o = admin_mut(&mut next, name)?;
            o.assignments.retain(|a| &a.role != role);
            o.assignments.push(Assignment {
                role: role.clone(),
                tags: tags.clone(),
            });
        }
        Operation::Unassign { name, role } => {
            let o = admin_mut(&mut next, name)?;
            let before = o.assignments.len();
            o.assignments.retain(|a| &a.role != role);
            if o.assignments.len() == before {
                return Err(Error::Conflict(Clash::NotAssigned {
                    admin: name.clone(),
                    role: role.to_string(),
                }));
            }
        }
        Operation::RemoveAdmin { name } => {
            admin_mut(&mut next, name)?;
            next.officers.retain(|o| &o.name != name);
        }
        Operation::CreateRole { name, permissions } => {
            if BuiltinRole::parse(name.as_str()).is_ok() || g.roles.iter().any(|r| &r.name == name)
            {
                return Err(Error::Conflict(Clash::RoleExists(name.to_string())));
            }
            if permissions.is_empty() {
                return Err(Error::Invalid(
                    "a role must grant at least one permission".into(),
                ));
            }
            next.roles.push(RoleDef {
                name: name.clone(),
                permissions: permissions.clone(),
            });
        }
        Operation::DeleteRole { name } => {
            if BuiltinRole::parse(name.as_str()).is_ok() {
                return Err(Error::Invalid(format!(
                    "{name} is a built-in role: built-in roles cannot be changed"
                )));
            }
            if !g.roles.iter().any(|r| &r.name == name) {
                return Err(Error::NotFound(Missing::Role(name.to_string())));
            }
            let holders = holders(g, name);
            if !holders.is_empty() {
                return Err(Error::Conflict(Clash::RoleInUse {
                    role: name.to_string(),
                    holders: holders.join(", "),
                }));
            }
            next.roles.retain(|r| &r.name != name);
        }
        Operation::SetQuorum {
            approvals,
            rejections,
        } => {
            if *approvals == 0 || *rejections == 0 {
                return Err(Error::Invalid(
                    "a proposal needs at least 1 approval, and at least 1 rejection ends one"
                        .into(),
                ));
            }
            next.quorum = *approvals;
            next.rejections = *rejections;
        }
        _ => return Ok(next),
    }
    let able = next.ca_creators();
    if (able as u32) < next.quorum {
        return Err(Error::Conflict(Clash::QuorumUnreachable {
            able,
            quorum: next.quorum,
        }));
    }
    Ok(next)
}

fn known_role(g: &Governance, role: &RoleName) -> Result<()> {
    role_permissions(role, &g.roles)
        .map(|_| ())
        .ok_or_else(|| Error::NotFound(Missing::Role(role.to_string())))
}

fn admin_mut<'a>(g: &'a mut Governance, name: &str) -> Result<&'a mut Officer> {
    g.officers
        .iter_mut()
        .find(|o| o.name == name)
        .ok_or_else(|| Error::NotFound(Missing::Admin(name.to_owned())))
}

fn holders(g: &Governance, role: &RoleName) -> Vec<String> {
    g.officers
        .iter()
        .flat_map(|o| {
            o.assignments
                .iter()
                .filter(|a| &a.role == role)
                .map(|a| format!("{} on {}", o.name, a.tags))
        })
        .collect()
}

/// Every admin, for `admin list`.
pub fn admins(g: &Governance) -> Vec<AdminView> {
    g.officers
        .iter()
        .map(|o| {
            let cert = x509_cert::Certificate::from_der(&o.cert).ok();
            AdminView {
                name: o.name.clone(),
                fingerprint: hex::encode(sha2::Sha256::digest(&o.cert)),
                subject: cert
                    .as_ref()
                    .map(|c| c.tbs_certificate().subject().to_string())
                    .unwrap_or_default(),
                not_after: cert
                    .as_ref()
                    .map(|c| proto::rfc3339(crate::issuance::x509::cert_window(c).1))
                    .unwrap_or_default(),
                assignments: o.assignments.clone(),
            }
        })
        .collect()
}

/// Every role, built-in first, for `role list` and `role show`.
pub fn roles(g: &Governance) -> Vec<RoleView> {
    let view = |name: RoleName, builtin: bool, permissions: BTreeSet<_>| RoleView {
        holders: holders(g, &name),
        name: name.to_string(),
        builtin,
        permissions: permissions.into_iter().collect(),
    };
    BuiltinRole::ALL
        .into_iter()
        .filter_map(|r| {
            RoleName::new(r.name())
                .ok()
                .map(|n| view(n, true, r.permissions()))
        })
        .chain(
            g.roles
                .iter()
                .map(|r| view(r.name.clone(), false, r.permissions.clone())),
        )
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proto::roles::Tags;

    fn officer(name: &str, role: &str) -> Officer {
        Officer {
            name: name.into(),
            cert: name.as_bytes().to_vec(),
            assignments: vec![Assignment {
                role: RoleName::new(role).unwrap(),
                tags: Tags::All,
            }],
        }
    }

    fn gov() -> Governance {
        Governance {
            quorum: 2,
            officers: vec![
                officer("alice", "administrator"),
                officer("bob", "administrator"),
                officer("carol", "help-desk"),
            ],
            rejections: 1,
            roles: vec![],
        }
    }

    #[test]
    fn changes_that_would_leave_too_few_ca_creators_are_refused() {
        let g = gov();
        let remove = Operation::RemoveAdmin { name: "bob".into() };
        assert!(matches!(
            apply(&g, &remove),
            Err(Error::Conflict(Clash::QuorumUnreachable {
                able: 1,
                quorum: 2
            }))
        ));
        let unassign = Operation::Unassign {
            name: "alice".into(),
            role: RoleName::new("administrator").unwrap(),
        };
        assert!(apply(&g, &unassign).is_err());
        let raise = Operation::SetQuorum {
            approvals: 3,
            rejections: 1,
        };
        assert!(apply(&g, &raise).is_err());
        // Removing the help-desk admin leaves both creators: fine.
        let ok = apply(
            &g,
            &Operation::RemoveAdmin {
                name: "carol".into(),
            },
        )
        .unwrap();
        assert_eq!(ok.officers.len(), 2);
    }

    #[test]
    fn roles_are_created_used_and_deleted_only_when_unused() {
        let g = gov();
        let name = RoleName::new("revoker").unwrap();
        let create = Operation::CreateRole {
            name: name.clone(),
            permissions: [proto::roles::Permission::LeafRevoke].into(),
        };
        let g = apply(&g, &create).unwrap();
        assert!(matches!(
            apply(&g, &create),
            Err(Error::Conflict(Clash::RoleExists(_)))
        ));
        let builtin = Operation::CreateRole {
            name: RoleName::new("auditor").unwrap(),
            permissions: [proto::roles::Permission::AuditRead].into(),
        };
        assert!(apply(&g, &builtin).is_err());
        let empty = Operation::CreateRole {
            name: RoleName::new("nothing").unwrap(),
            permissions: BTreeSet::new(),
        };
        assert!(matches!(apply(&g, &empty), Err(Error::Invalid(_))));
        let assign = Operation::Assign {
            name: "carol".into(),
            role: name.clone(),
            tags: Tags::parse("eu").unwrap(),
        };
        let g = apply(&g, &assign).unwrap();
        let delete = Operation::DeleteRole { name: name.clone() };
        assert!(matches!(
            apply(&g, &delete),
            Err(Error::Conflict(Clash::RoleInUse { .. }))
        ));
        let g = apply(
            &g,
            &Operation::Unassign {
                name: "carol".into(),
                role: name.clone(),
            },
        )
        .unwrap();
        let g = apply(&g, &delete).unwrap();
        assert!(g.roles.is_empty());
        let unknown = Operation::Assign {
            name: "carol".into(),
            role: RoleName::new("ghost").unwrap(),
            tags: Tags::All,
        };
        assert!(matches!(apply(&g, &unknown), Err(Error::NotFound(_))));
        assert!(matches!(
            apply(
                &g,
                &Operation::RemoveAdmin {
                    name: "dave".into()
                }
            ),
            Err(Error::NotFound(_))
        ));
    }
}
