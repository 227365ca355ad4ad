//! One certbot lineage, as its `renewal/NAME.conf` describes it, translated into certkeeper's
//! terms.
//!
//! The translation keeps what certkeeper can honour (server, order id and action, renewal
//! margin, ACME profile, HTTP-01 port, hooks, and how the lineage was validated: webroot paths, the RFC
//! 2136 credentials file, manual hooks) and turns everything else into notes for the operator
//! (web-server authenticators, key settings that differ from the live key), because an
//! import that silently drops a behaviour is worse than one that asks a question. Which
//! challenge that makes is decided in [`crate::challenge`].

use std::path::PathBuf;

use certkeeper_core::{KeyType, LifecycleAction};
use thiserror::Error;
use url::Url;

use crate::configobj::{self, ConfigObj};

/// certbot's default server (Let's Encrypt production), used when `server` is absent.
pub const DEFAULT_SERVER: &str = "https://acme-v02.api.letsencrypt.org/directory";

const PARAMS: &str = "renewalparams";

/// The files a lineage's renewal file points at (`live/NAME/*.pem` symlinks, normally).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineageFiles {
    pub cert: Option<PathBuf>,
    pub privkey: Option<PathBuf>,
    pub chain: Option<PathBuf>,
    pub fullchain: Option<PathBuf>,
}

/// certbot's `--server`, split the way certkeeper configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The directory URL without `action` and `orderId`.
    pub directory: String,
    /// `orderId` from the query, for the certificate's `order_id`.
    pub order_id: Option<String>,
    /// `action` from the query, for the certificate's `action` (absent for `enroll`, which
    /// only makes sense for a first issuance).
    pub action: Option<LifecycleAction>,
    /// What could not be carried over, for the operator.
    pub notes: Vec<String>,
}

/// The hooks certbot ran for this lineage (`--pre-hook`, `--post-hook`, `--deploy-hook`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hooks {
    pub pre: Option<String>,
    pub post: Option<String>,
    /// `renew_hook` in the file: certbot's deploy hook, run after each successful renewal.
    pub deploy: Option<String>,
}

impl Hooks {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pre.is_none() && self.post.is_none() && self.deploy.is_none()
    }
}

/// certbot's `--manual` hooks (`manual_auth_hook`, `manual_cleanup_hook`), as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManualHooks {
    pub auth: Option<String>,
    pub cleanup: Option<String>,
}

/// The settings of certbot's `dns-rfc2136` plugin in a renewal file. The credentials file
/// itself (server, key and secret) is read by the importer, see [`crate::credentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc2136Settings {
    /// `dns_rfc2136_credentials`: the INI file with the server, key name, algorithm and
    /// secret, as written (certbot stores it absolute).
    pub credentials: PathBuf,
    /// `dns_rfc2136_propagation_seconds`, when set: how long certbot waited before asking
    /// the CA (60 seconds when unset).
    pub propagation_seconds: Option<u64>,
}

/// The ACME profile certbot 4 asks for (`--required-profile` or `--preferred-profile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedProfile {
    /// The profile name, as written.
    pub name: String,
    /// `required_profile`: certbot fails when the CA does not offer it, as certkeeper does.
    /// `preferred_profile`: certbot then falls back to the CA's default profile.
    pub required: bool,
}

impl RequestedProfile {
    /// The renewal file's key it came from.
    #[must_use]
    pub fn key(&self) -> &'static str {
        if self.required {
            "required_profile"
        } else {
            "preferred_profile"
        }
    }
}

