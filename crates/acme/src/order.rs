//! One certificate order, from `newOrder` to the downloaded chain.
//!
//! The flow follows RFC 8555 section 7.4: create the order on the directory URL the lifecycle
//! rule chose, answer a challenge for every *pending* authorization (authorizations that are
//! already `valid` — DigiCert's prevalidated domains, or a CA reusing a recent validation — are
//! skipped and may list no challenge at all), wait for `ready`, finalize with a fresh key's CSR,
//! wait through `processing`, download the chain. Polling starts fast and backs off, and
//! honours the CA's `Retry-After`.
//!
//! # Challenges
//!
//! Challenges are answered through the core's [`ChallengeSolver`] port, in passes over the
//! pending authorizations: pick each one's challenge of the solver's type (failing before
//! anything is presented when the CA offers none), present every answer, wait until every one
//! is ready, and only then tell the CA to validate. Presenting all before waiting lets DNS
//! records propagate together rather than one after another.
//!
//! Cleanup is owned by one guard, `Presented`, which records an answer *before* presenting
//! it. When validation ends (the order ready or invalid, or any error on the way)
//! [`PlacedOrder::complete`] awaits the guard's cleanup before it finalizes or returns the
//! error: one exit point instead of a cleanup call on every `?`. When the attempt is dropped
//! half-way (the engine drops it on a stop while it waits on the CA) nothing can be awaited, so
//! the guard's `Drop` calls the solver's `cleanup` for what is left (a solver does what it can
//! within that call; the embedded responder forgets the token there) and hands a future still
//! pending after one poll to the runtime.
//!
//! # Profiles and `replaces`
//!
//! A requested certificate profile (draft-ietf-acme-profiles) is checked against the session
//! directory's `meta.profiles` before anything is ordered: a name the CA does not list is a
//! configuration error ([`AcmeError::UnknownProfile`]), not a refusal to retry.
//!
//! A renewal names the certificate it replaces (RFC 9773 section 5) when the CA offers ARI, so
//! the CA can relax rate limits and track the replacement. `replaces` is a courtesy, never a
//! reason to fail: without ARI, or for a certificate without an AKI, it is left out; when the
//! CA refuses it (`alreadyReplaced`, or `malformed` from a CA that cannot parse it) the order
//! is placed once more without it. A CA may also create the order and not echo `replaces` in
//! it (acme2certifier 0.46.3 does); instant-acme then fails `new_order` although the order
//! exists. The session of a new order therefore goes through a `NewOrderRecorder`, which keeps
//! the directory it read (for `renewalInfo`) and the `Location` of a `201 Created`: after such
//! a failure the order is picked up by that URL instead of ordering a second time.
//!
//! # Alternate chains
//!
//! The recorder also keeps the `Link: rel="alternate"` URLs of the certificate download, and
//! the directory's `newNonce`, so that [`PlacedOrder::complete`] can hand the chain choice
//! (`preferred_chain`) to the `chain` module. A resumed order's session goes through a recorder
//! too, for the same reason.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use certkeeper_core::{
    CertName, ChallengeAnswer, ChallengeKind, ChallengeSolver, DomainName, KeyType, Secret,
    SolverError,
};
use http_body_util::Full;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, CertificateIdentifier,
    ChallengeStatus, ChallengeType, HttpClient, Identifier, NewOrder, Order, OrderStatus,
    RetryPolicy,
};

use crate::account::{AcmeAccount, retry_bad_nonce};
use crate::directory::Directory;
use crate::error::{AcmeError, ProblemType};
use crate::keys::{csr_der, generate_key_pem};
use crate::renewal_info::certificate_identifier;
use crate::transport::{PendingResponse, Transport};

/// What to order.
#[derive(Debug, Clone)]
pub struct OrderRequest<'a> {
    pub cert: &'a CertName,
    pub domains: &'a [DomainName],
    pub key_type: KeyType,
    /// The directory URL for this order (the lifecycle rule's output).
    pub directory_url: &'a str,
    /// The leaf (DER) of the certificate this order replaces, sent as `replaces` (RFC 9773
    /// section 5) when the CA offers ARI; `None` for a first issuance.
    pub replaces: Option<&'a [u8]>,
    /// The certificate profile to ask for (draft-ietf-acme-profiles); `None` for the CA's
    /// default.
    pub profile: Option<&'a str>,
}

