//! Starting and stopping the broker: listeners, their accept loops, `$SYS`, and graceful
//! shutdown (every connection is told, 5.0 clients with DISCONNECT 0x8B, and waited for).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::{BrokerConfig, ListenerConfig};
use crate::driver::run_connection;
use crate::sys::run_sys_publisher;

/// A running broker.
pub struct Server {
    broker: Arc<Broker>,
    local_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Binds every listener of `config` and starts serving. Fails if a listener cannot bind.
    pub async fn start(config: BrokerConfig) -> io::Result<Server> {
        let broker = Broker::new(config);
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut local_addrs = Vec::new();
        for listener_config in &broker.config.listeners {
            let listener = TcpListener::bind(listener_config.bind).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", listener_config.bind),
                )
            })?;
            let addr = listener.local_addr()?;
            tracing::info!(address = %addr, "listening (MQTT over TCP)");
            local_addrs.push(addr);
            tasks.spawn(accept_loop(
                listener,
                Arc::clone(&broker),
                Arc::new(listener_config.clone()),
                shutdown.subscribe(),
            ));
        }
        if broker.config.sys_interval > 0 {
            let interval = Duration::from_secs(broker.config.sys_interval);
            tasks.spawn(run_sys_publisher(
                Arc::clone(&broker),
                interval,
                shutdown.subscribe(),
            ));
        }
        Ok(Server {
            broker,
            local_addrs,
            shutdown,
            tasks,
        })
    }

    /// The addresses the listeners are bound to, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The shared broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, tells every connection to close, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: Arc<ListenerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if config.tcp_nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    connections.spawn(run_connection(stream, peer, Arc::clone(&broker), Arc::clone(&config), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
