//! The real [`Solvers`]: which challenge solver answers a certificate's challenges, from its
//! configured challenge (`inventory.challenge(&spec.name)`, the core's [`ChallengeSpec`]):
//!
//! * HTTP-01 without a webroot: the embedded responder, whose [`ChallengeTokens`] the command
//!   (`renew`, or the daemon) serves on its listeners for as long as attempts may need them;
//! * HTTP-01 with a webroot: a [`Webroot`] writing the key authorization below that
//!   directory, for the web server that owns port 80;
//! * DNS-01: a [`Dns01Solver`] over the `[dns.NAME]` provider the certificate names (RFC 2136
//!   or a hook), noting every record in the state directory's journal before it is published
//!   ([`StoreJournal`]), so a record a crash left behind is removed at the next start
//!   ([`ConfiguredSolvers::remove_stale_records`]).
//!
//! DNS providers are built once and shared by every certificate that names them: a hook
//! provider keeps what its present run printed for the cleanup run, and an RFC 2136 provider
//! builds its TSIG signer once. The cache is keyed by the provider's name and remembers the
//! definition it was built from; a reload that changes a definition (a new key, another
//! server) gets a new provider at the next attempt, one that changes nothing keeps the old.
//! A solver itself is made per attempt: it carries the certificate's name (errors and hooks
//! name it) and the records that attempt presented.
//!
//! A solver that cannot be set up (a webroot that is not a directory, a provider whose key
//! name is no DNS name) is a [`NoSolver`]: the attempt fails before anything is ordered,
//! naming the certificate and the key to fix.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use certkeeper_challenge::ChallengeTokens;
use certkeeper_challenge::webroot::{Webroot, WebrootError};
use certkeeper_core::challenge::{ChallengeSpec, DnsProviderKind, DnsProviderSpec};
use certkeeper_core::{CertName, CertificateSpec, ChallengeSolver, Inventory};
use certkeeper_dns::{
    DEFAULT_QUERY_TIMEOUT, DEFAULT_TIMEOUT, Dns01Settings, Dns01Solver, DnsError, DnsProvider,
    HookProvider, PresentedRecord, PresentedRecords, Rfc2136, Rfc2136Settings,
};
use certkeeper_store::{PresentedJournal, PresentedTxt};

use crate::engine::error::NoSolver;
use crate::engine::ports::Solvers;
use crate::report::error_chain;

/// How long removing an earlier run's stale DNS-01 records may take at a start, in all.
pub const STALE_REMOVAL_BOUND: Duration = Duration::from_secs(30);

/// The solvers of the inventory (see the module docs).
#[derive(Debug)]
pub struct ConfiguredSolvers {
    http01: Arc<ChallengeTokens>,
    journal: Arc<StoreJournal>,
    /// DNS providers built so far, by name, with the definition each was built from.
    providers: Mutex<HashMap<String, BuiltProvider>>,
}

/// A DNS provider and the definition it was built from.
struct BuiltProvider {
    spec: DnsProviderSpec,
    provider: Arc<dyn DnsProvider>,
}

impl std::fmt::Debug for BuiltProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The spec's Debug redacts the TSIG secret.
        f.debug_struct("BuiltProvider")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Why a certificate's solver cannot be set up. Each says which key to fix.
#[derive(Debug, thiserror::Error)]
pub enum SolverSetupError {
    /// `webroot` is not an absolute path to an existing directory.
    #[error(
        "its webroot {} cannot be used; fix `webroot` (an existing directory the web server \
         serves at /.well-known/acme-challenge/ for these names)",
        path.display()
    )]
    Webroot {
        path: PathBuf,
        #[source]
        source: WebrootError,
    },
    /// `dns = "NAME"` names a provider the inventory does not define (validation prevents
    /// this; an inventory built by hand may not).
    #[error(
        "it names DNS provider `{provider}`, which is not defined; add [dns.{provider}] or fix `dns`"
    )]
    UnknownDnsProvider { provider: String },
    /// A hook provider's program is not an executable file.
    #[error(
        "DNS provider `{provider}` runs {program}, which {problem}; fix `command` in \
         [dns.{provider}]"
    )]
    HookProgram {
        provider: String,
        program: String,
        problem: &'static str,
    },
    /// The provider's definition cannot be turned into a provider.
    #[error("DNS provider `{provider}` cannot be set up; fix [dns.{provider}]")]
    DnsProvider {
        provider: String,
        #[source]
        source: Box<DnsError>,
    },
}