/// How long to wait for the CA, and how eagerly to poll.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    /// First pause between polls; later ones grow by `backoff`.
    pub initial_delay: Duration,
    pub backoff: f32,
    /// Give up waiting for one state (ready, then valid) after this long.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            backoff: 1.5,
            timeout: Duration::from_secs(600),
        }
    }
}

impl PollPolicy {
    fn retry_policy(self) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(self.initial_delay)
            .backoff(self.backoff)
            .timeout(self.timeout)
    }
}

/// A freshly issued certificate, not yet verified or installed.
pub struct Issued {
    /// PKCS#8 PEM private key.
    pub key_pem: Secret,
    /// PEM chain as the CA sent it, leaf first.
    pub chain_pem: String,
    pub order_url: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("key_pem", &self.key_pem)
            .field("order_url", &self.order_url)
            .finish_non_exhaustive()
    }
}

/// The answers presented during one attempt, cleaned up when validation ends, however it
/// ends (see the module docs).
struct Presented<'a> {
    solver: &'a dyn ChallengeSolver,
    /// Every answer whose `present` was started and that is not cleaned up yet.
    answers: Vec<ChallengeAnswer>,
}

impl<'a> Presented<'a> {
    fn new(solver: &'a dyn ChallengeSolver) -> Self {
        Self {
            solver,
            answers: Vec::new(),
        }
    }

    async fn present(&mut self, answer: &ChallengeAnswer) -> Result<(), SolverError> {
        // Recorded first: a `present` that fails or is cut short may still have left
        // something behind.
        self.answers.push(answer.clone());
        self.solver.present(answer).await
    }

    /// Clean up every presented answer. A failure is logged, not returned: the order's
    /// outcome does not depend on it, and the other answers are still cleaned up.
    async fn clean_up(&mut self) {
        // Taken off the list only once cleaned up, so a drop during the await leaves it to
        // `Drop` (cleaning up twice is allowed).
        while let Some(answer) = self.answers.last() {
            let cleaned = self.solver.cleanup(answer).await;
            report_cleanup(answer, cleaned);
            self.answers.pop();
        }
    }
}

impl Drop for Presented<'_> {
    fn drop(&mut self) {
        for answer in self.answers.drain(..) {
            let mut cleanup = self.solver.cleanup(&answer);
            // Most cleanups are done within the call; only one still pending needs the runtime.
            if let Poll::Ready(cleaned) = cleanup
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                report_cleanup(&answer, cleaned);
                continue;
            }
            match tokio::runtime::Handle::try_current() {
                // Detached: the attempt that would have waited for it is gone.
                Ok(runtime) => drop(runtime.spawn(async move {
                    let cleaned = cleanup.await;
                    report_cleanup(&answer, cleaned);
                })),
                Err(_) => tracing::warn!(
                    domain = %answer.domain(),
                    challenge = %answer.kind(),
                    "challenge not cleaned up: the attempt was dropped outside a runtime"
                ),
            }
        }
    }
}

fn report_cleanup(answer: &ChallengeAnswer, cleaned: Result<(), SolverError>) {
    match cleaned {
        Ok(()) => {
            tracing::debug!(domain = %answer.domain(), challenge = %answer.kind(), "challenge cleaned up");
        }
        Err(err) => tracing::warn!(
            domain = %answer.domain(),
            challenge = %answer.kind(),
            error = %certkeeper_core::error_chain(&err),
            "challenge cleanup failed; remove it by hand"
        ),
    }
}

/// The challenge picked for one pending authorization.
struct Picked {
    authorization_url: String,
    answer: ChallengeAnswer,
    /// Still `pending` at the CA: a resumed order may have triggered it before a restart.
    trigger: bool,
}

/// An order at the CA, new or resumed by URL, that [`PlacedOrder::complete`] drives to a
/// certificate.
pub struct PlacedOrder<'a> {
    account: &'a AcmeAccount,
    recorder: NewOrderRecorder,
    order: Order,
    url: String,
    replaced: bool,
}

