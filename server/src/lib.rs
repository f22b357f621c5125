//! The PausePoint service as a library: `pp server` is [`serve`] on a real listener, and the
//! tests start the same thing on `127.0.0.1:0`.
//!
//! - [`config`]: the server's settings.
//! - [`store`]: SQLite (later PostgreSQL) behind one [`store::Store`].
//! - [`pauses`]: the life of a pause and its one-way status change.
//! - [`keys`]: API keys, hashed at rest.
//! - [`audit`]: verifying the tamper-evident audit chain.
//! - [`wakeups`]: in-process wake-ups for long-polling requests.
//! - [`timeouts`]: the worker that times out pauses at their deadline.
//! - [`http`]: the REST API.

#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod http;
pub mod keys;
pub mod pauses;
pub mod store;
pub mod timeouts;
pub mod wakeups;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use pauses::Pauses;
pub use store::Store;

/// The service's shared state: the store and the operations on it. Cheap to clone.
#[derive(Clone)]
pub struct App {
    store: Store,
    pauses: Pauses,
    config: Arc<Config>,
    new_deadline: Arc<Notify>,
}

impl App {
    /// Opens (and migrates) the database named by the config.
    pub async fn open(config: Config) -> Result<App, store::StoreError> {
        let store = Store::open(&config.database).await?;
        let new_deadline = Arc::new(Notify::new());
        let pauses = Pauses::new(store.clone(), Arc::default(), Arc::clone(&new_deadline));
        Ok(App {
            store,
            pauses,
            config: Arc::new(config),
            new_deadline,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn pauses(&self) -> &Pauses {
        &self.pauses
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves the API on `listener` and runs the workers until `shutdown` completes,
    /// then lets requests in flight finish (long-polls answer at once) and closes the
    /// database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = CancellationToken::new();
        let worker = tokio::spawn(timeouts::run(
            self.pauses.clone(),
            Arc::clone(&self.new_deadline),
            stop.clone(),
        ));
        let router = http::router(self.clone(), stop.clone());
        let signal = stop.clone();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                signal.cancel();
            })
            .await;
        stop.cancel();
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "the timeout worker failed");
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
