//! [`Builder`]: the balancer without macros (`#[balanced]` expands to it).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::dispatch::{Cut, Shared};
use crate::error::{BoxError, Error, Result};
use crate::init::{self, Initializer};
use crate::pool::Pool;
use crate::probes::Probes;
use crate::router::RouterService;
use crate::serve::{self, ServeOptions};
use crate::server::Server;
use crate::worker_id::WorkerId;

/// Entry point of the builder API: [`Balancer::builder()`].
#[derive(Debug)]
pub struct Balancer(());

impl Balancer {
    /// A [`Builder`] with every setting at its default.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

/// Configures and starts a balancer in front of a router.
///
/// Every setting has a default (see the table in the crate docs), and [`serve`](Self::serve)
/// lets `INTRALB_<KEY>` environment variables override them.
///
/// # Examples
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use intralb::{Balancer, WorkerId};
///
/// fn open(worker: WorkerId) -> std::io::Result<String> {
///     Ok(format!("connection for worker {worker}"))
/// }
///
/// # async fn run() -> intralb::Result<()> {
/// let app = Router::new().route("/", get(|| async { "Hello World" }));
/// Balancer::builder()
///     .max_concurrent(100)
///     .queue(100)
///     .db_init(open)
///     .serve(app)
///     .await
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a Builder does nothing until `serve` or `spawn`"]
pub struct Builder {
    config: Config,
    inits: Vec<Initializer>,
}

impl Builder {
    /// A builder with every setting at its default.
    pub fn new() -> Self {
        Builder::default()
    }

    /// The most requests executing at once, and so the most workers (default 100).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.config.max_concurrent = n;
        self
    }

    /// The most requests waiting for a worker, pool-wide (default 100; 0: none wait).
    pub fn queue(mut self, n: usize) -> Self {
        self.config.queue = n;
        self
    }

    /// Workers kept even when idle (default: the number of CPUs, at most `max_concurrent`).
    pub fn min_workers(mut self, n: usize) -> Self {
        self.config.min_workers = Some(n);
        self
    }