impl fmt::Debug for PlacedOrder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlacedOrder")
            .field("url", &self.url)
            .field("replaced", &self.replaced)
            .finish_non_exhaustive()
    }
}

/// How one `newOrder` went.
enum NewOrderOutcome {
    /// The CA created the order and instant-acme took its answer.
    Created(Order),
    /// The CA created the order (`201` with a `Location`) but instant-acme failed on its
    /// answer with `error`; the order was picked up by its URL.
    PickedUp {
        order: Order,
        error: instant_acme::Error,
    },
    /// No order: the CA refused, or no answer came.
    Refused(instant_acme::Error),
}

/// The HTTP client of a new order's session: the account's transport, plus a record of what
/// instant-acme reads but does not hand out (see the module docs). Sessions are per order, so
/// the record is too.
#[derive(Clone)]
struct NewOrderRecorder {
    transport: Transport,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    /// The directory the session read: its first successful GET.
    directory: Option<Directory>,
    /// The `Location` of the latest `201 Created` answer to a POST: in a session that creates
    /// one order, the new order's URL.
    created: Option<String>,
    /// The `Link: rel="alternate"` URLs of the latest certificate download (RFC 8555 section
    /// 7.4.2): the other chains the CA offers for the certificate.
    alternates: Vec<String>,
}

impl NewOrderRecorder {
    fn new(transport: &Transport) -> Self {
        Self {
            transport: transport.clone(),
            seen: Arc::default(),
        }
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }

    /// Whether the session's directory has `renewalInfo`.
    fn offers_renewal_info(&self) -> bool {
        self.seen()
            .directory
            .as_ref()
            .is_some_and(|directory| directory.renewal_info.is_some())
    }

    fn forget_created(&self) {
        self.seen().created = None;
    }

    fn created(&self) -> Option<String> {
        self.seen().created.clone()
    }

    fn alternates(&self) -> Vec<String> {
        self.seen().alternates.clone()
    }

    /// The session directory's `newNonce`.
    fn new_nonce(&self) -> Option<String> {
        self.seen()
            .directory
            .as_ref()
            .and_then(|directory| directory.new_nonce.clone())
    }
}

/// The record, also after a panic elsewhere: it holds plain values, never half-updated.
fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HttpClient for NewOrderRecorder {
    fn request(&self, req: http::Request<BodyWrapper<Bytes>>) -> PendingResponse {
        let method = req.method().clone();
        let sent = self.transport.request(req);
        let seen = Arc::clone(&self.seen);
        Box::pin(async move {
            let mut response = sent.await?;
            let status = response.parts.status;
            if method == http::Method::POST && status == http::StatusCode::CREATED {
                if let Some(location) = response
                    .parts
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                {
                    lock(&seen).created = Some(location.to_owned());
                }
                return Ok(response);
            }
            if method == http::Method::POST && status.is_success() && is_chain(&response.parts) {
                lock(&seen).alternates = crate::chain::alternate_links(&response.parts.headers);
                return Ok(response);
            }
            if method == http::Method::GET && status.is_success() && lock(&seen).directory.is_none()
            {
                // The transport has the whole body already; read it and hand on a copy.
                let body = response
                    .body
                    .into_bytes()
                    .await
                    .map_err(instant_acme::Error::Other)?;
                lock(&seen).directory = Directory::parse(&body).ok();
                return Ok(BytesResponse::from(http::Response::from_parts(
                    response.parts,
                    Full::new(body),
                )));
            }
            Ok(response)
        })
    }
}

/// Whether a response carries a certificate chain (RFC 8555 section 7.4.2).
fn is_chain(parts: &http::response::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/pem-certificate-chain"))
}

