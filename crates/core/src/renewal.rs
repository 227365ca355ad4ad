//! When a lineage needs a new certificate.
//!
//! [`decide`] is a plain function of the configured certificate, what is observed on disk and
//! the current instant; it never reads a clock itself, so its tests are tables of instants.
//! The default renewal point is a third of the certificate's lifetime before expiry: that
//! adapts to 200-, 100- and 47-day certificates as well as to minutes-long test certificates.
//! Short-lived certificates (10 days or less, such as Let's Encrypt's 160-hour `shortlived`
//! profile) renew at half their lifetime, as Let's Encrypt advises. When the CA suggested a
//! renewal window (ARI, [`crate::ari`]), the instant chosen in it replaces the lifetime rule.

use std::time::{Duration, SystemTime};

use crate::ari::SuggestedRenewal;
use crate::inventory::{CertificateSpec, KeyType};
use crate::names::DomainName;

/// What is known about the certificate currently live for a lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCert {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// DNS names in the certificate's subjectAltName, lower case.
    pub domains: Vec<String>,
    /// Key type of the live private key, when recognised.
    pub key_type: Option<KeyType>,
    /// The operator revoked this lineage with `certkeeper revoke`.
    pub revoked: bool,
    /// The CA's suggested renewal window for this certificate (ARI) and the instant chosen in
    /// it, when the CA offers ARI and answered. Boxed: most certificates have none, and the
    /// daemon keeps one of these per certificate.
    pub suggested: Option<Box<SuggestedRenewal>>,
}

/// Certificates living this long or less renew at half their lifetime.
pub const SHORT_LIVED: Duration = Duration::from_secs(10 * 86_400);

/// How long before expiry a certificate of `lifetime` renews when `renew_before` is not set:
/// half of a short-lived certificate's lifetime ([`SHORT_LIVED`]), a third of any other's.
#[must_use]
pub fn default_renew_before(lifetime: Duration) -> Duration {
    if lifetime <= SHORT_LIVED {
        lifetime / 2
    } else {
        lifetime / 3
    }
}

impl ObservedCert {
    /// Total validity period (zero for a malformed certificate whose dates are reversed).
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// When renewal becomes due: the instant chosen in the CA's suggested window when there
    /// is one (but no later than `renew_before` before expiry, when the operator set it);
    /// otherwise `renew_before` (or [`default_renew_before`]) before expiry.
    #[must_use]
    pub fn renewal_due_at(&self, renew_before: Option<Duration>) -> SystemTime {
        let by_lifetime = self.lifetime_due_at(renew_before);
        match (&self.suggested, renew_before) {
            (Some(suggested), Some(_)) => suggested.at.min(by_lifetime),
            (Some(suggested), None) => suggested.at,
            (None, _) => by_lifetime,
        }
    }

    /// The lifetime rule alone: `renew_before` (or [`default_renew_before`]) before expiry.
    #[must_use]
    pub fn lifetime_due_at(&self, renew_before: Option<Duration>) -> SystemTime {
        let before = renew_before.unwrap_or_else(|| default_renew_before(self.lifetime()));
        self.not_after
            .checked_sub(before)
            .unwrap_or(self.not_before)
    }
}

/// Why a certificate is to be ordered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No certificate on disk.
    Missing,
    /// The operator asked (`--force`).
    Forced,
    /// The configured names differ from the certificate's.
    NamesChanged,
    /// The configured key type differs from the live key's.
    KeyTypeChanged,
    /// Inside the renewal window.
    RenewalDue,
    /// Already expired.
    Expired,
}

impl Reason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Forced => "forced",
            Reason::NamesChanged => "names changed",
            Reason::KeyTypeChanged => "key type changed",
            Reason::RenewalDue => "renewal due",
            Reason::Expired => "expired",
        }
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Order a certificate for a lineage that has none.
    Issue(Reason),
    /// Order a certificate replacing the live one.
    Renew(Reason),
    /// Nothing to do until `due_at`.
    NotDue { due_at: SystemTime },
    /// The lineage was revoked by the operator and is left alone unless forced.
    Revoked,
}

/// Decide what to do for `spec` given the live certificate (if any) at instant `now`.
#[must_use]
pub fn decide(
    spec: &CertificateSpec,
    observed: Option<&ObservedCert>,
    now: SystemTime,
    force: bool,
) -> Decision {
    let Some(observed) = observed else {
        return Decision::Issue(if force {
            Reason::Forced
        } else {
            Reason::Missing
        });
    };
    if force {
        return Decision::Renew(Reason::Forced);
    }
    if observed.revoked {
        return Decision::Revoked;
    }
    if !same_names(&spec.domains, &observed.domains) {
        return Decision::Renew(Reason::NamesChanged);
    }
    if observed.key_type.is_some_and(|key| key != spec.key_type) {
        return Decision::Renew(Reason::KeyTypeChanged);
    }
    if now >= observed.not_after {
        return Decision::Renew(Reason::Expired);
    }
    let due_at = observed.renewal_due_at(spec.renew_before);
    if now >= due_at {
        Decision::Renew(Reason::RenewalDue)
    } else {
        Decision::NotDue { due_at }
    }
}

