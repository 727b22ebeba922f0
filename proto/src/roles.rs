//! Permissions and the built-in roles (Cloud PKI's permission names first; see
//! ../shared/reference/governance.md §A5). Default deny: an admin may do what one of their
//! roles' permissions allows, the union over their roles, and nothing else. Every admin
//! request declares what it needs ([`crate::admin::Request::need`]).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::governance::Operation;
use crate::model::{RoleName, Tag};
use crate::{Error, Result};

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// See a CA (chain, status, CRL) and its leaf certificates.
    #[serde(rename = "ca.read")]
    CaRead,
    /// Create root, issuing and BYOCA CAs.
    #[serde(rename = "ca.create")]
    CaCreate,
    /// Disable and re-enable a CA.
    #[serde(rename = "ca.disable")]
    CaDisable,
    /// Revoke a CA certificate.
    #[serde(rename = "ca.revoke")]
    CaRevoke,
    /// Revoke leaf certificates.
    #[serde(rename = "leaf.revoke")]
    LeafRevoke,
    /// Export certificate reports.
    #[serde(rename = "report.export")]
    ReportExport,
    #[serde(rename = "profile.read")]
    ProfileRead,
    #[serde(rename = "profile.write")]
    ProfileWrite,
    /// Mint one-time challenges.
    #[serde(rename = "challenge.issue")]
    ChallengeIssue,
    /// Approve or reject requests of manual-approval profiles.
    #[serde(rename = "request.approve")]
    RequestApprove,
    /// Have the signer make a key pair and issue it through a pkcs profile (PKCS#12).
    #[serde(rename = "pkcs12.issue")]
    Pkcs12Issue,
    /// Propose and approve the recovery of an escrowed key, and fetch it once approved.
    #[serde(rename = "key.recover")]
    KeyRecover,
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "audit.export")]
    AuditExport,
    #[serde(rename = "role.read")]
    RoleRead,
    #[serde(rename = "role.write")]
    RoleWrite,
}