/// A lineage's renewal settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The lineage name: the renewal file's name without `.conf`.
    pub name: String,
    pub files: LineageFiles,
    pub server: Server,
    /// The certbot account id (a directory under `accounts/<server>/`).
    pub account: Option<String>,
    pub authenticator: Option<String>,
    pub http01_port: Option<u16>,
    /// Webroot directories (`webroot_path` and `[[webroot_map]]`), deduplicated.
    pub webroot: Vec<String>,
    /// `webroot_path` as written, in order: certbot uses the last one for a name that
    /// `[[webroot_map]]` does not list.
    pub webroot_path: Vec<String>,
    /// `[[webroot_map]]`: (domain, directory) pairs.
    pub webroot_map: Vec<(String, String)>,
    /// `pref_challs` as challenge types (`dns-01`, `http-01`), in order.
    pub preferred_challenges: Vec<String>,
    pub manual: ManualHooks,
    /// Set for lineages of certbot's `dns-rfc2136` plugin.
    pub rfc2136: Option<Rfc2136Settings>,
    /// The key certbot would use for its next renewal, as certkeeper names it, when
    /// certkeeper supports it.
    pub requested_key_type: Option<KeyType>,
    /// The same, as certbot's settings say it (`rsa 2048`, `ecdsa secp521r1`).
    pub requested_key: String,
    /// `renew_before_expiry` as a certkeeper duration (`30d`), when set and understood.
    pub renew_before: Option<String>,
    /// certbot 4's `required_profile` or `preferred_profile`, for the certificate's `profile`.
    pub profile: Option<RequestedProfile>,
    /// `preferred_chain` (`--preferred-chain`): the issuer common name of the chain to pick.
    pub preferred_chain: Option<String>,
    /// `reuse_key = True` (`--reuse-key`): the private key is kept across renewals.
    pub reuse_key: bool,
    pub hooks: Hooks,
    /// Settings that could not be carried over.
    pub notes: Vec<String>,
}

/// A renewal file that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineageError {
    #[error(transparent)]
    Syntax(#[from] configobj::ParseError),
    #[error("has no [renewalparams] section")]
    NoRenewalParams,
    #[error("its `server` is not a URL: {reason}")]
    BadServer { server: String, reason: String },
}

