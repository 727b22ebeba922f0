//! What each command needs of the admin who runs it: exactly one permission, or one of
//! three exceptions (offline commands, `whoami`, and approving or rejecting, which need the
//! permission of the proposal's own operation). `castellan help` shows it per command, and
//! a test fails if a command is missing here.

/// Every command (its words after `castellan`) and what it needs.
pub const NEEDS: &[(&str, &str)] = &[
    ("ca list", "ca.read"),
    ("ca show", "ca.read"),
    ("ca create-root", "ca.create"),
    ("ca create-issuing", "ca.create"),
    ("ca create-byoca", "ca.create"),
    ("ca import", "ca.create"),
    ("ca tags", "role.write"),
    ("ca csr", "ca.read"),
    ("ca disable", "ca.disable"),
    ("ca enable", "ca.disable"),
    ("ca cert", "ca.read"),
    ("ca revoke", "ca.revoke"),
    ("ca crl", "ca.read"),
    ("ca chain", "ca.read"),
    ("proposal list", "ca.read"),
    ("proposal show", "ca.read"),
    ("proposal approve", "the proposal's permission"),
    ("proposal reject", "the proposal's permission"),
    ("whoami", "any admin"),
    ("profile create", "profile.write"),
    ("profile list", "profile.read"),
    ("profile show", "profile.read"),
    ("challenge new", "challenge.issue"),
    ("challenge sign", "offline"),
    ("request list", "request.approve"),
    ("request approve", "request.approve"),
    ("request reject", "request.approve"),
    ("cert revoke", "leaf.revoke"),
    ("cert list", "ca.read"),
    ("cert show", "ca.read"),
    ("cert get", "ca.read"),
    ("cert stats", "ca.read"),
    ("cert export", "report.export"),
    ("pkcs12 issue", "pkcs12.issue"),
    ("key recover", "key.recover"),
    ("key fetch", "key.recover"),
    ("export mobileconfig", "profile.read"),
    ("export bundle", "profile.read"),
    ("audit list", "audit.read"),
    ("audit checkpoint", "audit.read"),
    ("audit export", "audit.export"),
    ("audit verify", "offline"),
    ("audit cosign", "audit.read"),
    ("admin list", "role.read"),
    ("admin add", "role.write"),
    ("admin assign", "role.write"),
    ("admin unassign", "role.write"),
    ("admin remove", "role.write"),
    ("role list", "role.read"),
    ("role show", "role.read"),
    ("role create", "role.write"),
    ("role delete", "role.write"),
    ("quorum set", "role.write"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::NEEDS;
    use clap::CommandFactory;

    fn leaves(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push(prefix.trim().to_owned());
        }
        for s in subs {
            leaves(s, &format!("{prefix} {}", s.get_name()), out);
        }
    }

    #[test]
    fn every_command_declares_exactly_one_need() {
        let mut commands = Vec::new();
        leaves(&crate::args::Cli::command(), "", &mut commands);
        commands.sort();
        let mut table: Vec<String> = NEEDS.iter().map(|(c, _)| (*c).to_owned()).collect();
        table.sort();
        let before = table.len();
        table.dedup();
        assert_eq!(table.len(), before, "a command is listed twice");
        assert_eq!(commands, table, "commands and the table of needs differ");
        for (c, need) in NEEDS {
            let known = ["offline", "any admin", "the proposal's permission"].contains(need)
                || proto::roles::Permission::parse(need).is_ok();
            assert!(known, "{c}: {need} is not a permission");
        }
    }

    #[test]
    fn commands_agree_with_the_requests_they_send() {
        use proto::admin::Request;
        use proto::roles::{Need, Permission};
        let need = |c: &str| NEEDS.iter().find(|(n, _)| *n == c).unwrap().1;
        let pairs = [
            ("ca list", Request::CaList),
            (
                "cert revoke",
                Request::CertRevoke {
                    ca: "x".into(),
                    serial: "01".into(),
                    reason: "unspecified".into(),
                },
            ),
            ("audit export", Request::AuditExport),
            ("admin list", Request::AdminList),
            ("profile list", Request::ProfileList),
            ("request list", Request::RequestList),
            (
                "audit list",
                Request::AuditList {
                    actor: None,
                    action: None,
                    ca: None,
                    limit: None,
                    after: None,
                },
            ),
        ];
        for (c, r) in pairs {
            let Need::Permission(p) = r.need() else {
                panic!("{c}");
            };
            assert_eq!(Permission::parse(need(c)).unwrap(), p, "{c}");
        }
    }
}
