//! Where connections come from: an inherited socket (systemd socket activation, `LISTEN_FDS`)
//! or a bound address, optionally with `SO_REUSEPORT`.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// The listener `serve` uses: the first inherited socket if `LISTEN_FDS` passes one, else
/// `config.addr`.
pub(crate) fn bind(config: &Config) -> Result<TcpListener> {
    if let Some(listener) = inherited()? {
        return Ok(listener);
    }
    let listener = &config.listener;
    bind_addr(listener.addr, listener.reuse_port).map_err(|e| Error::bind(listener.addr, e))
}

fn inherited() -> Result<Option<TcpListener>> {
    let inherited_error = |e: std::io::Error| {
        Error::new(
            ErrorKind::Bind,
            "cannot use the socket passed in LISTEN_FDS",
        )
        .with_source(e)
    };
    let Some(listener) = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(inherited_error)?
    else {
        return Ok(None);
    };
    listener.set_nonblocking(true).map_err(inherited_error)?;
    let listener = TcpListener::from_std(listener).map_err(inherited_error)?;
    tracing::info!("serving on the socket passed in LISTEN_FDS");
    Ok(Some(listener))
}

fn bind_addr(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    #[cfg(not(unix))]
    if reuse_port {
        tracing::warn!("reuse_port is only supported on Unix; binding without it");
    }
    socket.bind(addr)?;
    socket.listen(1024)
}