impl Lineage {
    /// Read the renewal file `text` of lineage `name`.
    ///
    /// # Errors
    /// When the text is not configobj, has no `[renewalparams]` or an unparsable `server`.
    pub fn from_renewal_conf(name: &str, text: &str) -> Result<Lineage, LineageError> {
        let conf = configobj::parse(text)?;
        if !conf.sections.contains_key(PARAMS) {
            return Err(LineageError::NoRenewalParams);
        }
        let param = |key: &str| conf.get_str(PARAMS, key).filter(|value| !value.is_empty());
        let mut notes = Vec::new();

        let server_text = param("server").unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let server = split_server(&server_text)?;

        let http01_port = match param("http01_port") {
            None => None,
            Some(text) => match text.parse::<u16>() {
                Ok(port) => Some(port),
                Err(_) => {
                    notes.push(format!(
                        "http01_port {text:?} is not a port number; ignored"
                    ));
                    None
                }
            },
        };

        let mut webroot_path: Vec<String> = conf.get_list(PARAMS, "webroot_path");
        webroot_path.retain(|path| !path.is_empty() && path != "None");
        let webroot_map: Vec<(String, String)> = conf
            .sections
            .get(&format!("{PARAMS}.webroot_map"))
            .map(|map| {
                map.iter()
                    .map(|(domain, path)| (domain.to_ascii_lowercase(), path.joined()))
                    .filter(|(_, path)| !path.is_empty() && path != "None")
                    .collect()
            })
            .unwrap_or_default();
        let mut webroot = webroot_path.clone();
        webroot.extend(webroot_map.iter().map(|(_, path)| path.clone()));
        let mut seen = Vec::new();
        webroot.retain(|path| {
            let first = !seen.contains(path);
            seen.push(path.clone());
            first
        });

        let preferred_challenges = conf
            .get_list(PARAMS, "pref_challs")
            .iter()
            .map(|challenge| challenge_type(challenge))
            .collect();
        let authenticator = param("authenticator").map(|name| plugin_name(&name).to_owned());
        // Third-party-style plugin names prefix their keys: `certbot-dns-rfc2136:dns-rfc2136`
        // keeps `certbot_dns_rfc2136:dns_rfc2136_credentials`.
        let plugin_param =
            |key: &str| param(key).or_else(|| param(&format!("certbot_dns_rfc2136:{key}")));
        let rfc2136 = if authenticator.as_deref() == Some(RFC2136) {
            plugin_param("dns_rfc2136_credentials").map(|credentials| {
                let propagation_seconds = plugin_param("dns_rfc2136_propagation_seconds")
                    .and_then(|text| match text.parse::<u64>() {
                        Ok(seconds) => Some(seconds),
                        Err(_) => {
                            notes.push(format!(
                                "dns_rfc2136_propagation_seconds {text:?} is not a number of seconds; ignored"
                            ));
                            None
                        }
                    });
                Rfc2136Settings {
                    credentials: PathBuf::from(credentials),
                    propagation_seconds,
                }
            })
        } else {
            None
        };

        let (requested_key_type, requested_key) = requested_key(&conf);
        let renew_before = match conf.top_str("renew_before_expiry") {
            None => None,
            Some(text) => {
                let converted = convert_interval(&text);
                if converted.is_none() {
                    notes.push(format!(
                        "renew_before_expiry = {text:?} is not understood; set renew_before by hand"
                    ));
                }
                converted
            }
        };

        let profile = requested_profile(param("required_profile"), param("preferred_profile"));
        if let Some(RequestedProfile {
            name,
            required: false,
        }) = &profile
        {
            notes.push(format!(
                "certbot asked for the ACME profile {name:?} where the CA offers it \
                 (preferred_profile) and otherwise used the CA's default; certkeeper refuses to \
                 order a profile the CA does not offer, so remove `profile` if this CA stops \
                 offering it"
            ));
        }

        // certbot writes `None` for an option given no value.
        let preferred_chain = param("preferred_chain").filter(|name| name != "None");
        let reuse_key = param("reuse_key").is_some_and(|value| value.eq_ignore_ascii_case("true"));

        let file = |key: &str| {
            conf.top_str(key)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Ok(Lineage {
            name: name.to_owned(),
            files: LineageFiles {
                cert: file("cert"),
                privkey: file("privkey"),
                chain: file("chain"),
                fullchain: file("fullchain"),
            },
            server,
            account: param("account"),
            authenticator,
            http01_port,
            webroot,
            webroot_path,
            webroot_map,
            preferred_challenges,
            manual: ManualHooks {
                auth: param("manual_auth_hook"),
                cleanup: param("manual_cleanup_hook"),
            },
            rfc2136,
            requested_key_type,
            requested_key,
            renew_before,
            profile,
            preferred_chain,
            reuse_key,
            hooks: Hooks {
                pre: param("pre_hook"),
                post: param("post_hook"),
                deploy: param("renew_hook"),
            },
            notes,
        })
    }
}

/// The profile certbot asks for: `required_profile` wins over `preferred_profile` (certbot
/// accepts only one of them; the required one is what certkeeper does either way). certbot
/// writes `None` for an unset value.
fn requested_profile(
    required: Option<String>,
    preferred: Option<String>,
) -> Option<RequestedProfile> {
    let set = |value: Option<String>| value.filter(|name| name != "None");
    set(required)
        .map(|name| RequestedProfile {
            name,
            required: true,
        })
        .or_else(|| {
            set(preferred).map(|name| RequestedProfile {
                name,
                required: false,
            })
        })
}

/// certbot's name of its RFC 2136 plugin.
pub const RFC2136: &str = "dns-rfc2136";

/// A plugin's name without the `certbot-dns-rfc2136:` prefix of third-party-style names.
fn plugin_name(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, plugin)| plugin)
}

/// A `pref_challs` entry as the challenge type certbot means: `dns` and `dns-01` are the
/// same (certbot normalizes what it writes, older files may not be).
fn challenge_type(text: &str) -> String {
    let lower = text.trim().to_ascii_lowercase();
    match lower.as_str() {
        "dns" => "dns-01".to_owned(),
        "http" => "http-01".to_owned(),
        "tls-alpn" => "tls-alpn-01".to_owned(),
        _ => lower,
    }
}

