//! [`Builder`]: the balancer's settings and initializers, without macros (`#[balanced]` expands
//! to it). Starting it (`serve`, `spawn`) is in `server.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Config;
use crate::error::{BoxError, Result};
use crate::init::{self, Initializer};
use crate::layer::{Admission, Layers};
use crate::priority::PriorityFn;
use crate::setup::{self, Setup};
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

#[cfg(doc)]
use crate::layer::OuterLayer;

/// One setter per setting, generated from the settings' declaration (`intralb-settings`).
macro_rules! setters {
    ($(
        [$group:ident: $Group:ident] {
            $(
                #[doc = $doc:literal]
                $(#[doc = $more:literal])*
                $name:ident: $kind:ident = $default:tt, $default_doc:literal;
            )*
        }
    )*) => {
        impl Builder {
            $($(
                setter!(
                    $kind, $group, $name,
                    concat!(
                        "Sets `", stringify!($name), "`:", $doc, " (default: ", $default_doc, ").",
                        $("
", $more,)*
                        "

Overridden at run time by the environment variable `INTRALB_` + the key in                          capitals, where the environment is read (see [`Builder::apply_env`])."
                    )
                );
            )*)*
        }
    };
}

macro_rules! setter {
    (Count, $group:ident, $name:ident, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, n: usize) -> Self {
            self.config.$group.$name = n;
            self
        }
    };
    (OptCount, $group:ident, $name:ident, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, n: usize) -> Self {
            self.config.$group.$name = Some(n);
            self
        }
    };
    (Duration, $group:ident, $name:ident, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, duration: Duration) -> Self {
            self.config.$group.$name = duration;
            self
        }
    };
    (Addr, $group:ident, $name:ident, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, addr: SocketAddr) -> Self {
            self.config.$group.$name = addr;
            self
        }
    };
    (OptFlag, $group:ident, $name:ident, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, enabled: bool) -> Self {
            self.config.$group.$name = Some(enabled);
            self
        }
    };
    (Flag, $group:ident, $name:ident, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, enabled: bool) -> Self {
            self.config.$group.$name = enabled;
            self
        }
    };
    (OptPath, $group:ident, $name:ident, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, path: impl Into<String>) -> Self {
            self.config.$group.$name = Some(path.into());
            self
        }
    };
}

intralb_settings::settings!(setters);

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
    pub(crate) config: Config,
    pub(crate) inits: Vec<Initializer>,
    pub(crate) priority: Option<PriorityFn>,
    pub(crate) layers: Layers,
    pub(crate) setups: Vec<Setup>,
}

impl Builder {
    /// A builder with every setting at its default.
    pub fn new() -> Self {
        Builder::default()
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

    /// Gives each request a [`Priority`](crate::Priority) from its head, before it takes a queue
    /// place (what `#[balanced(priority = PATH)]` sets). Without it every request is `Normal`.
    ///
    /// The function runs on every request that is not a probe, so it should be quick: look at
    /// the method, the path, a header. If it panics, the request is `Normal` (and the panic is
    /// logged).
    ///
    /// # Examples
    ///
    /// ```
    /// use intralb::Priority;
    ///
    /// fn priority(head: &http::request::Parts) -> Priority {
    ///     if head.uri.path().starts_with("/admin") {
    ///         Priority::Critical
    ///     } else {
    ///         Priority::Normal
    ///     }
    /// }
    ///
    /// let builder = intralb::Builder::new().priority(priority);
    /// # let _ = builder;
    /// ```
    pub fn priority(mut self, priority: PriorityFn) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Adds every initializer declared with `#[db_init]` in the program (what the `serve` of
    /// `#[balanced]` does); without it, the builder uses only the initializers given to it.
    pub fn registered_db_inits(mut self) -> Self {
        self.inits.extend(init::registered());
        self
    }

    /// Adds a step to run once, before the first worker starts (before any initializer): a
    /// schema migration, say, which initializers (run once per worker, concurrently) cannot do
    /// safely. Steps run in the order given, each to its end; an error or a panic stops the
    /// start with [`ErrorKind::Setup`](crate::ErrorKind::Setup), naming the step. A step given
    /// here runs at every start of this builder.
    ///
    /// `#[intralb::setup]` on an `async fn` declares one for the whole program; see
    /// [`registered_setups`](Self::registered_setups).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> intralb::Result<()> {
    /// async fn migrate() -> Result<(), std::io::Error> {
    ///     Ok(()) // CREATE TABLE IF NOT EXISTS ...
    /// }
    ///
    /// let server = intralb::Balancer::builder()
    ///     .setup(migrate)
    ///     .start(axum::Router::new())
    ///     .await?;
    /// server.stop().await
    /// # }
    /// ```
    pub fn setup<F, Fut, E>(mut self, step: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.setups
            .push(Setup::new(std::any::type_name::<F>(), step));
        self
    }

    /// Adds every step declared with `#[setup]` in the program (the builder `#[balanced]`
    /// generates does), in the order of their paths. Each runs once per process: a second
    /// start (another router, a test starting the app again) waits for the first one's run
    /// instead of running it again, and runs it again only if it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = intralb::Balancer::builder()
    ///     .registered_setups()
    ///     .registered_db_inits();
    /// # drop(builder);
    /// ```
    pub fn registered_setups(mut self) -> Self {
        self.setups.extend(setup::registered());
        self
    }

    /// Adds a tower layer *in front of admission*: it sees every request before it takes a
    /// queue place, and every answer, intralb's own `503` and `504` included. CORS, auth,
    /// request ids and tracing that must also cover those answers go here; middleware that
    /// needs a worker's resources goes on the router (`Router::layer`).
    ///
    /// Each call wraps the layers given before it (the last one is the outermost), as
    /// `Router::layer` does. The layer's service receives axum's `Request`: an
    /// `axum::body::Body` holding the body intralb has already read (under `body_timeout`,
    /// before any layer runs), so axum's `middleware::from_fn` works as tower-http's layers
    /// do. It may pass on another body type, and may answer with any body of
    /// [`Bytes`](https://docs.rs/bytes/1/bytes/struct.Bytes.html) (a compression layer's,
    /// say), which is boxed into an `axum::body::Body`. An error of the layer's service is
    /// answered `500` and logged.
    ///
    /// Answered before the outer layers, without passing them: the health, readiness and
    /// metrics probes, and what reading the body answers (`408`, `400`, and `503` when the
    /// bodies' budget is full or a drain begins during the read). Without any outer layer
    /// nothing is boxed: the connection calls admission directly.
    ///
    /// `#[balanced(layer = PATH)]` calls this with what the function at `PATH` returns; for a
    /// layer whose type cannot be written, box it with [`OuterLayer::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::http::{HeaderValue, Request};
    /// use axum::middleware::map_response;
    /// use axum::response::Response;
    ///
    /// // Every answer, a shed `503` included, says which server gave it.
    /// async fn stamp(mut res: Response) -> Response {
    ///     res.headers_mut().insert("server", HeaderValue::from_static("intralb"));
    ///     res
    /// }
    ///
    /// let builder = intralb::Balancer::builder().layer(map_response(stamp));
    /// # drop(builder);
    /// ```
    pub fn layer<L, B>(mut self, layer: L) -> Self
    where
        L: Layer<Admission> + Send + Sync + 'static,
        L::Service: Service<Request<axum_core::body::Body>, Response = Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<axum_core::body::Body>>>::Future: Send + 'static,
        <L::Service as Service<Request<axum_core::body::Body>>>::Error: Into<BoxError>,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.layers.push(layer);
        self
    }
}