impl AcmeAccount {
    /// Create a new order for `request` on its directory URL.
    ///
    /// # Errors
    /// When the directory cannot be read or the CA refuses the order.
    pub async fn place_order(
        &self,
        request: &OrderRequest<'_>,
    ) -> Result<PlacedOrder<'_>, AcmeError> {
        tracing::info!(
            cert = %request.cert,
            directory = %request.directory_url,
            domains = %join(request.domains),
            "placing ACME order"
        );
        let recorder = NewOrderRecorder::new(self.transport());
        let account = self
            .session_through(request.directory_url, Box::new(recorder.clone()))
            .await?;
        if let Some(profile) = request.profile {
            check_profile(self.ca(), profile, account.profiles().map(|meta| meta.name))?;
        }
        let identifiers: Vec<Identifier> = request
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.to_string()))
            .collect();
        let new_order = |replaces: Option<CertificateIdentifier<'static>>| {
            let mut new_order = NewOrder::new(&identifiers);
            if let Some(profile) = request.profile {
                new_order = new_order.profile(profile);
            }
            if let Some(replaces) = replaces {
                new_order = new_order.replaces(replaces);
            }
            new_order
        };
        let replaces = request
            .replaces
            .and_then(|leaf| replaces_id(request.cert, leaf, recorder.offers_renewal_info()));

        let (order, replaces) = match replaces {
            None => (
                self.create_order(&account, &recorder, &new_order(None))
                    .await?,
                None,
            ),
            Some(id) => match self
                .send_new_order(&account, &recorder, &new_order(Some(id.clone())))
                .await?
            {
                NewOrderOutcome::Created(order) => (order, Some(id)),
                NewOrderOutcome::PickedUp { mut order, error } => {
                    if order.state().replaces.as_ref() == Some(&id) {
                        tracing::warn!(
                            cert = %request.cert,
                            order_url = %order.url(),
                            error = %certkeeper_core::error_chain(&error),
                            "the CA created the order but its answer could not be read; continuing with the order fetched by its URL"
                        );
                    } else {
                        tracing::warn!(
                            cert = %request.cert,
                            order_url = %order.url(),
                            replaces = %id,
                            "the CA created the order but did not reflect replaces in it (RFC 9773 section 5); continuing with that order"
                        );
                    }
                    (order, Some(id))
                }
                NewOrderOutcome::Refused(instant_acme::Error::Api(problem))
                    if matches!(
                        ProblemType::of(&problem),
                        Some(ProblemType::AlreadyReplaced | ProblemType::Malformed)
                    ) =>
                {
                    tracing::warn!(
                        cert = %request.cert,
                        replaces = %id,
                        problem = %problem,
                        "the CA refused the order naming the certificate it replaces; ordering again without replaces"
                    );
                    (
                        self.create_order(&account, &recorder, &new_order(None))
                            .await?,
                        None,
                    )
                }
                NewOrderOutcome::Refused(source) => return Err(self.protocol("new order", source)),
            },
        };
        let url = order.url().to_owned();
        tracing::info!(
            cert = %request.cert,
            order_url = %url,
            replaces = replaces.as_ref().map(tracing::field::display),
            profile = request.profile,
            "order created"
        );
        Ok(PlacedOrder {
            account: self,
            recorder,
            order,
            url,
            replaced: replaces.is_some(),
        })
    }

    /// Send a `newOrder` without `replaces`: created, picked up, or an error.
    async fn create_order(
        &self,
        account: &Account,
        recorder: &NewOrderRecorder,
        new_order: &NewOrder<'_>,
    ) -> Result<Order, AcmeError> {
        match self.send_new_order(account, recorder, new_order).await? {
            NewOrderOutcome::Created(order) => Ok(order),
            NewOrderOutcome::PickedUp { order, error } => {
                tracing::warn!(
                    order_url = %order.url(),
                    error = %certkeeper_core::error_chain(&error),
                    "the CA created the order but its answer could not be read; continuing with the order fetched by its URL"
                );
                Ok(order)
            }
            NewOrderOutcome::Refused(source) => Err(self.protocol("new order", source)),
        }
    }

    /// Send one `newOrder` (retried on `badNonce`). When it fails other than by a problem
    /// document after the CA answered `201 Created` with a `Location`, the order exists: it is
    /// fetched by that URL rather than ordered twice.
    async fn send_new_order(
        &self,
        account: &Account,
        recorder: &NewOrderRecorder,
        new_order: &NewOrder<'_>,
    ) -> Result<NewOrderOutcome, AcmeError> {
        let sent = retry_bad_nonce!({
            recorder.forget_created();
            account.new_order(new_order).await
        });
        let error = match sent {
            Ok(order) => return Ok(NewOrderOutcome::Created(order)),
            Err(error @ instant_acme::Error::Api(_)) => return Ok(NewOrderOutcome::Refused(error)),
            Err(error) => error,
        };
        let Some(url) = recorder.created() else {
            return Ok(NewOrderOutcome::Refused(error));
        };
        let order = retry_bad_nonce!(account.order(url.clone()).await)
            .map_err(|source| self.protocol("fetching the new order by its URL", source))?;
        Ok(NewOrderOutcome::PickedUp { order, error })
    }

    /// Pick up an order created earlier (before a restart) by its URL.
    ///
    /// # Errors
    /// When the CA cannot be reached or no longer knows the order.
    pub async fn resume_order(
        &self,
        order_url: &str,
        directory_url: &str,
    ) -> Result<PlacedOrder<'_>, AcmeError> {
        let recorder = NewOrderRecorder::new(self.transport());
        let account = self
            .session_through(directory_url, Box::new(recorder.clone()))
            .await?;
        let mut order = retry_bad_nonce!(account.order(order_url.to_owned()).await)
            .map_err(|source| self.protocol("resuming the order", source))?;
        tracing::info!(order_url = %order_url, status = ?order.state().status, "resumed order");
        let replaced = order.state().replaces.is_some();
        Ok(PlacedOrder {
            account: self,
            recorder,
            order,
            url: order_url.to_owned(),
            replaced,
        })
    }

    /// Order, validate, finalize and download a certificate with a fresh key, in one go; the
    /// CA's default chain.
    ///
    /// # Errors
    /// Any refusal or failure of the CA, a failed validation, or a timeout.
    pub async fn issue(
        &self,
        request: &OrderRequest<'_>,
        solver: &dyn ChallengeSolver,
        poll: PollPolicy,
    ) -> Result<Issued, AcmeError> {
        let mut placed = self.place_order(request).await?;
        let key_pem = generate_key_pem(request.key_type)?;
        let chain_pem = placed
            .complete(&key_pem, request.domains, solver, poll, None)
            .await?;
        Ok(Issued {
            key_pem,
            chain_pem,
            order_url: placed.url,
        })
    }

    fn protocol(&self, step: &'static str, source: instant_acme::Error) -> AcmeError {
        AcmeError::Protocol {
            ca: self.ca().to_owned(),
            step,
            source: Box::new(source),
        }
    }
}