/// Split certbot's `--server` into the directory and DigiCert's lifecycle parameters.
///
/// # Errors
/// When `server` is not a URL.
pub fn split_server(server: &str) -> Result<Server, LineageError> {
    let mut url = Url::parse(server.trim()).map_err(|err| LineageError::BadServer {
        server: server.to_owned(),
        reason: err.to_string(),
    })?;
    let mut order_id = None;
    let mut action = None;
    let mut notes = Vec::new();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, value) in url.query_pairs() {
        if key.eq_ignore_ascii_case("orderId") {
            order_id = Some(value.into_owned());
        } else if key.eq_ignore_ascii_case("action") {
            if value.eq_ignore_ascii_case("enroll") {
                notes.push(
                    "the server URL asked for action=enroll (a new order); renewals use \
                     action auto instead"
                        .to_owned(),
                );
            } else {
                match value.parse::<LifecycleAction>() {
                    Ok(parsed) => action = Some(parsed),
                    Err(_) => notes.push(format!(
                        "the server URL's action={value} is not one certkeeper knows; left out"
                    )),
                }
            }
        } else {
            kept.push((key.into_owned(), value.into_owned()));
        }
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url.set_fragment(None);
    Ok(Server {
        directory: url.into(),
        order_id,
        action,
        notes,
    })
}

/// The key certbot's settings ask for: (certkeeper's key type if supported, certbot's words).
fn requested_key(conf: &ConfigObj) -> (Option<KeyType>, String) {
    // certbot before 2.0 had no key_type and always made RSA keys.
    let key_type = conf
        .get_str(PARAMS, "key_type")
        .unwrap_or_else(|| "rsa".to_owned())
        .to_ascii_lowercase();
    if key_type == "ecdsa" {
        let curve = conf
            .get_str(PARAMS, "elliptic_curve")
            .unwrap_or_else(|| "secp256r1".to_owned())
            .to_ascii_lowercase();
        let supported = match curve.as_str() {
            "secp256r1" | "p-256" | "prime256v1" => Some(KeyType::EcdsaP256),
            "secp384r1" | "p-384" => Some(KeyType::EcdsaP384),
            _ => None,
        };
        (supported, format!("ecdsa {curve}"))
    } else {
        let size = conf
            .get_str(PARAMS, "rsa_key_size")
            .unwrap_or_else(|| "2048".to_owned());
        let supported = match size.as_str() {
            "2048" => Some(KeyType::Rsa2048),
            "3072" => Some(KeyType::Rsa3072),
            "4096" => Some(KeyType::Rsa4096),
            _ => None,
        };
        (supported, format!("{key_type} {size}"))
    }
}