    /// A request's deadline, from arrival, queue wait included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// How long a shutdown waits for in-flight requests before cancelling them (default 10 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// How long a surplus worker idles before it retires (default 60 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// How long a client may take to send a request head before the connection is closed
    /// (default 10 s). No worker is taken until the head is read.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = timeout;
        self
    }

    /// The address [`serve`](Self::serve) binds (default `127.0.0.1:8080`).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.config.addr = addr;
        self
    }

    /// Installs a default `tracing` subscriber (filtered by `RUST_LOG`, default `info`) when
    /// serving, unless the program installed its own (default `false`).
    pub fn log(mut self, enabled: bool) -> Self {
        self.config.log = enabled;
        self
    }

    /// Serves Prometheus metrics at `path` (e.g. `"/metrics"`), answered by the balancer itself
    /// without taking a worker. Installs a Prometheus recorder for the `metrics` facade unless
    /// the program installed its own recorder, which then receives intralb's metrics instead.
    pub fn metrics(mut self, path: impl Into<String>) -> Self {
        self.config.metrics = Some(path.into());
        self
    }

    /// Answers `200` at `path` (e.g. `"/healthz"`) while the process serves, without taking a
    /// worker or a queue place.
    pub fn health(mut self, path: impl Into<String>) -> Self {
        self.config.health = Some(path.into());
        self
    }

    /// Answers `200` at `path` (e.g. `"/readyz"`) while accepting, and `503` from the moment a
    /// drain starts, without taking a worker or a queue place.
    pub fn ready(mut self, path: impl Into<String>) -> Self {
        self.config.ready = Some(path.into());
        self
    }

    /// On shutdown, first keep serving this long with readiness at `503` and `Connection: close`
    /// on responses, so a load balancer stops routing here; then stop accepting and drain
    /// (default 0).
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.config.drain_delay = delay;
        self
    }

    /// Binds with `SO_REUSEPORT` (Unix), so a new process can listen on the same port while this
    /// one drains (default `false`).
    pub fn reuse_port(mut self, enabled: bool) -> Self {
        self.config.reuse_port = enabled;
        self
    }

    /// Adds a blocking per-worker initializer; handlers reach its value through `Db<T>`.
    ///
    /// It runs on tokio's blocking pool whenever a worker starts, and its value is dropped when
    /// the worker retires (or after a handler panicked on that worker).
    pub fn db_init<F, T, E>(mut self, init: F) -> Self
    where
        F: Fn(WorkerId) -> std::result::Result<T, E> + Send + Sync + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        self.inits
            .push(Initializer::sync(std::any::type_name::<F>(), init));
        self
    }

    /// Adds an `async` per-worker initializer; see [`db_init`](Self::db_init).
    pub fn db_init_async<F, Fut, T, E>(mut self, init: F) -> Self
    where
        F: Fn(WorkerId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        self.inits
            .push(Initializer::asynchronous(std::any::type_name::<F>(), init));
        self
    }

    /// Adds an initializer built by hand (or collected from `#[db_init]`).
    pub fn initializer(mut self, init: Initializer) -> Self {
        self.inits.push(init);
        self
    }

    /// Applies `INTRALB_<KEY>` environment variables (`INTRALB_MAX_CONCURRENT`,
    /// `INTRALB_TIMEOUT=250ms`, …) over the settings so far.
    ///
    /// # Errors
    ///
    /// A value that does not parse, naming the variable and the value.
    pub fn apply_env(mut self) -> Result<Self> {
        self.config.apply_env(|key| std::env::var(key).ok())?;
        Ok(self)
    }

    /// Adds every initializer declared with `#[db_init]` in the program (what the `serve` of
    /// `#[balanced]` does); without it, the builder uses only the initializers given to it.
    pub fn registered_db_inits(mut self) -> Self {
        self.inits.extend(init::registered());
        self
    }

    /// Starts the workers and serves `router` on `addr` until SIGINT or SIGTERM, then drains.
    ///
    /// Environment overrides are applied first. Everything that can fail does so before the
    /// port is bound: a bad setting, two initializers of one type, a failing initializer.
    ///
    /// # Errors
    ///
    /// A bad setting, a failing initializer, or an address that cannot be bound.
    pub async fn serve<S: RouterService>(self, router: S) -> Result<()> {
        self.apply_env()?.serve_with(async { router }).await
    }

    /// `serve`, with the router built only once the workers have started.
    pub(crate) async fn serve_with<S, Fut>(self, router: Fut) -> Result<()>
    where
        S: RouterService,
        Fut: Future<Output = S>,
    {
        if self.config.log {
            crate::log::install();
        }
        let (shared, options) = self.start().await?;
        let router = router.await;
        let listener = match self.bind() {
            Ok(listener) => listener,
            Err(error) => {
                shared.pool.close().await;
                return Err(error);
            }
        };
        let bound = listener.local_addr().unwrap_or(self.config.addr);
        tracing::info!(addr = %bound, "listening on http://{bound}");
        serve::run(listener, shared, router, options, serve::shutdown_signal()).await;
        Ok(())
    }

    /// Binds the listener [`serve`](Self::serve) would use: the socket inherited through
    /// `LISTEN_FDS` (systemd socket activation) if there is one, else `addr`, with
    /// `SO_REUSEPORT` if [`reuse_port`](Self::reuse_port) is set. Pass it to
    /// [`spawn`](Self::spawn) to serve it.
    ///
    /// # Errors
    ///
    /// The address cannot be bound, or the inherited socket is unusable.
    pub fn bind(&self) -> Result<TcpListener> {
        crate::listener::bind(&self.config)
    }

    /// Serves `router` on an already bound `listener` until `shutdown` resolves, then drains.
    /// Returns once the workers are running; the [`Server`] gives the address and [`Stats`](crate::Stats).
    /// For embedding and tests: no signals are handled and no environment variable is read.
    ///
    /// # Errors
    ///
    /// A bad setting, two initializers of one type, or a failing initializer.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::{routing::get, Router};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> intralb::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let app = Router::new().route("/", get(|| async { "Hello World" }));
    /// let server = intralb::Balancer::builder()
    ///     .max_concurrent(4)
    ///     .spawn(listener, app, async { stopped.await.ok(); })
    ///     .await?;
    /// println!("listening on {}", server.local_addr());
    /// stop.send(()).unwrap();
    /// server.wait().await
    /// # }
    /// ```
    pub async fn spawn<S, F>(self, listener: TcpListener, router: S, shutdown: F) -> Result<Server>
    where
        S: RouterService,
        F: Future<Output = ()> + Send + 'static,
    {
        let local_addr = listener.local_addr().map_err(|e| {
            Error::new(crate::ErrorKind::Io, "the listener has no local address").with_source(e)
        })?;
        let (shared, options) = self.start().await?;
        let pool = Arc::clone(&shared.pool);
        let task = tokio::spawn(serve::run(listener, shared, router, options, shutdown));
        Ok(Server::new(local_addr, pool, task))
    }

    /// Validates everything and starts `min_workers`.
    async fn start(&self) -> Result<(Arc<Shared>, ServeOptions)> {
        self.config.validate()?;
        init::check_unique(&self.inits)?;
        let probes = Probes::new(&self.config);
        // Before the pool registers its metrics handles, so they bind to this recorder.
        #[cfg(feature = "prometheus")]
        if probes.metrics_enabled() {
            crate::metrics::prometheus::install();
        }
        let pool = Pool::start(&self.config, self.inits.clone()).await?;
        tokio::spawn(crate::metrics::sample_gauges(Arc::downgrade(&pool)));
        let shared = Arc::new(Shared {
            pool,
            timeout: self.config.timeout,
            probes,
            cut: Cut::default(),
        });
        let options = ServeOptions {
            header_read_timeout: self.config.header_read_timeout,
            shutdown_timeout: self.config.shutdown_timeout,
            drain_delay: self.config.drain_delay,
        };
        Ok((shared, options))
    }
}