impl PlacedOrder<'_> {
    /// The order URL: persist it to resume after a restart.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this order replaces a certificate: the `newOrder` that created it carried
    /// `replaces` and the CA accepted it (even when the CA did not echo the field, see the
    /// module docs); for a resumed order, whether the CA's order object names one.
    #[must_use]
    pub fn replaced(&self) -> bool {
        self.replaced
    }

    /// Drive the order from wherever it is to a downloaded chain: answer a challenge for each
    /// pending authorization through `solver`, finalize with a CSR signed by `key_pem`, wait
    /// through `processing`. Whatever was presented is cleaned up once validation ends, also
    /// when it fails or this future is dropped.
    ///
    /// The chain is the CA's default one, or with `preferred_chain` the first chain the CA
    /// offers whose last certificate's issuer has that common name; when none has, the
    /// default chain with a warning (see the `chain` module).
    ///
    /// # Errors
    /// No challenge of the solver's type, a solver failure, a failed validation, an invalid
    /// order, a refusal or a timeout.
    pub async fn complete(
        &mut self,
        key_pem: &Secret,
        domains: &[DomainName],
        solver: &dyn ChallengeSolver,
        poll: PollPolicy,
        preferred_chain: Option<&str>,
    ) -> Result<String, AcmeError> {
        let account = self.account;
        let url = self.url.clone();
        let mut presented = Presented::new(solver);
        let validated = self.validate(&mut presented, poll).await;
        presented.clean_up().await;
        validated?;

        if self.order.state().status == OrderStatus::Ready {
            let csr = csr_der(key_pem, domains)?;
            retry_bad_nonce!(self.order.finalize_csr(&csr).await)
                .map_err(|source| account.protocol("finalize", source))?;
        }
        let chain_pem = retry_bad_nonce!(self.order.poll_certificate(&poll.retry_policy()).await)
            .map_err(|source| {
            account.timeout_or(source, &url, "valid", poll, "certificate download")
        })?;
        tracing::info!(order_url = %url, "certificate downloaded");
        let Some(preferred) = preferred_chain else {
            return Ok(chain_pem);
        };
        let alternates = self.recorder.alternates();
        let new_nonce = self.recorder.new_nonce();
        Ok(account
            .preferred_chain(chain_pem, &alternates, new_nonce.as_deref(), preferred)
            .await)
    }

    /// Answer the challenges and wait until the order is `ready` (or past it).
    async fn validate(
        &mut self,
        presented: &mut Presented<'_>,
        poll: PollPolicy,
    ) -> Result<(), AcmeError> {
        let account = self.account;
        let url = &self.url;
        match self.order.state().status {
            OrderStatus::Pending => {
                account
                    .answer_challenges(&mut self.order, presented)
                    .await?;
                let status = retry_bad_nonce!(self.order.poll_ready(&poll.retry_policy()).await)
                    .map_err(|source| {
                        account.timeout_or(source, url, "ready", poll, "validation")
                    })?;
                if status == OrderStatus::Invalid {
                    return Err(account.validation_failure(&mut self.order).await);
                }
            }
            OrderStatus::Ready => {
                tracing::info!(order_url = %url, "every authorization already valid; no challenge needed");
            }
            OrderStatus::Invalid => return Err(account.validation_failure(&mut self.order).await),
            OrderStatus::Processing | OrderStatus::Valid => {}
        }
        Ok(())
    }
}