impl ConfiguredSolvers {
    /// `http01`: the tokens the embedded responder serves; `journal`: where DNS-01 records
    /// are noted before they are published (one per store).
    pub fn new(http01: ChallengeTokens, journal: Arc<PresentedJournal>) -> Self {
        Self {
            http01: Arc::new(http01),
            journal: Arc::new(StoreJournal(journal)),
            providers: Mutex::default(),
        }
    }

    /// The DNS provider called `name` in `inventory`, built once per definition.
    ///
    /// # Errors
    /// When the inventory defines no such provider or its definition cannot be built.
    pub fn dns_provider(
        &self,
        inventory: &Inventory,
        name: &str,
    ) -> Result<Arc<dyn DnsProvider>, SolverSetupError> {
        let spec =
            inventory
                .dns_provider(name)
                .ok_or_else(|| SolverSetupError::UnknownDnsProvider {
                    provider: name.to_owned(),
                })?;
        let mut providers = self
            .providers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(built) = providers.get(name).filter(|built| built.spec == *spec) {
            return Ok(Arc::clone(&built.provider));
        }
        let provider = build_provider(spec).map_err(|source| SolverSetupError::DnsProvider {
            provider: name.to_owned(),
            source: Box::new(source),
        })?;
        providers.insert(
            name.to_owned(),
            BuiltProvider {
                spec: spec.clone(),
                provider: Arc::clone(&provider),
            },
        );
        Ok(provider)
    }

    /// Remove the DNS-01 records an earlier run presented and never removed (it was killed
    /// between the two), through the providers that wrote them; each removal and failure is
    /// logged, and what could not be removed stays in the journal for the next start. Run
    /// under the state directory lock, before any attempt presents a record: a resumed order
    /// presents the very value a crash left behind.
    ///
    /// Bounded by [`STALE_REMOVAL_BOUND`] in all: the daemon does this before it tells
    /// systemd it is ready, and an unreachable server must not hold that up past the unit's
    /// start timeout. What was not removed in time stays in the journal.
    pub async fn remove_stale_records(&self, inventory: &Inventory) {
        if tokio::time::timeout(STALE_REMOVAL_BOUND, self.remove_stale_unbounded(inventory))
            .await
            .is_err()
        {
            tracing::warn!(
                bound = ?STALE_REMOVAL_BOUND,
                "removing the TXT records an earlier run left behind took too long; the rest are tried again at the next start"
            );
        }
    }

    async fn remove_stale_unbounded(&self, inventory: &Inventory) {
        let records: Vec<PresentedRecord> = match self.journal.0.records() {
            Ok(records) => records.into_iter().map(from_store).collect(),
            Err(err) => {
                tracing::warn!(
                    error = error_chain(&err),
                    "cannot read the journal of presented DNS-01 records; records an earlier run left behind are not removed"
                );
                return;
            }
        };
        let providers: BTreeSet<&str> = records.iter().map(|r| r.provider.as_str()).collect();
        for name in providers {
            let provider = match self.dns_provider(inventory, name) {
                Ok(provider) => provider,
                Err(err) => {
                    for record in records.iter().filter(|r| r.provider == name) {
                        tracing::warn!(provider = name, fqdn = %record.fqdn, error = error_chain(&err), "a TXT record an earlier run presented cannot be removed; remove it by hand (it stays in the journal)");
                    }
                    continue;
                }
            };
            let removals =
                certkeeper_dns::remove_stale_records(provider.as_ref(), &records, &*self.journal)
                    .await;
            for removal in removals {
                if let Err(err) = removal.result {
                    tracing::warn!(provider = name, fqdn = %removal.record.fqdn, error = error_chain(&err), "cannot remove a TXT record an earlier run left behind; it is tried again at the next start");
                }
            }
        }
    }
}

impl Solvers for ConfiguredSolvers {
    fn for_certificate(
        &self,
        inventory: &Inventory,
        spec: &CertificateSpec,
    ) -> Result<Arc<dyn ChallengeSolver>, NoSolver> {
        let no_solver = |source: SolverSetupError| NoSolver {
            cert: spec.name.clone(),
            source: Box::new(source),
        };
        match inventory.challenge(&spec.name) {
            ChallengeSpec::Http01 { webroot: None } => {
                let solver: Arc<dyn ChallengeSolver> = self.http01.clone();
                Ok(solver)
            }
            ChallengeSpec::Http01 {
                webroot: Some(path),
            } => match Webroot::new(path) {
                Ok(webroot) => Ok(Arc::new(webroot)),
                Err(source) => Err(no_solver(SolverSetupError::Webroot {
                    path: path.clone(),
                    source,
                })),
            },
            ChallengeSpec::Dns01 { provider } => {
                let built = self.dns_provider(inventory, provider).map_err(no_solver)?;
                let settings = inventory
                    .dns_provider(provider)
                    .map(dns01_settings)
                    .unwrap_or_default();
                let journal: Arc<dyn PresentedRecords> = self.journal.clone();
                let domains = spec.domains.iter().map(ToString::to_string).collect();
                Ok(Arc::new(
                    Dns01Solver::new(built, settings, journal)
                        .with_certificate(spec.name.as_str(), domains),
                ))
            }
        }
    }
}

