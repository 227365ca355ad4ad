//! The dependency rule, checked: the core links no runtime, network or filesystem adapter,
//! and adapters depend on the core only, never on each other. Only the binary wires them.

use std::path::Path;

fn dependencies(krate: &str) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let parsed: toml::Table = text.parse().expect("valid manifest");
    parsed
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn core_is_pure() {
    let deps = dependencies("core");
    for forbidden in [
        "tokio",
        "axum",
        "instant-acme",
        "hyper",
        "rustls",
        "rcgen",
        "certkeeper-store",
        "certkeeper-acme",
        "certkeeper-dns",
        "hickory-proto",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "core depends on {forbidden}: {deps:?}"
        );
    }
}

/// The adapter crates, each with the other adapters it may use. The DNS-01 solver runs its
/// hook provider, and the notifier its `command` targets, through the shared hook runner (the
/// same sandboxed environment, timeout and process-group kill as every other hook) rather than
/// a second copy of it. The fleet's PostgreSQL adapter is an adapter like the others: the engine
/// will reach it through its ports.
const ADAPTERS: [(&str, &[&str]); 9] = [
    ("config", &[]),
    ("store", &[]),
    ("acme", &[]),
    ("challenge", &[]),
    ("hooks", &[]),
    ("certbot", &[]),
    ("dns", &["hooks"]),
    ("notify", &["hooks"]),
    ("fleet", &[]),
];

#[test]
fn adapters_depend_inward_only() {
    for (adapter, allowed) in ADAPTERS {
        let deps = dependencies(adapter);
        assert!(
            deps.iter().any(|d| d == "certkeeper-core"),
            "{adapter} uses the core"
        );
        for (other, _) in ADAPTERS {
            if other == adapter || allowed.contains(&other) {
                continue;
            }
            let name = format!("certkeeper-{other}");
            assert!(
                !deps.contains(&name),
                "{adapter} depends on {name}: adapters must not depend on each other"
            );
        }
    }
}

#[test]
fn only_the_binary_wires_the_dns_solver() {
    for krate in ADAPTERS.iter().map(|(name, _)| *name).chain(["core"]) {
        let deps = dependencies(krate);
        assert!(
            !deps.iter().any(|d| d == "certkeeper-dns"),
            "{krate} depends on certkeeper-dns: only the binary wires adapters together"
        );
    }
    assert!(
        dependencies("certkeeper")
            .iter()
            .any(|d| d == "certkeeper-dns"),
        "the binary wires the DNS-01 solver"
    );
}

/// The binary's modules as nodes (`report`, `engine::daemon`, `commands::renew`, ...) and,
/// for each, the modules it names through `crate::` or `super::`.
fn binary_module_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = std::collections::BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).expect("under src");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|last| last == "mod") {
                parts.pop();
            }
            if parts == ["main"] {
                continue;
            }
            let node = node_of(&parts);
            let text = std::fs::read_to_string(&path).expect("source file");
            let targets: &mut std::collections::BTreeSet<String> =
                graph.entry(node.clone()).or_default();
            for target in referenced_modules(&text, &parts) {
                let target = node_of(&target);
                if target != node && !node.starts_with(&format!("{target}::")) {
                    targets.insert(target);
                }
            }
        }
    }
    graph
}

/// Modules with submodules (`engine`, `commands`) are split one level down.
fn node_of(parts: &[String]) -> String {
    let depth = if parts.len() > 1 { 2 } else { 1 };
    parts[..depth.min(parts.len())].join("::")
}

/// Module paths named by `crate::a::b` and `super::x` in `text` (of the module at `here`),
/// including `use crate::{a, b::c}` groups. Enough Rust for `use` lines and paths in code.
fn referenced_modules(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", here[..here.len().saturating_sub(1)].to_vec()),
    ] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            rest = &rest[at + prefix.len()..];
            for path in paths_at(rest) {
                let mut full = base.clone();
                full.extend(path);
                if !full.is_empty() {
                    found.push(full);
                }
            }
        }
    }
    found
}

/// The identifier paths starting at the beginning of `text`: `a::b::C` or a `{...}` group.
fn paths_at(text: &str) -> Vec<Vec<String>> {
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut end = group.len();
        for (index, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    end = index;
                    break;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        let inner = &group[..end];
        let mut paths = Vec::new();
        let mut depth = 0usize;
        let mut start = 0;
        for (index, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    paths.extend(paths_at(inner[start..index].trim()));
                    start = index + 1;
                }
                _ => {}
            }
        }
        paths.extend(paths_at(inner[start..].trim()));
        return paths;
    }
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || ident == "self" {
            break;
        }
        rest = &rest[ident.len()..];
        // Lower-case segments are modules; a type, trait or macro ends the module path.
        if ident.chars().next().is_some_and(char::is_uppercase) {
            break;
        }
        path.push(ident);
        match rest.strip_prefix("::") {
            Some(after) if after.starts_with('{') => {
                return paths_at(after)
                    .into_iter()
                    .map(|tail| path.iter().cloned().chain(tail).collect())
                    .collect();
            }
            Some(after) => rest = after,
            None => {
                // `crate::report::timestamp(...)`: the last segment is a function or item,
                // unless it is all there is.
                if path.len() > 1 {
                    path.pop();
                }
                break;
            }
        }
    }
    vec![path]
}

#[test]
fn the_binarys_modules_form_no_circle_and_the_engine_serves_every_command() {
    let graph = binary_module_graph();
    assert!(graph.contains_key("engine::daemon"), "{graph:?}");
    assert!(graph.contains_key("commands::renew"), "{graph:?}");
    // The engine is used by the commands, never the other way round, and knows nothing of
    // the command line or its exit codes.
    for (node, targets) in &graph {
        if node == "engine" || node.starts_with("engine::") {
            for target in targets {
                assert!(
                    !(target == "commands"
                        || target.starts_with("commands::")
                        || target == "cli"
                        || target == "exit"),
                    "{node} depends on {target}"
                );
            }
        }
    }
    // No circle: a depth-first search finds no back edge.
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| n == node) {
            panic!(
                "the binary's modules import each other in a circle: {} -> {node}",
                path[at..].join(" -> ")
            );
        }
        path.push(node.to_owned());
        for target in graph.get(node).into_iter().flatten() {
            visit(target, graph, path, done);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = std::collections::BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
    eprintln!(
        "REPORT module graph: {} modules, {} import arrows, no circle",
        graph.len(),
        graph
            .values()
            .map(std::collections::BTreeSet::len)
            .sum::<usize>()
    );
}