impl AcmeAccount {
    /// Answer a challenge for every pending authorization: pick them all, present them all,
    /// wait until all are ready, then trigger them (see the module docs).
    async fn answer_challenges(
        &self,
        order: &mut Order,
        presented: &mut Presented<'_>,
    ) -> Result<(), AcmeError> {
        let picked = self.pick_challenges(order, presented.solver.kind()).await?;
        for challenge in &picked {
            presented
                .present(&challenge.answer)
                .await
                .map_err(|source| self.solver_failure(source))?;
        }
        for challenge in &picked {
            presented
                .solver
                .ready(&challenge.answer)
                .await
                .map_err(|source| self.solver_failure(source))?;
        }
        self.trigger_challenges(order, &picked).await
    }

    /// The challenge of type `kind` of every pending authorization, with its answer.
    ///
    /// The authorization stream fetches states lazily; a fetch that fails (a `badNonce`
    /// streak) restarts the stream, which skips states already fetched. The states stay with
    /// the order, so later passes fetch nothing.
    async fn pick_challenges(
        &self,
        order: &mut Order,
        kind: ChallengeKind,
    ) -> Result<Vec<Picked>, AcmeError> {
        let ca = self.ca().to_owned();
        let wanted = match kind {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::Dns01 => ChallengeType::Dns01,
        };
        let mut picked: Vec<Picked> = Vec::new();
        let mut restarts = 0u32;
        'restart: loop {
            let mut authorizations = order.authorizations();
            while let Some(next) = authorizations.next().await {
                let mut authz = match next {
                    Ok(authz) => authz,
                    Err(err)
                        if crate::error::is_bad_nonce(&err)
                            && restarts < crate::account::BAD_NONCE_RETRIES =>
                    {
                        restarts += 1;
                        continue 'restart;
                    }
                    Err(source) => {
                        return Err(AcmeError::Protocol {
                            ca,
                            step: "fetching an authorization",
                            source: Box::new(source),
                        });
                    }
                };
                let url = authz.url().to_owned();
                let domain = authz.identifier().to_string();
                match authz.status {
                    AuthorizationStatus::Valid => {
                        tracing::info!(domain = %domain, "authorization already valid; no challenge needed for it");
                        continue;
                    }
                    AuthorizationStatus::Pending => {}
                    other => {
                        return Err(AcmeError::Validation {
                            ca,
                            domain,
                            detail: format!("authorization is {other:?}"),
                        });
                    }
                }
                if picked.iter().any(|p| p.authorization_url == url) {
                    continue;
                }
                let offered = authz
                    .challenges
                    .iter()
                    .map(|c| offered_name(&c.r#type))
                    .collect::<Vec<_>>()
                    .join(", ");
                let Some(challenge) = authz.challenge(wanted.clone()) else {
                    return Err(AcmeError::NoSolvableChallenge {
                        ca,
                        domain,
                        wanted: kind,
                        offered,
                    });
                };
                let key_authorization = challenge.key_authorization();
                let answer = match kind {
                    ChallengeKind::Http01 => ChallengeAnswer::Http01 {
                        token: challenge.token.clone(),
                        key_authorization: key_authorization.as_str().to_owned(),
                        domain,
                    },
                    ChallengeKind::Dns01 => ChallengeAnswer::Dns01 {
                        // RFC 8555 section 8.4: a wildcard is validated at its base name.
                        record_name: format!(
                            "_acme-challenge.{}",
                            domain.strip_prefix("*.").unwrap_or(&domain)
                        ),
                        value: key_authorization.dns_value(),
                        domain,
                    },
                };
                picked.push(Picked {
                    authorization_url: url,
                    answer,
                    trigger: challenge.status == ChallengeStatus::Pending,
                });
            }
            return Ok(picked);
        }
    }

    /// Tell the CA to validate every picked challenge still pending. A resumed order may have
    /// triggered some before a restart: those were presented again (the CA may still be
    /// fetching them) but are not triggered twice.
    async fn trigger_challenges(
        &self,
        order: &mut Order,
        picked: &[Picked],
    ) -> Result<(), AcmeError> {
        let ca = self.ca().to_owned();
        let mut done: HashSet<&str> = HashSet::new();
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            // Every state was fetched while picking, so this fetches nothing.
            let mut authz = next.map_err(|source| AcmeError::Protocol {
                ca: ca.clone(),
                step: "fetching an authorization",
                source: Box::new(source),
            })?;
            let Some(choice) = picked.iter().find(|p| p.authorization_url == authz.url()) else {
                continue;
            };
            let domain = choice.answer.domain();
            let kind = choice.answer.kind();
            if !choice.trigger || !done.insert(choice.authorization_url.as_str()) {
                tracing::debug!(domain = %domain, challenge = %kind, "challenge already triggered");
                continue;
            }
            let wanted = match kind {
                ChallengeKind::Http01 => ChallengeType::Http01,
                ChallengeKind::Dns01 => ChallengeType::Dns01,
            };
            let Some(mut challenge) = authz.challenge(wanted) else {
                continue;
            };
            retry_bad_nonce!(challenge.set_ready().await).map_err(|source| {
                AcmeError::Protocol {
                    ca: ca.clone(),
                    step: "triggering a challenge",
                    source: Box::new(source),
                }
            })?;
            tracing::debug!(domain = %domain, challenge = %kind, "challenge triggered");
        }
        Ok(())
    }

