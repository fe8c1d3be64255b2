//! Endpoints the balancer answers itself, before admission: they take no worker and no queue
//! place, so they answer under full overload.

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::config;
use crate::pool::Pool;
use crate::response::{text, ResponseBody};

/// The configured paths.
pub(crate) struct Probes {
    health: Option<Box<str>>,
    ready: Option<Box<str>>,
    metrics: Option<Box<str>>,
}

impl Probes {
    pub(crate) fn new(config: &config::Probes) -> Self {
        let path = |p: &Option<String>| p.as_deref().map(Box::from);
        Probes {
            health: path(&config.health),
            ready: path(&config.ready),
            metrics: path(&config.metrics),
        }
    }

    #[cfg(feature = "prometheus")]
    pub(crate) fn metrics_enabled(&self) -> bool {
        self.metrics.is_some()
    }

    /// The answer if `path` is one of the probes.
    pub(crate) fn answer<B>(&self, pool: &Pool, path: &str) -> Option<Response<ResponseBody<B>>> {
        let is = |probe: &Option<Box<str>>| probe.as_deref() == Some(path);
        if is(&self.health) {
            Some(text(StatusCode::OK, Bytes::from_static(b"ok\n")))
        } else if is(&self.ready) {
            Some(if pool.is_draining() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Bytes::from_static(b"draining\n"),
                )
            } else {
                text(StatusCode::OK, Bytes::from_static(b"ready\n"))
            })
        } else if is(&self.metrics) {
            Some(metrics(pool))
        } else {
            None
        }
    }
}

#[cfg(feature = "prometheus")]
fn metrics<B>(pool: &Pool) -> Response<ResponseBody<B>> {
    use http::header::{HeaderValue, CONTENT_TYPE};

    let Some(handle) = crate::metrics::prometheus::handle() else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            Bytes::from_static(b"intralb's metrics go to the program's own metrics recorder\n"),
        );
    };
    pool.counters.metrics.set_gauges(&pool.occupancy());
    handle.run_upkeep();
    let mut response = text(StatusCode::OK, Bytes::from(handle.render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(not(feature = "prometheus"))]
fn metrics<B>(_: &Pool) -> Response<ResponseBody<B>> {
    text(
        StatusCode::NOT_IMPLEMENTED,
        Bytes::from_static(b"intralb was built without its `prometheus` feature\n"),
    )
}