/// Whether a certificate's SANs are exactly the configured names (order does not matter).
#[must_use]
pub fn same_names(configured: &[DomainName], observed: &[String]) -> bool {
    let mut want: Vec<&str> = configured.iter().map(DomainName::as_str).collect();
    let mut have: Vec<String> = observed.iter().map(|d| d.to_ascii_lowercase()).collect();
    want.sort_unstable();
    want.dedup();
    have.sort_unstable();
    have.dedup();
    want.len() == have.len() && want.iter().zip(&have).all(|(w, h)| *w == h.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::LifecycleAction;
    use crate::names::{CaName, CertName};

    const DAY: Duration = Duration::from_secs(86_400);
    const MIN: Duration = Duration::from_secs(60);

    fn spec(renew_before: Option<Duration>) -> CertificateSpec {
        CertificateSpec {
            name: CertName::new("www").expect("valid"),
            ca: CaName::new("ca").expect("valid"),
            domains: vec![
                DomainName::new("a.example.com").expect("valid"),
                DomainName::new("b.example.com").expect("valid"),
            ],
            key_type: KeyType::EcdsaP256,
            order_id: None,
            action: LifecycleAction::Auto,
            renew_before,
            profile: None,
            preferred_chain: None,
            schedule: std::sync::Arc::default(),
            hooks: std::sync::Arc::default(),
            reuse_key: false,
            key_group: None,
        }
    }

    fn observed(start: SystemTime, lifetime: Duration) -> ObservedCert {
        ObservedCert {
            not_before: start,
            not_after: start + lifetime,
            domains: vec!["b.example.com".into(), "a.example.com".into()],
            key_type: Some(KeyType::EcdsaP256),
            revoked: false,
            suggested: None,
        }
    }

    #[test]
    fn default_window_is_a_third_of_the_lifetime() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * DAY;
        // (lifetime, renew_before, elapsed since issuance, expected)
        let table: &[(Duration, Option<Duration>, Duration, Decision)] = &[
            (
                199 * DAY,
                None,
                DAY,
                Decision::NotDue {
                    due_at: t0 + 199 * DAY - 199 * DAY / 3,
                },
            ),
            (
                199 * DAY,
                None,
                133 * DAY,
                Decision::Renew(Reason::RenewalDue),
            ),
            (
                100 * DAY,
                None,
                66 * DAY,
                Decision::NotDue {
                    due_at: t0 + 100 * DAY - 100 * DAY / 3,
                },
            ),
            (
                100 * DAY,
                None,
                67 * DAY,
                Decision::Renew(Reason::RenewalDue),
            ),
            (
                47 * DAY,
                None,
                32 * DAY,
                Decision::Renew(Reason::RenewalDue),
            ),
            // Short-lived (10 days or less): at half the lifetime.
            (
                10 * MIN,
                None,
                4 * MIN,
                Decision::NotDue {
                    due_at: t0 + 5 * MIN,
                },
            ),
            (10 * MIN, None, 5 * MIN, Decision::Renew(Reason::RenewalDue)),
            (
                6 * DAY,
                None,
                2 * DAY,
                Decision::NotDue {
                    due_at: t0 + 3 * DAY,
                },
            ),
            (
                398 * DAY,
                Some(30 * DAY),
                300 * DAY,
                Decision::NotDue {
                    due_at: t0 + 368 * DAY,
                },
            ),
            (
                398 * DAY,
                Some(30 * DAY),
                368 * DAY,
                Decision::Renew(Reason::RenewalDue),
            ),
            (90 * DAY, None, 90 * DAY, Decision::Renew(Reason::Expired)),
            // renew_before longer than the lifetime: due from the start
            (
                DAY,
                Some(2 * DAY),
                Duration::ZERO,
                Decision::Renew(Reason::RenewalDue),
            ),
        ];
        for (lifetime, renew_before, elapsed, expected) in table {
            let got = decide(
                &spec(*renew_before),
                Some(&observed(t0, *lifetime)),
                t0 + *elapsed,
                false,
            );
            assert_eq!(got, *expected, "lifetime {lifetime:?} elapsed {elapsed:?}");
        }
    }

    #[test]
    fn config_changes_missing_force_and_revoked() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * DAY;
        let fresh = observed(t0, 90 * DAY);
        let spec = spec(None);
        assert_eq!(
            decide(&spec, None, t0, false),
            Decision::Issue(Reason::Missing)
        );
        assert_eq!(
            decide(&spec, None, t0, true),
            Decision::Issue(Reason::Forced)
        );
        assert_eq!(
            decide(&spec, Some(&fresh), t0, true),
            Decision::Renew(Reason::Forced)
        );

        let mut names = fresh.clone();
        names.domains.pop();
        assert_eq!(
            decide(&spec, Some(&names), t0, false),
            Decision::Renew(Reason::NamesChanged)
        );

        let mut key = fresh.clone();
        key.key_type = Some(KeyType::Rsa2048);
        assert_eq!(
            decide(&spec, Some(&key), t0, false),
            Decision::Renew(Reason::KeyTypeChanged)
        );

        let mut revoked = fresh.clone();
        revoked.revoked = true;
        assert_eq!(
            decide(&spec, Some(&revoked), t0 + 89 * DAY, false),
            Decision::Revoked
        );
        assert_eq!(
            decide(&spec, Some(&revoked), t0, true),
            Decision::Renew(Reason::Forced)
        );
    }

    #[test]
    fn names_compare_as_sets_case_insensitively() {
        let configured = [
            DomainName::new("a.example.com").expect("valid"),
            DomainName::new("b.example.com").expect("valid"),
        ];
        assert!(same_names(
            &configured,
            &["B.example.com".into(), "a.example.com".into()]
        ));
        assert!(!same_names(&configured, &["a.example.com".into()]));
        assert!(!same_names(
            &configured,
            &["a.example.com".into(), "c.example.com".into()]
        ));
    }
}