impl Permission {
    pub const ALL: [Permission; 16] = [
        Permission::CaRead,
        Permission::CaCreate,
        Permission::CaDisable,
        Permission::CaRevoke,
        Permission::LeafRevoke,
        Permission::ReportExport,
        Permission::ProfileRead,
        Permission::ProfileWrite,
        Permission::ChallengeIssue,
        Permission::RequestApprove,
        Permission::Pkcs12Issue,
        Permission::KeyRecover,
        Permission::AuditRead,
        Permission::AuditExport,
        Permission::RoleRead,
        Permission::RoleWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::CaRead => "ca.read",
            Permission::CaCreate => "ca.create",
            Permission::CaDisable => "ca.disable",
            Permission::CaRevoke => "ca.revoke",
            Permission::LeafRevoke => "leaf.revoke",
            Permission::ReportExport => "report.export",
            Permission::ProfileRead => "profile.read",
            Permission::ProfileWrite => "profile.write",
            Permission::ChallengeIssue => "challenge.issue",
            Permission::RequestApprove => "request.approve",
            Permission::Pkcs12Issue => "pkcs12.issue",
            Permission::KeyRecover => "key.recover",
            Permission::AuditRead => "audit.read",
            Permission::AuditExport => "audit.export",
            Permission::RoleRead => "role.read",
            Permission::RoleWrite => "role.write",
        }
    }

    pub fn parse(s: &str) -> Result<Permission> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown permission {s:?}: use {}",
                    Permission::ALL.map(Permission::name).join(", ")
                ))
            })
    }

    /// What a quorum operation needs of its proposer and of each approver.
    pub fn for_operation(op: &Operation) -> Permission {
        match op {
            Operation::CreateRoot { .. }
            | Operation::CreateIssuing { .. }
            | Operation::CreateByoca { .. }
            | Operation::ImportCa { .. } => Permission::CaCreate,
            Operation::DisableCa { .. } | Operation::EnableCa { .. } => Permission::CaDisable,
            Operation::RevokeCa { .. } => Permission::CaRevoke,
            Operation::CreateProfile { .. } => Permission::ProfileWrite,
            Operation::RecoverKey { .. } => Permission::KeyRecover,
            Operation::AddAdmin { .. }
            | Operation::Assign { .. }
            | Operation::Unassign { .. }
            | Operation::RemoveAdmin { .. }
            | Operation::CreateRole { .. }
            | Operation::DeleteRole { .. }
            | Operation::SetCaTags { .. }
            | Operation::SetQuorum { .. } => Permission::RoleWrite,
        }
    }

    /// A comma-separated list, e.g. `ca.read,leaf.revoke`: every name known, none twice
    /// (order is free), at least one.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Permission>> {
        let mut out = BTreeSet::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !out.insert(Permission::parse(name)?) {
                return Err(Error::Invalid(format!("permission {name} is named twice")));
            }
        }
        if out.is_empty() {
            return Err(Error::Invalid(
                "a role must grant at least one permission".into(),
            ));
        }
        Ok(out)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The built-in roles; immutable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinRole {
    /// Every permission.
    Administrator,
    /// Runs the PKI day to day: reads, pauses CAs, revokes leaves, profiles, challenges,
    /// manual requests, reports.
    PkiOperator,
    /// Revokes lost devices' certificates.
    HelpDesk,
    /// Reads.
    ReadOnlyOperator,
    /// Reads and exports the audit log.
    Auditor,
    /// Changes roles and assignments, nothing else.
    RoleAdministrator,
    /// The castellan-mdm connector: mints challenges, revokes what Intune asks for.
    MdmConnector,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 7] = [
        BuiltinRole::Administrator,
        BuiltinRole::PkiOperator,
        BuiltinRole::HelpDesk,
        BuiltinRole::ReadOnlyOperator,
        BuiltinRole::Auditor,
        BuiltinRole::RoleAdministrator,
        BuiltinRole::MdmConnector,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuiltinRole::Administrator => "administrator",
            BuiltinRole::PkiOperator => "pki-operator",
            BuiltinRole::HelpDesk => "help-desk",
            BuiltinRole::ReadOnlyOperator => "read-only-operator",
            BuiltinRole::Auditor => "auditor",
            BuiltinRole::RoleAdministrator => "role-administrator",
            BuiltinRole::MdmConnector => "mdm-connector",
        }
    }

    pub fn parse(s: &str) -> Result<BuiltinRole> {
        BuiltinRole::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| Error::Invalid(format!("unknown role {s:?}")))
    }

    pub fn permissions(self) -> BTreeSet<Permission> {
        use Permission::*;
        match self {
            BuiltinRole::Administrator => Permission::ALL.into_iter().collect(),
            BuiltinRole::PkiOperator => [
                CaRead,
                CaDisable,
                LeafRevoke,
                ReportExport,
                ProfileRead,
                ProfileWrite,
                ChallengeIssue,
                RequestApprove,
            ]
            .into(),
            BuiltinRole::HelpDesk => [CaRead, LeafRevoke].into(),
            BuiltinRole::ReadOnlyOperator => [CaRead, ReportExport, ProfileRead, AuditRead].into(),
            BuiltinRole::Auditor => [CaRead, AuditRead, AuditExport, RoleRead].into(),
            BuiltinRole::RoleAdministrator => [RoleRead, RoleWrite].into(),
            BuiltinRole::MdmConnector => [ChallengeIssue, LeafRevoke].into(),
        }
    }
}

impl fmt::Display for BuiltinRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The tags an assignment covers: every tag (`*`) or these (never none: an empty list is
/// refused, because it would grant nothing; unlike Intune, where no tag means all).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tags {
    All,
    Only(BTreeSet<Tag>),
}

impl Tags {
    /// `*` or `t1,t2`.
    pub fn parse(s: &str) -> Result<Tags> {
        if s.trim() == "*" {
            return Ok(Tags::All);
        }
        let tags = s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Tag::new)
            .collect::<Result<BTreeSet<_>>>()?;
        Tags::only(tags)
    }

    /// An explicit list, which must not be empty.
    pub fn only(tags: BTreeSet<Tag>) -> Result<Tags> {
        if tags.is_empty() {
            return Err(Error::Invalid(
                "an assignment needs at least one tag, or * for every tag (an empty list would grant nothing)".into(),
            ));
        }
        Ok(Tags::Only(tags))
    }

    /// Does this cover at least one of a CA's tags?
    pub fn covers_any(&self, ca: &[Tag]) -> bool {
        match self {
            Tags::All => true,
            Tags::Only(t) => ca.iter().any(|c| t.contains(c)),
        }
    }

    /// Does this hold this tag?
    pub fn holds(&self, tag: &Tag) -> bool {
        match self {
            Tags::All => true,
            Tags::Only(t) => t.contains(tag),
        }
    }

    /// The union of two.
    pub fn union(&self, other: &Tags) -> Tags {
        match (self, other) {
            (Tags::Only(a), Tags::Only(b)) => Tags::Only(a.union(b).cloned().collect()),
            _ => Tags::All,
        }
    }
}

impl fmt::Display for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tags::All => f.write_str("*"),
            Tags::Only(t) => {
                let names: Vec<&str> = t.iter().map(Tag::as_str).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Tags::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One assignment: a role within some tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub role: RoleName,
    pub tags: Tags,
}

