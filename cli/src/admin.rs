//! `castellan admin …`, `castellan role …` and `castellan quorum set`: listings, and
//! changes sent as proposals (permission `role.write`, executed by quorum).

use proto::admin::{Request, Response};
use proto::governance::Operation;
use proto::model::RoleName;
use proto::roles::{Permission, RoleView, Tags};

use crate::args::{AdminCommand, QuorumCommand, RoleCommand};
use crate::proposal::propose;
use crate::session::{Session, read};
use crate::{Error, Result};

pub async fn admin(s: &Session, c: &AdminCommand) -> Result<()> {
    match c {
        AdminCommand::List(j) => {
            let Response::Admins { admins } = s.client.call(&Request::AdminList).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&admins).unwrap_or_default()
                );
                return Ok(());
            }
            println!(
                "{:<16} {:<20} {:<12} ASSIGNMENTS",
                "NAME", "NOT AFTER", "SHA-256"
            );
            for a in admins {
                let assignments: Vec<String> = a
                    .assignments
                    .iter()
                    .map(|x| format!("{} on {}", x.role, x.tags))
                    .collect();
                println!(
                    "{:<16} {:<20} {:<12} {}",
                    a.name,
                    a.not_after,
                    a.fingerprint.get(..12).unwrap_or_default(),
                    assignments.join("; ")
                );
            }
            Ok(())
        }
        AdminCommand::Add {
            name,
            cert,
            role,
            tags,
            json,
        } => {
            proto::model::check_admin_name(name)?;
            let certs = proto::pem::parse_certificates(
                &read(cert, "admin certificate")?,
                "the admin certificate",
            )?;
            let [one] = certs.as_slice() else {
                return Err(Error::Invalid(
                    "give a file with exactly one certificate".into(),
                ));
            };
            let op = Operation::AddAdmin {
                name: name.clone(),
                cert: der::Encode::to_der(one).map_err(|e| Error::Invalid(e.to_string()))?,
                role: RoleName::new(role)?,
                tags: Tags::parse(tags)?,
            };
            propose(s, op, json.json).await
        }
        AdminCommand::Assign {
            name,
            role,
            tags,
            json,
        } => {
            let op = Operation::Assign {
                name: name.clone(),
                role: RoleName::new(role)?,
                tags: Tags::parse(tags)?,
            };
            propose(s, op, json.json).await
        }
        AdminCommand::Unassign { name, role, json } => {
            let op = Operation::Unassign {
                name: name.clone(),
                role: RoleName::new(role)?,
            };
            propose(s, op, json.json).await
        }
        AdminCommand::Remove { name, json } => {
            propose(s, Operation::RemoveAdmin { name: name.clone() }, json.json).await
        }
    }
}

fn print_roles(roles: &[RoleView], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(roles).unwrap_or_default()
        );
        return;
    }
    for r in roles {
        let perms: Vec<&str> = r.permissions.iter().map(|p| p.name()).collect();
        println!(
            "{}{}: {}",
            r.name,
            if r.builtin { " (built-in)" } else { "" },
            perms.join(", ")
        );
        for h in &r.holders {
            println!("  held by {h}");
        }
    }
}

pub async fn role(s: &Session, c: &RoleCommand) -> Result<()> {
    match c {
        RoleCommand::List(j) => {
            let Response::Roles { roles } = s.client.call(&Request::RoleList).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            print_roles(&roles, j.json);
            Ok(())
        }
        RoleCommand::Show { name, json } => {
            let Response::Roles { roles } = s
                .client
                .call(&Request::RoleShow { name: name.clone() })
                .await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            print_roles(&roles, json.json);
            Ok(())
        }
        RoleCommand::Create {
            name,
            permissions,
            json,
        } => {
            let op = Operation::CreateRole {
                name: RoleName::new(name)?,
                permissions: Permission::parse_list(permissions)?,
            };
            propose(s, op, json.json).await
        }
        RoleCommand::Delete { name, json } => {
            let op = Operation::DeleteRole {
                name: RoleName::new(name)?,
            };
            propose(s, op, json.json).await
        }
    }
}

pub async fn quorum(s: &Session, c: &QuorumCommand) -> Result<()> {
    let QuorumCommand::Set {
        approvals,
        rejections,
        json,
    } = c;
    let rejections = match rejections {
        Some(r) => *r,
        None => {
            let Response::Whoami { rejections, .. } = s.client.call(&Request::Whoami).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            rejections.max(1)
        }
    };
    let op = Operation::SetQuorum {
        approvals: *approvals,
        rejections,
    };
    propose(s, op, json.json).await
}