/// certbot's `renew_before_expiry` ("30 days", "2 weeks", "1 week 2 days", "12 hours") as a
/// certkeeper duration ("30d", "14d", "9d", "12h"); `None` when not understood.
#[must_use]
pub fn convert_interval(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return None;
    }
    let mut seconds: u64 = 0;
    for pair in words.chunks(2) {
        let [count, unit] = pair else {
            return None;
        };
        let count: u64 = count.parse().ok()?;
        let unit_seconds: u64 = match unit.to_ascii_lowercase().trim_end_matches('s') {
            "week" => 7 * 86_400,
            "day" => 86_400,
            "hour" => 3_600,
            "minute" => 60,
            "second" => 1,
            _ => return None,
        };
        seconds = seconds.checked_add(count.checked_mul(unit_seconds)?)?;
    }
    if seconds == 0 {
        return None;
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digicert_queries_split_into_directory_order_and_action() {
        let cases: &[(&str, &str, Option<&str>, Option<LifecycleAction>)] = &[
            (
                "https://one.digicert.com/mpki/api/v1/acme/v2/directory?action=renew&orderId=123456789",
                "https://one.digicert.com/mpki/api/v1/acme/v2/directory",
                Some("123456789"),
                Some(LifecycleAction::Renew),
            ),
            (
                "https://one.digicert.com/mpki/api/v1/acme/v2/directory?orderId=42&profile=x&action=Reissue",
                "https://one.digicert.com/mpki/api/v1/acme/v2/directory?profile=x",
                Some("42"),
                Some(LifecycleAction::Reissue),
            ),
            (
                "https://acme-v02.api.letsencrypt.org/directory",
                "https://acme-v02.api.letsencrypt.org/directory",
                None,
                None,
            ),
            (
                "https://one.digicert.com/dir?action=enroll",
                "https://one.digicert.com/dir",
                None,
                None,
            ),
        ];
        for (server, directory, order_id, action) in cases {
            let split = split_server(server).expect("parses");
            assert_eq!(split.directory, *directory, "{server}");
            assert_eq!(split.order_id.as_deref(), *order_id, "{server}");
            assert_eq!(split.action, *action, "{server}");
        }
        assert_eq!(
            split_server("https://x.example/dir?action=enroll")
                .expect("parses")
                .notes
                .len(),
            1
        );
        assert!(split_server("not a url").is_err());
    }

    #[test]
    fn intervals_convert_to_certkeeper_durations() {
        for (text, expected) in [
            ("30 days", Some("30d")),
            ("1 day", Some("1d")),
            ("2 weeks", Some("14d")),
            ("1 week 2 days", Some("9d")),
            ("36 hours", Some("1d12h")),
            ("90 minutes", Some("1h30m")),
            ("soon", None),
            ("30", None),
            ("0 days", None),
        ] {
            assert_eq!(convert_interval(text).as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn reads_a_standalone_lets_encrypt_lineage() {
        let lineage = Lineage::from_renewal_conf(
            "example.com",
            include_str!("../tests/fixtures/renewal/example.com.conf"),
        )
        .expect("parses");
        assert_eq!(lineage.server.directory, DEFAULT_SERVER);
        assert_eq!(lineage.authenticator.as_deref(), Some("standalone"));
        assert_eq!(lineage.requested_key_type, Some(KeyType::EcdsaP256));
        assert_eq!(
            lineage.renew_before, None,
            "the commented default is not a setting"
        );
        assert_eq!(
            lineage.files.fullchain,
            Some(PathBuf::from(
                "/etc/letsencrypt/live/example.com/fullchain.pem"
            ))
        );
        assert_eq!(
            lineage.hooks,
            Hooks {
                pre: Some("systemctl stop nginx".to_owned()),
                post: Some("systemctl start nginx".to_owned()),
                deploy: Some("systemctl reload nginx".to_owned()),
            }
        );
        assert!(lineage.notes.is_empty(), "{:?}", lineage.notes);
    }

    #[test]
    fn reads_a_digicert_webroot_lineage() {
        let lineage =
            Lineage::from_renewal_conf("shop", include_str!("../tests/fixtures/renewal/shop.conf"))
                .expect("parses");
        assert_eq!(
            lineage.server.directory,
            "https://one.digicert.com/mpki/api/v1/acme/v2/directory"
        );
        assert_eq!(lineage.server.order_id.as_deref(), Some("123456789"));
        assert_eq!(lineage.server.action, Some(LifecycleAction::Renew));
        assert_eq!(lineage.http01_port, Some(8080));
        assert_eq!(lineage.webroot, ["/var/www/html"]);
        assert_eq!(lineage.requested_key_type, Some(KeyType::Rsa2048));
        assert_eq!(lineage.renew_before.as_deref(), Some("30d"));
        assert_eq!(
            lineage.hooks.deploy.as_deref(),
            Some("/usr/local/bin/deploy-shop.sh \"shop, checkout\"")
        );
    }

    #[test]
    fn reads_webroot_maps_manual_hooks_and_rfc2136_settings_as_certbot_writes_them() {
        let split = Lineage::from_renewal_conf(
            "split",
            include_str!("../tests/fixtures/renewal/split.conf"),
        )
        .expect("parses");
        assert_eq!(split.webroot_path, ["/var/www/a", "/var/www/b"]);
        assert_eq!(
            split.webroot_map,
            [
                ("a.example.com".to_owned(), "/var/www/a".to_owned()),
                ("b.example.com".to_owned(), "/var/www/b".to_owned())
            ]
        );
        assert_eq!(split.rfc2136, None);

        let wild =
            Lineage::from_renewal_conf("wild", include_str!("../tests/fixtures/renewal/wild.conf"))
                .expect("parses");
        assert_eq!(wild.authenticator.as_deref(), Some("manual"));
        assert_eq!(wild.preferred_challenges, ["dns-01"]);
        assert_eq!(
            wild.manual,
            ManualHooks {
                auth: Some("/etc/letsencrypt/hooks/auth.sh".to_owned()),
                cleanup: Some("/etc/letsencrypt/hooks/cleanup.sh".to_owned()),
            }
        );

        let bind =
            Lineage::from_renewal_conf("bind", include_str!("../tests/fixtures/renewal/bind.conf"))
                .expect("parses");
        assert_eq!(
            bind.rfc2136,
            Some(Rfc2136Settings {
                credentials: PathBuf::from("/etc/letsencrypt/rfc2136.ini"),
                propagation_seconds: Some(300),
            })
        );
        // The third-party-style names of old plugin versions mean the same.
        let prefixed = Lineage::from_renewal_conf(
            "p",
            "[renewalparams]\nauthenticator = certbot-dns-rfc2136:dns-rfc2136\n\
             certbot_dns_rfc2136:dns_rfc2136_credentials = /root/.secrets/rfc2136.ini\n\
             pref_challs = dns,\n",
        )
        .expect("parses");
        assert_eq!(prefixed.authenticator.as_deref(), Some("dns-rfc2136"));
        assert_eq!(prefixed.preferred_challenges, ["dns-01"]);
        assert_eq!(
            prefixed.rfc2136.map(|settings| settings.credentials),
            Some(PathBuf::from("/root/.secrets/rfc2136.ini"))
        );
    }

    #[test]
    fn old_certbot_defaults_to_rsa_and_unsupported_keys_are_named() {
        let old = Lineage::from_renewal_conf("a", "[renewalparams]\nauthenticator = standalone\n")
            .expect("parses");
        assert_eq!(old.requested_key_type, Some(KeyType::Rsa2048));
        assert_eq!(old.server.directory, DEFAULT_SERVER);
        let p521 = Lineage::from_renewal_conf(
            "b",
            "[renewalparams]\nkey_type = ecdsa\nelliptic_curve = secp521r1\n",
        )
        .expect("parses");
        assert_eq!(p521.requested_key_type, None);
        assert_eq!(p521.requested_key, "ecdsa secp521r1");
    }

    #[test]
    fn certbot_4_profiles_are_read_with_how_strictly_certbot_asked() {
        let required = Lineage::from_renewal_conf(
            "a",
            "[renewalparams]\nauthenticator = standalone\nrequired_profile = shortlived\n",
        )
        .expect("parses");
        assert_eq!(
            required.profile,
            Some(RequestedProfile {
                name: "shortlived".to_owned(),
                required: true,
            })
        );
        assert!(required.notes.is_empty(), "{:?}", required.notes);

        let preferred = Lineage::from_renewal_conf(
            "b",
            "[renewalparams]\nauthenticator = standalone\npreferred_profile = tlsserver\n",
        )
        .expect("parses");
        assert_eq!(
            preferred.profile,
            Some(RequestedProfile {
                name: "tlsserver".to_owned(),
                required: false,
            })
        );
        assert_eq!(
            preferred.notes.len(),
            1,
            "certkeeper is stricter than certbot"
        );
        assert!(preferred.notes[0].contains("preferred_profile"));

        for conf in [
            "[renewalparams]\nauthenticator = standalone\n",
            "[renewalparams]\npreferred_profile = None\nrequired_profile =\n",
        ] {
            let none = Lineage::from_renewal_conf("c", conf).expect("parses");
            assert_eq!(none.profile, None, "{conf:?}");
            assert!(none.notes.is_empty(), "{:?}", none.notes);
        }
    }

    #[test]
    fn preferred_chain_and_reuse_key_are_read() {
        let set = Lineage::from_renewal_conf(
            "a",
            "[renewalparams]\nauthenticator = standalone\npreferred_chain = ISRG Root X1\nreuse_key = True\n",
        )
        .expect("parses");
        assert_eq!(set.preferred_chain.as_deref(), Some("ISRG Root X1"));
        assert!(set.reuse_key);

        for conf in [
            "[renewalparams]\nauthenticator = standalone\n",
            "[renewalparams]\npreferred_chain = None\nreuse_key = False\n",
        ] {
            let unset = Lineage::from_renewal_conf("b", conf).expect("parses");
            assert_eq!(unset.preferred_chain, None, "{conf:?}");
            assert!(!unset.reuse_key, "{conf:?}");
        }
    }

    #[test]
    fn refuses_files_that_are_not_renewal_files() {
        assert_eq!(
            Lineage::from_renewal_conf("a", "version = 1\n"),
            Err(LineageError::NoRenewalParams)
        );
        assert!(matches!(
            Lineage::from_renewal_conf("a", "[renewalparams]\nserver = nope\n"),
            Err(LineageError::BadServer { .. })
        ));
    }
}