impl Assignment {
    /// What every officer registered before roles existed holds.
    pub fn administrator_everywhere() -> Assignment {
        Assignment {
            role: RoleName::new(BuiltinRole::Administrator.name())
                .unwrap_or_else(|_| unreachable!("a built-in role's name is valid")),
            tags: Tags::All,
        }
    }
}

/// A custom role: any non-empty subset of the permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    pub name: RoleName,
    pub permissions: BTreeSet<Permission>,
}

/// A role as `role list` and `role show` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleView {
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<Permission>,
    /// The admins holding it, with the tags of each assignment.
    pub holders: Vec<String>,
}

/// The permissions of a role by name: built-in first, then the custom ones.
pub fn role_permissions(name: &RoleName, custom: &[RoleDef]) -> Option<BTreeSet<Permission>> {
    BuiltinRole::parse(name.as_str())
        .ok()
        .map(BuiltinRole::permissions)
        .or_else(|| {
            custom
                .iter()
                .find(|r| &r.name == name)
                .map(|r| r.permissions.clone())
        })
}

/// What one admin may do, and where: each assignment resolved to its role's permissions.
/// Default deny; the permissions are the union over the assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<(BTreeSet<Permission>, Tags)>);

impl Grants {
    /// Resolve assignments against the custom roles (an unknown role grants nothing).
    pub fn resolve(assignments: &[Assignment], custom: &[RoleDef]) -> Grants {
        Grants(
            assignments
                .iter()
                .filter_map(|a| role_permissions(&a.role, custom).map(|p| (p, a.tags.clone())))
                .collect(),
        )
    }

    /// Every permission, on every tag.
    pub fn everything() -> Grants {
        Grants(vec![(Permission::ALL.into_iter().collect(), Tags::All)])
    }

    /// May the holder use `p` on something with these tags (a CA and what belongs to it)?
    pub fn may(&self, p: Permission, tags: &[Tag]) -> bool {
        self.0
            .iter()
            .any(|(perms, scope)| perms.contains(&p) && scope.covers_any(tags))
    }

    /// Does the holder have `p` somewhere (for requests not about one CA)?
    pub fn has(&self, p: Permission) -> bool {
        self.0.iter().any(|(perms, _)| perms.contains(&p))
    }

    /// Can the holder see something with these tags at all (any permission there)? Outside
    /// that, it does not exist for them: "not found", never "forbidden".
    pub fn sees(&self, tags: &[Tag]) -> bool {
        self.0.iter().any(|(_, scope)| scope.covers_any(tags))
    }

    /// The tags on which the holder has `p`, if any.
    pub fn tags_for(&self, p: Permission) -> Option<Tags> {
        self.0
            .iter()
            .filter(|(perms, _)| perms.contains(&p))
            .map(|(_, t)| t.clone())
            .reduce(|a, b| a.union(&b))
    }

    /// The union of the permissions.
    pub fn permissions(&self) -> BTreeSet<Permission> {
        self.0.iter().flat_map(|(p, _)| p.iter().copied()).collect()
    }
}

/// What an admin request needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any registered admin (whoami: who am I, what may I do).
    Admin,
    /// This permission.
    Permission(Permission),
    /// The permission of the proposal's operation (approve, reject): known once the
    /// proposal is read.
    ProposalsPermission,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()).ok(), Some(p));
            let json = serde_json::to_string(&p).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
        for r in BuiltinRole::ALL {
            assert_eq!(BuiltinRole::parse(r.name()).ok(), Some(r));
        }
        assert!(Permission::parse("ca.everything").is_err());
        assert!(BuiltinRole::parse("root").is_err());
    }

    #[test]
    fn built_in_roles_grant_what_the_issue_names() {
        use Permission::*;
        // Administrator: everything (pkcs12.issue and key.recover, of issue 13, only there).
        assert_eq!(BuiltinRole::Administrator.permissions().len(), 16);
        for r in BuiltinRole::ALL {
            for p in [Pkcs12Issue, KeyRecover] {
                assert_eq!(
                    r.permissions().contains(&p),
                    r == BuiltinRole::Administrator,
                    "{r} {p:?}"
                );
            }
        }
        assert_eq!(
            BuiltinRole::HelpDesk.permissions(),
            [CaRead, LeafRevoke].into()
        );
        assert_eq!(
            BuiltinRole::Auditor.permissions(),
            [CaRead, AuditRead, AuditExport, RoleRead].into()
        );
        assert_eq!(
            BuiltinRole::MdmConnector.permissions(),
            [ChallengeIssue, LeafRevoke].into()
        );
        for r in BuiltinRole::ALL {
            assert!(!r.permissions().is_empty(), "{r} grants nothing");
        }
    }
}
