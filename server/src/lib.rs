//! The PausePoint service as a library: `pp server` is [`serve`] on a real listener, and the
//! tests start the same thing on `127.0.0.1:0`.
//!
//! - [`config`]: the server's settings.
//! - [`backup`]: consistent, checked backups and restores of a SQLite database.
//! - [`store`]: SQLite or PostgreSQL behind one [`store::Store`]: every read and write.
//! - [`domain`]: the rules of the product: pauses, keys, links, webhook events, audit.
//! - [`hub`]: where committed changes wake long-polls and workers.
//! - [`ids`]: the typed ids of pauses, projects and keys.
//! - [`metrics`]: what `/metrics` shows, kept in memory.
//! - [`work`]: the background workers: deliveries, webhooks, timeouts.
//! - [`channels`]: how a human is reached (SMS, email, Slack).
//! - [`outbound`]: HTTP to caller-chosen URLs, kept off private networks.
//! - [`secrets`]: the master key that seals the secrets kept in the database.
//! - [`views`]: the response page and email markup.
//! - [`http`]: the REST API and the response page.
//! - [`console`]: the operator's web view of a project, at `/console`.

#![forbid(unsafe_code)]
// The module docs point at the private parts they are made of (the store's sequencer, a
// constant's value): they are read with `cargo doc --document-private-items`, where those
// links lead somewhere, as a map of the code rather than an API for other crates.
#![allow(rustdoc::private_intra_doc_links)]

pub mod backup;
pub mod channels;
pub mod config;
pub mod console;
pub mod domain;
pub mod http;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod outbound;
pub mod secrets;
pub mod store;
pub mod views;
pub mod work;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use domain::links::Links;
pub use domain::pauses::Pauses;
use hub::Bell;
pub use store::Store;

/// The longest a stop waits for its checkpoint of the audit log.
const STOP_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Proof(#[from] domain::proof::ProofError),
}

/// The service's shared state: the store and the operations on it. Cheap to clone.
#[derive(Clone)]
pub struct App {
    store: Store,
    pauses: Pauses,
    links: Links,
    config: Arc<Config>,
    channels: Arc<channels::Channels>,
    webhooks: Arc<work::webhooks::Webhooks>,
    keys: Arc<domain::keys::KeyCache>,
    checkpoints: Arc<domain::proof::Checkpoints>,
    /// Held for as long as the server runs on a SQLite file: a restore waits for it.
    _lock: Option<Arc<backup::ServerLock>>,
}