    fn solver_failure(&self, source: SolverError) -> AcmeError {
        AcmeError::Solver {
            ca: self.ca().to_owned(),
            source,
        }
    }

    /// Explain why an order became invalid, from its authorizations' challenge errors.
    async fn validation_failure(&self, order: &mut Order) -> AcmeError {
        let ca = self.ca().to_owned();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let Ok(state) = retry_bad_nonce!(authz.refresh().await) else {
                continue;
            };
            if state.status == AuthorizationStatus::Valid {
                continue;
            }
            let domain = state.identifier().to_string();
            let detail = state
                .challenges
                .iter()
                .find_map(|c| c.error.as_ref().map(ToString::to_string))
                .unwrap_or_else(|| format!("authorization is {:?}", state.status));
            return AcmeError::Validation { ca, domain, detail };
        }
        AcmeError::Validation {
            ca,
            domain: "the order".to_owned(),
            detail: "the order became invalid without an authorization error".to_owned(),
        }
    }

    fn timeout_or(
        &self,
        source: instant_acme::Error,
        order_url: &str,
        waiting_for: &'static str,
        poll: PollPolicy,
        step: &'static str,
    ) -> AcmeError {
        match source {
            instant_acme::Error::Timeout(_) => AcmeError::Timeout {
                ca: self.ca().to_owned(),
                order_url: order_url.to_owned(),
                waiting_for,
                waited: poll.timeout,
            },
            instant_acme::Error::Api(problem) => AcmeError::Validation {
                ca: self.ca().to_owned(),
                domain: "the order".to_owned(),
                detail: problem.to_string(),
            },
            source => AcmeError::Protocol {
                ca: self.ca().to_owned(),
                step,
                source: Box::new(source),
            },
        }
    }
}

