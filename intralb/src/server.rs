//! Starting a balancer ([`Builder::serve`], [`Builder::spawn`]) and [`Server`], a running one:
//! validate the settings, start the pool, bind, serve, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::body::Bodies;
use crate::builder::Builder;
use crate::error::{Error, ErrorKind, Result};
use crate::init;
use crate::pool::Pool;
use crate::probes::Probes;
use crate::router::RouterService;
use crate::serve::{self, ServeOptions};
use crate::shared::{Cut, Shared};
use crate::stats::Stats;

/// A running balancer: its address, its [`Stats`], and a way to stop it or wait for its
/// shutdown.
///
/// Dropping it does not stop the server; [`stop`](Self::stop) does, as does the shutdown future
/// given to [`Builder::spawn`].
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> intralb::Result<()> {
/// let app = Router::new().route("/", get(|| async { "Hello World" }));
/// let server = intralb::Balancer::builder().start(app).await?;
/// assert!(server.local_addr().ip().is_loopback());
/// assert_eq!(server.stats().served, 0);
/// server.stop().await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    pool: Arc<Pool>,
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Server {
    pub(crate) fn new(
        local_addr: SocketAddr,
        pool: Arc<Pool>,
        task: JoinHandle<()>,
        stop: oneshot::Sender<()>,
    ) -> Self {
        Server {
            local_addr,
            pool,
            task,
            stop,
        }
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of workers, queue, counters and latencies.
    pub fn stats(&self) -> Stats {
        self.pool.stats()
    }

    /// Waits until the shutdown future has resolved and the drain is over (every worker's
    /// resources dropped).
    ///
    /// # Errors
    ///
    /// Only if the server task itself panicked, which is a bug in intralb.
    pub async fn wait(self) -> Result<()> {
        // Dropping `stop` leaves the server running: only a sent stop stops it.
        join(self.task).await
    }

    /// Begins the graceful shutdown now, as a signal would, and waits until the drain is over:
    /// requests in flight and queued are answered (within `shutdown_timeout`), then every
    /// worker's resources are dropped.
    ///
    /// # Errors
    ///
    /// Only if the server task itself panicked, which is a bug in intralb.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> intralb::Result<()> {
    /// let server = intralb::Balancer::builder().start(axum::Router::new()).await?;
    /// server.stop().await
    /// # }
    /// ```
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        join(self.task).await
    }
}

/// Waits for the server task to end.
async fn join(task: JoinHandle<()>) -> Result<()> {
    task.await.map_err(|join| {
        Error::new(
            ErrorKind::Io,
            "the server task failed; this is a bug in intralb",
        )
        .with_source(join)
    })
}

impl Builder {
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
        if let Some(level) = crate::log::default_level(self.config.process.log) {
            crate::log::install(level);
        }
        let (shared, options) = self.prepare().await?;
        let router = router.await;
        let listener = match self.bind() {
            Ok(listener) => listener,
            Err(error) => {
                shared.pool.close().await;
                return Err(error);
            }
        };
        let bound = listener.local_addr().unwrap_or(self.config.listener.addr);
        tracing::info!(addr = %bound, "listening on http://{bound}");
        serve::run(
            listener,
            shared,
            router,
            self.layers.clone(),
            options,
            crate::signal::shutdown_signal(),
        )
        .await;
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

    /// Serves `router` on an already bound `listener` until `shutdown` resolves or
    /// [`Server::stop`] is called, then drains. Returns once the workers are running; the
    /// [`Server`] gives the address and [`Stats`]. For embedding: no signals are
    /// handled and no environment variable is read.
    ///
    /// Only the initializers given to this builder run: add
    /// [`registered_db_inits`](Self::registered_db_inits) for those declared with `#[db_init]`
    /// (the builder `#[balanced]` generates has them already). A handler asking for a `Db<T>`
    /// that no initializer makes is answered `500`.
    ///
    /// # Errors
    ///
    /// A bad setting, two initializers of one type, a failing setup or a failing initializer.
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
    ///     .registered_db_inits() // every `#[db_init]` of the program
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
        let (shared, options) = self.prepare().await?;
        let pool = Arc::clone(&shared.pool);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                // A `Server` dropped without `stop` leaves the server running.
                Ok(()) = stopped => {}
            }
        };
        let layers = self.layers.clone();
        let task = tokio::spawn(serve::run(
            listener, shared, router, layers, options, shutdown,
        ));
        Ok(Server::new(local_addr, pool, task, stop))
    }

    /// Serves `router` on `127.0.0.1`, on a port the system picks, until [`Server::stop`]:
    /// how a test starts the whole app, with every setting, layer, setup and initializer of
    /// the builder, and talks to it with any HTTP client over [`Server::local_addr`].
    ///
    /// `addr`, `reuse_port`, inherited sockets, signals and the environment are ignored. With
    /// `#[balanced]`, the generated `<router>_builder()` is the attribute's builder:
    /// `app_builder().start(app()).await?` starts what `serve()` would serve.
    ///
    /// # Errors
    ///
    /// A bad setting, two initializers of one type, a failing setup or initializer, or no
    /// port free on the loopback interface.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::{routing::get, Router};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> intralb::Result<()> {
    /// let app = Router::new().route("/", get(|| async { "Hello World" }));
    /// let server = intralb::Balancer::builder().queue(0).start(app).await?;
    /// let addr = server.local_addr(); // send requests here
    /// # let _ = addr;
    /// server.stop().await
    /// # }
    /// ```
    pub async fn start<S: RouterService>(self, router: S) -> Result<Server> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = TcpListener::bind(loopback)
            .await
            .map_err(|e| Error::bind(loopback, e))?;
        self.spawn(listener, router, std::future::pending()).await
    }

    /// Validates everything and starts `min_workers`.
    async fn prepare(&self) -> Result<(Arc<Shared>, ServeOptions)> {
        self.config.validate()?;
        init::check_unique(&self.inits)?;
        // Once per process, before any worker's initializers.
        crate::setup::run_all(&self.setups).await?;
        let probes = Probes::new(&self.config.probes);
        // Before the pool registers its metrics handles, so they bind to this recorder.
        #[cfg(feature = "prometheus")]
        if probes.metrics_enabled() {
            crate::metrics::prometheus::install();
        }
        let pool = Pool::start(&self.config.pool, self.inits.clone()).await?;
        tokio::spawn(crate::pool::sample_gauges(Arc::downgrade(&pool)));
        let shared = Arc::new(Shared {
            pool,
            timeout: self.config.pool.timeout,
            priority: self.priority,
            probes,
            cut: Cut::default(),
            bodies: Bodies::new(
                self.config.connections.buffer_body,
                self.config.connections.body_timeout,
                self.config
                    .pool
                    .max_concurrent
                    .saturating_add(self.config.pool.queue),
            ),
        });
        let options = ServeOptions {
            header_read_timeout: self.config.connections.header_read_timeout,
            shutdown_timeout: self.config.drain.shutdown_timeout,
            drain_delay: self.config.drain.drain_delay,
            connection_idle_timeout: self.config.connections.connection_idle_timeout,
            send_timeout: self.config.connections.send_timeout,
            max_connections: self
                .config
                .connections
                .max_connections
                .unwrap_or_else(crate::connection::default_max_connections),
        };
        Ok((shared, options))
    }
}