/// What `certkeeper check` can find wrong with the solvers of `inventory` without changing
/// anything or contacting anyone: every webroot an absolute path to an existing directory
/// (one open, as an attempt does), every DNS provider buildable (key name and zone DNS
/// names), and every hook provider's program (argv form) an executable file. Each problem
/// with what it concerns (`certificate www`, `[dns.bind]`), in inventory order.
pub fn check_setup(inventory: &Inventory) -> Vec<(String, SolverSetupError)> {
    let mut problems = Vec::new();
    for spec in &inventory.certificates {
        if let ChallengeSpec::Http01 {
            webroot: Some(path),
        } = inventory.challenge(&spec.name)
            && let Err(source) = Webroot::new(path)
        {
            let err = SolverSetupError::Webroot {
                path: path.clone(),
                source,
            };
            problems.push((format!("certificate {}", spec.name), err));
        }
    }
    for provider in &inventory.challenges.dns_providers {
        let subject = format!("[dns.{}]", provider.name);
        if let Err(source) = build_provider(provider) {
            let err = SolverSetupError::DnsProvider {
                provider: provider.name.clone(),
                source: Box::new(source),
            };
            problems.push((subject.clone(), err));
        }
        if let DnsProviderKind::Hook(hook) = &provider.kind
            && let Some(problem) = program_problem(hook.command.program())
        {
            let err = SolverSetupError::HookProgram {
                provider: provider.name.clone(),
                program: hook.command.program().to_owned(),
                problem,
            };
            problems.push((subject, err));
        }
    }
    problems
}

/// Why `program` cannot be executed, if it cannot: a path (with a `/`) must be an
/// executable file; a bare name must be one in a directory of `PATH`, as the hook runner
/// looks it up.
fn program_problem(program: &str) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = std::path::Path::new(program);
        if !path.exists() {
            Some("does not exist")
        } else if !executable(path) {
            Some("is not an executable file")
        } else {
            None
        }
    } else {
        // The hook runner's PATH when certkeeper has none.
        let path = std::env::var_os("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        let found = std::env::split_paths(&path).any(|dir| executable(&dir.join(program)));
        (!found).then_some("is not an executable file in any directory of PATH")
    }
}

/// Whether `name` answers through the embedded HTTP-01 responder (and so needs its
/// listener while it is attempted).
pub fn uses_embedded_responder(inventory: &Inventory, name: &CertName) -> bool {
    *inventory.challenge(name) == ChallengeSpec::EMBEDDED_HTTP01
}

/// How a certificate proves control, for people and monitoring: its challenge type and,
/// for DNS-01, the provider. Borrowed from the inventory: the daemon makes one per
/// certificate whenever it publishes its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeLabel<'a> {
    /// `http-01` or `dns-01`.
    pub kind: &'static str,
    /// The webroot of an HTTP-01 webroot challenge.
    pub webroot: Option<&'a Path>,
    /// The `[dns.NAME]` of a DNS-01 challenge.
    pub dns_provider: Option<&'a str>,
}

impl<'a> ChallengeLabel<'a> {
    /// The label of certificate `name` in `inventory`.
    pub fn of(inventory: &'a Inventory, name: &CertName) -> Self {
        match inventory.challenge(name) {
            ChallengeSpec::Http01 { webroot } => Self {
                kind: "http-01",
                webroot: webroot.as_deref(),
                dns_provider: None,
            },
            ChallengeSpec::Dns01 { provider } => Self {
                kind: "dns-01",
                webroot: None,
                dns_provider: Some(provider),
            },
        }
    }

    /// What the solver is, beside the type: `embedded`, `webroot` or the provider's name.
    pub fn solver(&self) -> &'a str {
        match (self.webroot, self.dns_provider) {
            (_, Some(provider)) => provider,
            (Some(_), None) => "webroot",
            (None, None) => "embedded",
        }
    }
}