/// Refuse a profile the CA's directory does not list (`offered`), before anything is ordered.
fn check_profile<'a>(
    ca: &str,
    profile: &str,
    offered: impl Iterator<Item = &'a str>,
) -> Result<(), AcmeError> {
    let mut offered: Vec<String> = offered.map(str::to_owned).collect();
    if offered.iter().any(|name| name == profile) {
        return Ok(());
    }
    offered.sort_unstable();
    Err(AcmeError::UnknownProfile {
        ca: ca.to_owned(),
        profile: profile.to_owned(),
        offered,
    })
}

/// The certificate ID for `replaces`, when it can be sent: the CA offers ARI and the
/// certificate has an AKI. Otherwise the order goes without it (logged at debug).
fn replaces_id(
    cert: &CertName,
    leaf_der: &[u8],
    offers_renewal_info: bool,
) -> Option<CertificateIdentifier<'static>> {
    if !offers_renewal_info {
        tracing::debug!(cert = %cert, "the CA offers no ARI (no renewalInfo); ordering without replaces");
        return None;
    }
    match certificate_identifier(leaf_der) {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::debug!(cert = %cert, error = %certkeeper_core::error_chain(&err), "no certificate ID for replaces; ordering without it");
            None
        }
    }
}

fn join(domains: &[DomainName]) -> String {
    domains
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A challenge type as the CA names it, for the list of what it offered.
fn offered_name(kind: &ChallengeType) -> String {
    match kind {
        ChallengeType::Http01 => "http-01".to_owned(),
        ChallengeType::Dns01 => "dns-01".to_owned(),
        ChallengeType::TlsAlpn01 => "tls-alpn-01".to_owned(),
        ChallengeType::DeviceAttest01 => "device-attest-01".to_owned(),
        ChallengeType::Unknown(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::renewal_info::tests::leaf;

    #[test]
    fn a_profile_the_ca_does_not_list_is_refused_with_what_it_offers() {
        let offered = ["tlsserver", "classic", "shortlived"];
        assert!(check_profile("ca-1", "classic", offered.into_iter()).is_ok());

        let err = check_profile("ca-1", "tlsclient", offered.into_iter()).expect_err("unknown");
        assert!(
            matches!(&err, AcmeError::UnknownProfile { offered, .. }
                if offered == &["classic", "shortlived", "tlsserver"]),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "CA \"ca-1\" does not offer the certificate profile \"tlsclient\" (it offers \
             \"classic\", \"shortlived\", \"tlsserver\"); change profile in the configuration"
        );

        let err = check_profile("ca-1", "classic", std::iter::empty()).expect_err("none offered");
        assert_eq!(
            err.to_string(),
            "CA \"ca-1\" does not offer the certificate profile \"classic\" (it offers no \
             profiles); change profile in the configuration"
        );
    }

    #[test]
    fn replaces_is_sent_only_with_ari_and_a_certificate_id() {
        let cert = CertName::new("www").expect("cert name");
        let with_aki = leaf(&[0xC0, 0xFF, 0xEE], &[0x01, 0x02, 0x03], true);
        assert_eq!(
            replaces_id(&cert, &with_aki, true).map(|id| id.to_string()),
            Some("wP_u.AQID".to_owned())
        );
        assert!(replaces_id(&cert, &with_aki, false).is_none());
        let without_aki = leaf(&[0xC0, 0xFF, 0xEE], &[0x01], false);
        assert!(replaces_id(&cert, &without_aki, true).is_none());
        assert!(replaces_id(&cert, b"garbage", true).is_none());
    }
}
