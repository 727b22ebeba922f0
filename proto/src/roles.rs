//! Permissions and the built-in roles (Cloud PKI's permission names first; see
//! ../shared/reference/governance.md §A5). Default deny: an admin may do what one of their
//! roles' permissions allows, the union over their roles, and nothing else. Every admin
//! request declares what it needs ([`crate::admin::Request::need`]).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::governance::Operation;
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
    pub const ALL: [Permission; 14] = [
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
        }
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
        assert_eq!(BuiltinRole::Administrator.permissions().len(), 14);
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
