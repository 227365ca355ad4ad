//! `certkeeper check`: the inventory is valid; say what it holds.

use std::path::Path;

use certkeeper_core::Inventory;

use crate::exit::Exit;

pub fn run(path: &Path, inventory: &Inventory) -> Exit {
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
    for cert in &inventory.certificates {
        let domains: Vec<&str> = cert
            .domains
            .iter()
            .map(certkeeper_core::DomainName::as_str)
            .collect();
        println!(
            "  certificate {}: {} [{}] via {}{}",
            cert.name,
            domains.join(" "),
            cert.key_type,
            cert.ca,
            cert.order_id
                .as_ref()
                .map(|id| format!(", order {id}, action {}", cert.action))
                .unwrap_or_default()
        );
    }
    Exit::Success
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