impl std::fmt::Display for ChallengeLabel<'_> {
    /// `http-01`, `http-01 webroot /var/www/html`, `dns-01 bind`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind)?;
        if let Some(webroot) = self.webroot {
            write!(f, " webroot {}", webroot.display())?;
        }
        if let Some(provider) = self.dns_provider {
            write!(f, " {provider}")?;
        }
        Ok(())
    }
}

/// The DNS crate's provider for a `[dns.NAME]` definition.
fn build_provider(spec: &DnsProviderSpec) -> Result<Arc<dyn DnsProvider>, DnsError> {
    match &spec.kind {
        DnsProviderKind::Rfc2136(rfc2136) => {
            let settings = Rfc2136Settings {
                server: rfc2136.server,
                key_name: rfc2136.key_name.clone(),
                algorithm: rfc2136.algorithm,
                secret: rfc2136.secret.clone(),
                zone: rfc2136.zone.clone(),
                ttl: rfc2136.ttl,
                timeout: DEFAULT_TIMEOUT,
            };
            Ok(Arc::new(Rfc2136::new(spec.name.clone(), &settings)?))
        }
        DnsProviderKind::Hook(hook) => {
            Ok(Arc::new(HookProvider::new(spec.name.clone(), hook.clone())))
        }
    }
}

/// The solver's settings from a provider's definition.
fn dns01_settings(spec: &DnsProviderSpec) -> Dns01Settings {
    Dns01Settings {
        follow_cname: spec.follow_cname,
        propagation: spec.propagation.clone(),
        query_timeout: DEFAULT_QUERY_TIMEOUT,
    }
}

/// The DNS crate's journal port over the store's journal of presented records.
#[derive(Debug)]
pub struct StoreJournal(Arc<PresentedJournal>);

impl PresentedRecords for StoreJournal {
    fn record(&self, record: &PresentedRecord) -> io::Result<()> {
        self.0.note(&to_store(record)).map_err(io::Error::other)
    }

    fn forget(&self, record: &PresentedRecord) -> io::Result<()> {
        self.0.forget(&to_store(record)).map_err(io::Error::other)
    }
}

fn to_store(record: &PresentedRecord) -> PresentedTxt {
    PresentedTxt {
        provider: record.provider.clone(),
        fqdn: record.fqdn.clone(),
        value: record.value.clone(),
    }
}

