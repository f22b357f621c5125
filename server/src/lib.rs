//! The PausePoint service as a library: `pp server` is [`serve`] on a real listener, and the
//! tests start the same thing on `127.0.0.1:0`.
//!
//! - [`config`]: the server's settings.
//! - [`store`]: SQLite or PostgreSQL behind one [`store::Store`]: every read and write.
//! - [`domain`]: the rules of the product: pauses, keys, links, webhook events, audit.
//! - [`hub`]: in-process wake-ups for long-polling requests.
//! - [`work`]: the background workers: deliveries, webhooks, timeouts.
//! - [`channels`]: how a human is reached (SMS, email, Slack).
//! - [`outbound`]: HTTP to caller-chosen URLs, kept off private networks.
//! - [`views`]: the response page and email markup.
//! - [`http`]: the REST API and the response page.

#![forbid(unsafe_code)]

pub mod channels;
pub mod config;
pub mod domain;
pub mod http;
pub mod hub;
pub mod outbound;
pub mod store;
pub mod views;
pub mod work;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use domain::links::Links;
pub use domain::pauses::Pauses;
pub use store::Store;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Config(String),
}

/// The bells that tell the workers new work has arrived.
#[derive(Default)]
pub struct Bells {
    /// Rung when a pause is created: its deadline may be the nearest.
    pub deadlines: Arc<Notify>,
    /// Rung when a pause is created: its delivery is due now.
    pub deliveries: Arc<Notify>,
    /// Rung when a pause with a webhook is decided: its event is due now.
    pub webhooks: Arc<Notify>,
}

/// The service's shared state: the store and the operations on it. Cheap to clone.
#[derive(Clone)]
pub struct App {
    store: Store,
    pauses: Pauses,
    links: Links,
    config: Arc<Config>,
    channels: Arc<channels::Channels>,
    bells: Arc<Bells>,
}

impl App {
    /// Opens (and migrates) the database named by the config, and checks the providers.
    pub async fn open(config: Config) -> Result<App, OpenError> {
        let channels = channels::Channels::from_config(&config).map_err(OpenError::Config)?;
        let store = Store::open(&config.database).await?;
        for outbox in [store::outbox::DELIVERIES, store::outbox::WEBHOOK_EVENTS] {
            let released = store.release_leases_of_a_crashed_server(outbox).await?;
            if released > 0 {
                tracing::info!(count = released, "resuming work interrupted by a crash");
            }
        }
        let links = Links::load(&store).await?;

        let bells = Arc::new(Bells::default());
        let pauses = Pauses::new(store.clone(), Arc::default(), Arc::clone(&bells));
        Ok(App {
            store,
            pauses,
            links,
            config: Arc::new(config),
            channels: Arc::new(channels),
            bells,
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

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tells the webhook worker an event is due now.
    pub fn ring_webhooks(&self) {
        self.bells.webhooks.notify_one();
    }

    /// The delivery providers, as configured.
    pub fn channels(&self) -> &channels::Channels {
        &self.channels
    }

    /// Serves the API and the response page on `listener` and runs the workers until
    /// `shutdown` completes, then lets requests in flight finish (long-polls answer at
    /// once) and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let public_url = match &self.config.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let deliveries = Arc::new(work::deliveries::Deliveries::new(
            self.store.clone(),
            self.links.clone(),
            Arc::clone(&self.channels),
            public_url,
            self.config.delivery_retry.clone(),
            self.config.work_lease,
        ));

        let stop = CancellationToken::new();
        let pauses = self.pauses.clone();
        let timeouts = tokio::spawn(work::run(
            "timeouts",
            Arc::clone(&self.bells.deadlines),
            stop.clone(),
            move |now| {
                let pauses = pauses.clone();
                async move { work::timeouts::step(&pauses, now).await }
            },
        ));
        let delivery = tokio::spawn(work::run(
            "delivery",
            Arc::clone(&self.bells.deliveries),
            stop.clone(),
            move |now| {
                let deliveries = Arc::clone(&deliveries);
                async move { deliveries.step(now).await }
            },
        ));
        let webhooks = Arc::new(work::webhooks::Webhooks::new(
            self.store.clone(),
            self.config.allow_private_network,
            self.config.webhook_retry.clone(),
            self.config.work_lease,
        ));
        let webhook_worker = tokio::spawn(work::run(
            "webhooks",
            Arc::clone(&self.bells.webhooks),
            stop.clone(),
            move |now| {
                let webhooks = Arc::clone(&webhooks);
                async move { webhooks.step(now).await }
            },
        ));
        let listener_task = (self.store.dialect() == store::Dialect::Postgres).then(|| {
            tokio::spawn(listen_to_other_servers(
                self.store.clone(),
                self.pauses.clone(),
                Arc::clone(&self.bells),
                stop.clone(),
            ))
        });
        let router = http::router(self.clone(), stop.clone());
        let signal = stop.clone();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                signal.cancel();
            })
            .await;
        stop.cancel();
        if let Some(task) = listener_task {
            let _ = task.await;
        }
        for (name, worker) in [
            ("timeouts", timeouts),
            ("delivery", delivery),
            ("webhooks", webhook_worker),
        ] {
            if let Err(e) = worker.await {
                tracing::error!(worker = name, error = %e, "worker failed");
            }
        }
        self.store.close().await;
        served
    }
}

/// On PostgreSQL, hears what other servers did: a decided pause wakes this server's
/// long-polls on it (and its webhook worker); a new pause rings the timeout and delivery
/// workers, so any server can take the work. A notice missed while reconnecting costs only
/// time: waits run out and workers look at the database at least once a minute.
async fn listen_to_other_servers(
    store: Store,
    pauses: Pauses,
    bells: Arc<Bells>,
    stop: CancellationToken,
) {
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect(store.url()).await?;
            listener.listen(store::NOTIFY_CHANNEL).await?;
            tracing::info!("listening for work done on other servers");
            loop {
                let notification = listener.recv().await?;
                if let Ok(id) = uuid::Uuid::parse_str(notification.payload()) {
                    pauses.wake(id);
                    bells.webhooks.notify_one();
                } else if notification.payload() == store::NEW_PAUSE {
                    bells.deadlines.notify_one();
                    bells.deliveries.notify_one();
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = listening => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "lost the PostgreSQL listener; reconnecting");
                }
            }
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
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