impl App {
    /// Opens (and migrates) the database named by the config, and checks the providers.
    pub async fn open(config: Config) -> Result<App, OpenError> {
        let channels = channels::Channels::from_config(&config).map_err(OpenError::Config)?;
        let store = Store::open(&config.database, config.master_key_file.as_deref()).await?;
        let lock = match store.dialect() {
            store::Dialect::Sqlite => Some(Arc::new(
                backup::ServerLock::take(std::path::Path::new(store.location()))
                    .map_err(|e| OpenError::Config(e.to_string()))?,
            )),
            store::Dialect::Postgres => None,
        };
        backup::report_restore(&store).await?;
        for outbox in [store::outbox::DELIVERIES, store::outbox::WEBHOOK_EVENTS] {
            let released = store
                .write(move |tx| {
                    Box::pin(async move { tx.release_leases_of_a_crashed_server(outbox).await })
                })
                .await?;
            if released > 0 {
                tracing::info!(count = released, "resuming work interrupted by a crash");
            }
        }
        domain::webhooks::add_missing_secrets(&store, domain::pauses::now()).await?;
        let links = Links::load(&store).await?;
        store
            .hub()
            .metrics()
            .pending
            .set(store.pending_count().await?);
        if config.checkpoint_every > config::CHECKPOINT_EVERY || config.checkpoint_every.is_zero() {
            return Err(OpenError::Config(format!(
                "checkpoints are made at most every {} s (verification expects them)",
                config::CHECKPOINT_EVERY.as_secs()
            )));
        }
        let audit_keys =
            Arc::new(domain::proof::AuditKeys::load(&store, domain::pauses::now()).await?);
        let receipts = Arc::new(domain::proof::Receipts::new(
            store.clone(),
            Arc::clone(&audit_keys),
        ));
        let checkpoints = Arc::new(domain::proof::Checkpoints::new(
            store.clone(),
            audit_keys,
            config.checkpoint_url.as_ref().map(ToString::to_string),
        ));
        let pauses = Pauses::new(store.clone()).with_receipts(Arc::clone(&receipts));
        let webhooks = work::webhooks::Webhooks::new(
            store.clone(),
            config.outbound_policy(),
            config.webhook_retry.clone(),
            receipts,
        )
        .map_err(OpenError::Config)?;
        Ok(App {
            store,
            pauses,
            links,
            config: Arc::new(config),
            channels: Arc::new(channels),
            webhooks: Arc::new(webhooks),
            keys: Arc::default(),
            checkpoints,
            _lock: lock,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn pauses(&self) -> &Pauses {
        &self.pauses
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Answers by SMS reply.
    pub fn replies(&self) -> domain::replies::Replies {
        domain::replies::Replies::new(self.store.clone(), self.pauses.clone())
    }

    /// Coding agents' approvals and their rules.
    pub fn approvals(&self) -> domain::approvals::Approvals {
        domain::approvals::Approvals::new(self.pauses.clone(), self.store.clone())
    }

    /// The API keys this server has seen.
    pub fn keys(&self) -> &domain::keys::KeyCache {
        &self.keys
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn connection_limits(&self) -> http::connections::Limits {
        http::connections::Limits {
            max_connections: self.config.max_connections,
            header_read_timeout: self.config.header_read_timeout,
            drain: http::connections::STOP_DRAIN,
        }
    }

    /// Signed checkpoints of the audit chains, and the audit key.
    pub fn checkpoints(&self) -> &Arc<domain::proof::Checkpoints> {
        &self.checkpoints
    }

    /// The delivery providers, as configured.
    pub fn channels(&self) -> &channels::Channels {
        &self.channels
    }

    /// Serves the API and the response page on `listener` and runs the workers until
    /// `shutdown` completes, then lets requests in flight finish (long-polls answer at
    /// once), stops the workers and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let public_url = self.config.public_url_or(listener.local_addr()?);
        let stop = CancellationToken::new();
        let hub = Arc::clone(self.store.hub());
        let outbox_settings = work::outbox::Settings {
            concurrency: self.config.send_concurrency,
            lease: self.config.work_lease,
            grace: self.config.stop_grace,
            clock: work::outbox::system_clock(),
        };

        let mut workers = Vec::new();
        let (pauses, timeout_hub) = (self.pauses.clone(), Arc::clone(&hub));
        let shared = !self.store.dialect().single_server();
        let (timeout_stop, bell_hub) = (stop.clone(), Arc::clone(&hub));
        workers.push((
            "timeouts",
            tokio::spawn(async move {
                work::run(
                    "timeouts",
                    bell_hub.bell(Bell::Timeouts),
                    timeout_stop,
                    move |now| {
                        let (pauses, hub) = (pauses.clone(), Arc::clone(&timeout_hub));
                        async move {
                            let sleep = work::timeouts::step(&pauses, &hub, now).await?;
                            // Other servers do not announce their new pauses: look often,
                            // so that one server's death delays no timeout for long.
                            Ok::<_, domain::pauses::PauseError>(match shared {
                                true => sleep.min(work::timeouts::SHARED_LOOK_EVERY),
                                false => sleep,
                            })
                        }
                    },
                )
                .await;
            }),
        ));
        let deliveries = Arc::new(work::deliveries::Deliveries::new(
            self.store.clone(),
            self.links.clone(),
            Arc::clone(&self.channels),
            public_url,
            self.config.delivery_retry.clone(),
        ));
        let (store, bell_hub, settings, worker_stop) = (
            self.store.clone(),
            Arc::clone(&hub),
            outbox_settings.clone(),
            stop.clone(),
        );
        workers.push((
            "deliveries",
            tokio::spawn(async move {
                let left = work::outbox::run(
                    deliveries,
                    store,
                    bell_hub.bell(Bell::Deliveries),
                    settings,
                    worker_stop,
                )
                .await;
                if left > 0 {
                    tracing::info!(
                        count = left,
                        "stopped with deliveries in flight; they go out at the next start"
                    );
                }
            }),
        ));
        let webhooks = Arc::clone(&self.webhooks);
        let (store, bell_hub, settings, worker_stop) = (
            self.store.clone(),
            Arc::clone(&hub),
            outbox_settings,
            stop.clone(),
        );
        workers.push((
            "webhooks",
            tokio::spawn(async move {
                work::outbox::run(
                    webhooks,
                    store,
                    bell_hub.bell(Bell::Webhooks),
                    settings,
                    worker_stop,
                )
                .await;
            }),
        ));
        let (checkpoints, every, worker_stop) = (
            Arc::clone(&self.checkpoints),
            self.config.checkpoint_every,
            stop.clone(),
        );
        workers.push((
            "checkpoints",
            tokio::spawn(
                async move { work::checkpoints::run(&checkpoints, every, worker_stop).await },
            ),
        ));
        if self.store.dialect() == store::Dialect::Postgres {
            let (store, listen_stop) = (self.store.clone(), stop.clone());
            workers.push((
                "listener",
                tokio::spawn(async move { store.listen(listen_stop).await }),
            ));
        }

        if let Some(address) = self.config.metrics_bind {
            let metrics = TcpListener::bind(address).await?;
            let (router, metrics_stop) = (
                http::metrics_router(self.clone(), stop.clone()),
                stop.clone(),
            );
            let limits = self.connection_limits();
            workers.push((
                "metrics listener",
                tokio::spawn(async move {
                    if let Err(e) = http::connections::serve(
                        metrics,
                        router,
                        limits,
                        metrics_stop.cancelled_owned(),
                    )
                    .await
                    {
                        tracing::error!(error = %e, "the metrics listener failed");
                    }
                }),
            ));
        }

        let router = http::router(self.clone(), stop.clone(), listener.local_addr()?);
        let signal = stop.clone();
        let served =
            http::connections::serve(listener, router, self.connection_limits(), async move {
                shutdown.await;
                // Long-polls answer at once with the current state.
                signal.cancel();
            })
            .await;
        stop.cancel();
        for (name, worker) in workers {
            if let Err(e) = worker.await {
                tracing::error!(worker = name, error = %e, "worker failed");
            }
        }
        // The log as this stop leaves it, signed, unless that would hold the stop up (the
        // walk since the last checkpoint is long after a minute of heavy writes): then the
        // next start signs it.
        let signed = tokio::time::timeout(
            STOP_CHECKPOINT,
            self.checkpoints.make_all(domain::pauses::now()),
        )
        .await;
        match signed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not checkpoint the audit log at stop"),
            Err(_) => tracing::info!(
                "the audit log's tail is signed at the next start (checkpointing it would hold the stop up)"
            ),
        }
        // Say what is left for the next start (or another server).
        let now = domain::pauses::now();
        for outbox in [store::outbox::DELIVERIES, store::outbox::WEBHOOK_EVENTS] {
            let left = self
                .store
                .read(move |conn| Box::pin(conn.backlog(outbox, now)))
                .await;
            if let Some(left) = left.ok().filter(|l| l.queued > 0) {
                tracing::info!(
                    queue = outbox.name(),
                    count = left.queued,
                    "left queued for the next start"
                );
            }
        }
        self.store.close().await;
        served
    }
}

/// Opens the database of `config` and serves on `listener` until `shutdown` completes.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    App::open(config).await?.serve(listener, shutdown).await?;
    Ok(())
}