fn from_store(record: PresentedTxt) -> PresentedRecord {
    PresentedRecord {
        provider: record.provider,
        fqdn: record.fqdn,
        value: record.value,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use certkeeper_config::Environment;
    use certkeeper_core::ChallengeKind;
    use certkeeper_store::Store;

    use super::*;

    /// An inventory with a certificate of each kind: `embedded`, `site` (webroot `webroot`),
    /// `wild` and `mail` (DNS-01 through `[dns.bind]`), `hooked` (DNS-01 through a hook).
    fn inventory(dir: &Path, webroot: &Path, key_name: &str) -> Inventory {
        let secret = dir.join("tsig.secret");
        fs::write(&secret, "c2VjcmV0LWJ5dGVzLW9mLXRoZS10c2lnLWtleQ==\n").expect("secret");
        fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let config = dir.join("certkeeper.toml");
        fs::write(
            &config,
            format!(
                r#"state_dir = "{state}"

[[ca]]
name = "ca"
directory = "https://ca.invalid/directory"

[dns.bind]
type = "rfc2136"
server = "127.0.0.1:5353"
key_name = "{key_name}"
secret_file = "{secret}"
follow_cname = false
propagation_timeout = "9s"
propagation_interval = "1s"

[dns.script]
type = "hook"
command = ["/bin/true"]
propagation = "none"

[[certificate]]
name = "embedded"
domains = ["www.example.com"]

[[certificate]]
name = "site"
domains = ["site.example.com"]
webroot = "{webroot}"

[[certificate]]
name = "wild"
domains = ["example.com", "*.example.com"]
challenge = "dns-01"
dns = "bind"

[[certificate]]
name = "mail"
domains = ["mail.example.com"]
challenge = "dns-01"
dns = "bind"

[[certificate]]
name = "hooked"
domains = ["intranet.example.com"]
challenge = "dns-01"
dns = "script"
"#,
                state = dir.join("state").display(),
                secret = secret.display(),
                webroot = webroot.display(),
            ),
        )
        .expect("config");
        match certkeeper_config::load(&config, &Environment::empty()) {
            Ok(loaded) => loaded.inventory,
            Err(errors) => panic!("{:?}", errors.errors),
        }
    }

    fn solvers(inventory: &Inventory) -> ConfiguredSolvers {
        let store = Store::open(&inventory.state_dir).expect("store");
        ConfiguredSolvers::new(ChallengeTokens::new(), Arc::new(store.presented_journal()))
    }

    fn spec<'a>(inventory: &'a Inventory, name: &str) -> &'a CertificateSpec {
        inventory
            .certificates
            .iter()
            .find(|spec| spec.name.as_str() == name)
            .expect("certificate")
    }

    #[test]
    fn each_certificate_gets_the_solver_it_is_configured_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let webroot = dir.path().join("html");
        fs::create_dir(&webroot).expect("webroot");
        let inventory = inventory(dir.path(), &webroot, "ck");
        let solvers = solvers(&inventory);
        let solver = |name| {
            solvers
                .for_certificate(&inventory, spec(&inventory, name))
                .expect("a solver")
        };
        let is_embedded = |solver: &Arc<dyn ChallengeSolver>| {
            std::ptr::addr_eq(Arc::as_ptr(solver), Arc::as_ptr(&solvers.http01))
        };
        let embedded = solver("embedded");
        assert_eq!(embedded.kind(), ChallengeKind::Http01);
        assert!(is_embedded(&embedded));
        let site = solver("site");
        assert_eq!(site.kind(), ChallengeKind::Http01);
        assert!(!is_embedded(&site), "the webroot solver");
        assert_eq!(solver("wild").kind(), ChallengeKind::Dns01);
        assert_eq!(solver("hooked").kind(), ChallengeKind::Dns01);

        let labels: Vec<String> = ["embedded", "site", "wild", "hooked"]
            .iter()
            .map(|name| {
                ChallengeLabel::of(&inventory, &CertName::new(name).expect("name")).to_string()
            })
            .collect();
        assert_eq!(
            labels,
            [
                "http-01".to_owned(),
                format!("http-01 webroot {}", webroot.display()),
                "dns-01 bind".to_owned(),
                "dns-01 script".to_owned(),
            ]
        );
        assert!(uses_embedded_responder(
            &inventory,
            &CertName::new("embedded").expect("name")
        ));
        assert!(!uses_embedded_responder(
            &inventory,
            &CertName::new("site").expect("name")
        ));
        assert!(check_setup(&inventory).is_empty());
    }

    #[test]
    fn providers_are_built_once_per_definition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = inventory(dir.path(), dir.path(), "ck");
        let solvers = solvers(&inventory);
        let first = solvers.dns_provider(&inventory, "bind").expect("built");
        let again = solvers.dns_provider(&inventory, "bind").expect("cached");
        assert!(
            Arc::ptr_eq(&first, &again),
            "one provider for every certificate"
        );
        // A reload that changes the definition gets a new provider; others stay.
        let hook = solvers.dns_provider(&inventory, "script").expect("built");
        let reloaded = self::inventory(dir.path(), dir.path(), "other-key");
        let changed = solvers.dns_provider(&reloaded, "bind").expect("rebuilt");
        assert!(!Arc::ptr_eq(&first, &changed), "a new key, a new provider");
        let kept = solvers.dns_provider(&reloaded, "script").expect("cached");
        assert!(
            Arc::ptr_eq(&hook, &kept),
            "an unchanged definition keeps its provider"
        );
        assert!(matches!(
            solvers.dns_provider(&reloaded, "gone"),
            Err(SolverSetupError::UnknownDnsProvider { .. })
        ));
    }

    #[test]
    fn an_unusable_webroot_fails_naming_the_certificate_and_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("not-there");
        let inventory = inventory(dir.path(), &missing, "ck");
        let Err(err) = solvers(&inventory).for_certificate(&inventory, spec(&inventory, "site"))
        else {
            panic!("a webroot that does not exist has no solver");
        };
        let text = error_chain(&err);
        assert!(
            text.starts_with("no challenge solver for certificate site: its webroot "),
            "{text}"
        );
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains("fix `webroot`"), "{text}");
        let problems = check_setup(&inventory);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "certificate site");
    }

    #[test]
    fn a_missing_hook_program_is_found_by_check() {
        assert_eq!(program_problem("/bin/sh"), None);
        assert_eq!(program_problem("sh"), None);
        assert_eq!(
            program_problem("/nonexistent/dns-hook"),
            Some("does not exist")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("dns-hook");
        fs::write(&script, "#!/bin/sh\n").expect("script");
        fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        let script = script.to_str().expect("UTF-8 path");
        assert_eq!(program_problem(script), Some("is not an executable file"));
        assert_eq!(
            program_problem(&dir.path().display().to_string()),
            Some("is not an executable file")
        );
        assert!(program_problem("certkeeper-no-such-program").is_some());
    }
}
