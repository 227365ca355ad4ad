//! `certkeeper check`: the inventory is valid; say what it holds, and check what the
//! challenge solvers need as far as that can be done without changing anything or contacting
//! anyone (see [`solvers::check_setup`]): a webroot that is not an existing directory, a DNS
//! provider that cannot be built, a DNS hook whose program is missing are reported, each
//! naming the certificate or `[dns.NAME]` and the key to fix, and make the exit code 78 like
//! any other configuration problem. Whether a TSIG key is accepted and a zone's policy lets
//! it update the challenge names shows at the first attempt, whose error says what to change.

use std::path::Path;

use certkeeper_core::Inventory;
use certkeeper_core::challenge::DnsProviderKind;

use crate::engine::solvers::{self, ChallengeLabel};
use crate::exit::Exit;
use crate::report::error_chain;

pub fn run(path: &Path, inventory: &Inventory) -> Exit {
    let problems = solvers::check_setup(inventory);
    for (subject, problem) in &problems {
        eprintln!(
            "error: {}: {subject}: {}",
            path.display(),
            error_chain(problem)
        );
    }
    if !problems.is_empty() {
        eprintln!(
            "{}: the configuration is valid but its challenge solvers cannot be used ({} problem{})",
            path.display(),
            problems.len(),
            plural(problems.len())
        );
        return Exit::InvalidConfig;
    }
    println!(
        "{}: OK: {} CA{}, {} certificate{}, state in {}",
        path.display(),
        inventory.cas.len(),
        plural(inventory.cas.len()),
        inventory.certificates.len(),
        plural(inventory.certificates.len()),
        inventory.state_dir.display()
    );
    for ca in &inventory.cas {
        println!(
            "  ca {}: {}{}",
            ca.name,
            ca.directory,
            ca.eab
                .as_ref()
                .map(|eab| format!(" (EAB key id {})", eab.kid))
                .unwrap_or_default()
        );
    }
    for provider in &inventory.challenges.dns_providers {
        // Never the secret: the key's name and algorithm identify it.
        let what = match &provider.kind {
            DnsProviderKind::Rfc2136(rfc2136) => format!(
                "rfc2136 at {}, key {} ({}){}",
                rfc2136.server,
                rfc2136.key_name,
                rfc2136.algorithm,
                rfc2136
                    .zone
                    .as_ref()
                    .map(|zone| format!(", zone {zone}"))
                    .unwrap_or_default()
            ),
            DnsProviderKind::Hook(hook) => format!("hook {}", hook.command.program()),
        };
        println!("  dns {}: {what}", provider.name);
    }
    for cert in &inventory.certificates {
        let domains: Vec<&str> = cert
            .domains
            .iter()
            .map(certkeeper_core::DomainName::as_str)
            .collect();
        println!(
            "  certificate {}: {} [{}] via {}{}; challenge {}",
            cert.name,
            domains.join(" "),
            cert.key_type,
            cert.ca,
            cert.order_id
                .as_ref()
                .map(|id| format!(", order {id}, action {}", cert.action))
                .unwrap_or_default(),
            ChallengeLabel::of(inventory, &cert.name)
        );
    }
    Exit::Success
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
