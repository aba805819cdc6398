//! Accepting and serving connections: one thread per worker, each with its own listening socket
//! on the server's port (`SO_REUSEPORT`), its own single-threaded runtime and its own instance of
//! the actix-web app, served by actix-http.
//!
//! Why not actix-web's `HttpServer`: actix-server accepts every connection on a thread of its
//! own and hands it to a worker through a channel, waking that worker. With one connection per
//! request (BitTorrent announces from clients that do not keep connections alive) the hand-off
//! was most of what separated us from opentracker: 0.86 context switches per request against
//! its 0.08, and the accept thread alone took a fifth of our CPU (perf). Here the kernel spreads
//! new connections over the workers' sockets and each worker accepts from its own, so a busy
//! worker takes the next connection without sleeping and without waking anyone.
//!
//! Invariants:
//! - The port is first bound by a plain socket (no `SO_REUSEPORT`): a port that anyone holds,
//!   another gotorrent-http included, is an error at start. (Only a reuse-port socket bound in
//!   the instant between that probe and the workers' binds could join the group.)
//! - [`Server::start`] returns once every worker serves, or fails if one cannot.
//! - A worker keeps at most [`MAX_CONNECTIONS`] connections open; at the cap it stops accepting
//!   until one closes. Unlike actix-server, which hands connections to a worker with room, the
//!   kernel keeps queueing this worker's share in its own backlog meanwhile.
//! - Stopping closes every listening socket first. A graceful stop then lets open connections
//!   finish (idle keep-alive ones, and those that become idle, are closed at once) for up to the
//!   shutdown timeout; a forced stop, or dropping the [`Server`], drops them.
//! - The app's `AppConfig` keeps actix's default host and local address (localhost:8080):
//!   actix-web sets them only inside `HttpServer`, and nothing here reads them (no `url_for`, no
//!   `connection_info`).

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, Protocol, Request, Response};
use actix_service::{map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;
use actix_web::rt::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Open connections per worker before it pauses accepting (actix-server's default, 25,600).
pub const MAX_CONNECTIONS: usize = 25_600;

/// How long a worker waits before accepting again after an error that is not the client's
/// (out of file descriptors): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// How connections are served, the same for every worker.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Graceful stop: how long open connections may take to finish.
    pub shutdown_timeout: Duration,
    /// Idle time after which a kept-alive connection is closed.
    pub keep_alive: Duration,
    /// How long a client has to send a request's head once connected.
    pub client_request_timeout: Duration,
    /// After an early answer (a refused upload), how long the unread body may still arrive
    /// before the socket closes: closing on unread data sends a reset the client may see
    /// instead of the answer.
    pub client_disconnect_timeout: Duration,
}

impl Default for Config {
    /// actix-web's `HttpServer` defaults, and 10 s to finish in-flight responses on SIGTERM.
    fn default() -> Self {
        Config {
            shutdown_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            client_request_timeout: Duration::from_secs(5),
            client_disconnect_timeout: Duration::from_secs(1),
        }
    }
}

/// Binds `addr` (port 0: a free port) for `workers` workers and returns the bound address
/// and one listening socket per worker, all on that address.
pub fn bind(addr: SocketAddr, workers: usize) -> io::Result<(SocketAddr, Vec<StdListener>)> {
    // The plain bind fails on a port held by anyone, reuse-port sockets included; the group
    // below then takes the port this one proves free (port 0 resolved once for all).
    let local = StdListener::bind(addr)?.local_addr()?;
    let listeners = (0..workers.max(1))
        .map(|_| reuse_port_listener(local))
        .collect::<io::Result<_>>()?;
    Ok((local, listeners))
}

fn reuse_port_listener(addr: SocketAddr) -> io::Result<StdListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Stops the server; clones share one stop.
#[derive(Clone)]
pub struct Handle {
    stop: Arc<watch::Sender<Option<Stop>>>,
    stopped: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Graceful,
    Forced,
}

impl Handle {
    /// Stops accepting and, when `graceful`, lets open connections finish; returns once every
    /// worker has stopped. The first stop decides; later calls only wait.
    pub async fn stop(&self, graceful: bool) {
        self.request(if graceful {
            Stop::Graceful
        } else {
            Stop::Forced
        });
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|done| *done).await;
    }

    /// Asks the workers to stop, unless a stop was asked already (the first one decides).
    fn request(&self, stop: Stop) {
        self.stop.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(stop);
            }
            first
        });
    }
}

/// Waits for a stop to be asked; a server dropped without one stops its workers at once.
async fn requested(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(asked) => asked.unwrap_or(Stop::Forced),
        Err(_) => Stop::Forced,
    }
}

/// The running workers. Await [`Server::run`] to serve until a stop (SIGTERM: graceful;
/// SIGINT, SIGQUIT: forced; or [`Handle::stop`]).
pub struct Server {
    handle: Handle,
    stopped: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Starts one worker thread per listener, each building its own app with `app`.
    pub fn start<F, I, S, B>(
        listeners: Vec<StdListener>,
        app: F,
        config: Config,
    ) -> io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let (stop, _) = watch::channel(None);
        let (stopped_tx, stopped) = watch::channel(false);
        let handle = Handle {
            stop: Arc::new(stop),
            stopped,
        };
        let workers = listeners.len();
        let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), String>>();
        let threads = listeners
            .into_iter()
            .enumerate()
            .map(|(index, listener)| {
                let (app, stop, ready) = (app.clone(), handle.stop.subscribe(), ready_tx.clone());
                std::thread::Builder::new()
                    .name(format!("http-worker-{index}"))
                    .spawn(move || {
                        let runtime = match worker_runtime(workers) {
                            Ok(runtime) => runtime,
                            Err(e) => {
                                let _ = ready.send(Err(format!("a worker's runtime: {e}")));
                                return;
                            }
                        };
                        runtime.block_on(async move {
                            let listener = match TcpListener::from_std(listener) {
                                Ok(listener) => listener,
                                Err(e) => {
                                    let _ = ready.send(Err(format!("a worker's listener: {e}")));
                                    return;
                                }
                            };
                            // Tells connections that are or become idle to close on a graceful
                            // stop. A watch, not a Notify: a connection accepted just before the
                            // stop asks for the signal after it was given.
                            let (draining, drained) = watch::channel(false);
                            let mut builder = HttpService::<TcpStream, _, B>::build()
                                .keep_alive(config.keep_alive)
                                .client_request_timeout(config.client_request_timeout)
                                .client_disconnect_timeout(config.client_disconnect_timeout)
                                .graceful_shutdown_signal(move || {
                                    let mut drained = drained.clone();
                                    async move {
                                        let _ = drained.wait_for(|on| *on).await;
                                    }
                                });
                            if let Ok(local) = listener.local_addr() {
                                builder = builder.local_addr(local);
                            }
                            let app = app().into_factory().map_err(|e| e.into().error_response());
                            let factory = builder.finish(map_config(app, |_| AppConfig::default()));
                            match factory.new_service(()).await {
                                Ok(service) => {
                                    let _ = ready.send(Ok(()));
                                    serve(listener, Rc::new(service), draining, config, stop).await
                                }
                                Err(()) => {
                                    let _ = ready.send(Err("a worker's app did not start".into()));
                                }
                            }
                        });
                    })
            })
            .collect::<io::Result<_>>()?;
        // Dropped on an error below, the server stops the workers that did start.
        let server = Server {
            handle,
            stopped: stopped_tx,
            threads,
            shutdown_timeout: config.shutdown_timeout,
        };
        drop(ready_tx);
        for _ in 0..workers {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(io::Error::other(why)),
                Err(_) => return Err(io::Error::other("a worker thread ended while starting")),
            }
        }
        Ok(server)
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Serves until stopped by a signal or a [`Handle`], then waits for the workers.
    pub async fn run(mut self) -> io::Result<()> {
        let mut stop = self.handle.stop.subscribe();
        tokio::select! {
            signal = stop_signal() => {
                let signal = signal?;
                let graceful = signal == Stop::Graceful;
                tracing::info!(
                    graceful,
                    timeout_secs = self.shutdown_timeout.as_secs(),
                    "stop signal received; closing the listeners{}",
                    if graceful { " and finishing open requests" } else { "" }
                );
                self.handle.request(signal);
            }
            _ = requested(&mut stop) => {}
        }
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| t.join())
                .filter(Result::is_err)
                .count()
        })
        .await
        .map_err(io::Error::other)?;
        self.stopped.send_replace(true);
        match joined {
            0 => Ok(()),
            n => Err(io::Error::other(format!("{n} worker thread(s) panicked"))),
        }
    }
}

impl Drop for Server {
    /// A server dropped while running (a test's runtime ending) stops its workers at once.
    fn drop(&mut self) {
        self.handle.request(Stop::Forced);
    }
}

/// SIGTERM asks for a graceful stop; SIGINT (Ctrl-C) and SIGQUIT for a forced one.
#[cfg(unix)]
async fn stop_signal() -> io::Result<Stop> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut quit) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
        signal(SignalKind::quit())?,
    );
    Ok(tokio::select! {
        _ = term.recv() => Stop::Graceful,
        _ = int.recv() => Stop::Forced,
        _ = quit.recv() => Stop::Forced,
    })
}

#[cfg(not(unix))]
async fn stop_signal() -> io::Result<Stop> {
    tokio::signal::ctrl_c().await?;
    Ok(Stop::Forced)
}

/// A worker's runtime. Each has its own blocking pool; actix-server shared 512 threads among
/// its workers, and so do these.
fn worker_runtime(workers: usize) -> io::Result<actix_web::rt::Runtime> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads((512 / workers.max(1)).max(1))
        .build()?;
    Ok(runtime.into())
}

/// One worker's loop: accepts until told to stop, then drains per the stop's kind.
async fn serve<H>(
    listener: TcpListener,
    service: Rc<H>,
    draining: watch::Sender<bool>,
    config: Config,
    mut stop: watch::Receiver<Option<Stop>>,
) where
    H: Service<(TcpStream, Protocol, Option<SocketAddr>), Response = (), Error = DispatchError>
        + 'static,
{
    let open = Rc::new(Cell::new(0usize));
    let closed = Rc::new(Notify::new());
    let stopping = loop {
        if open.get() >= MAX_CONNECTIONS {
            tokio::select! {
                _ = closed.notified() => continue,
                stopping = requested(&mut stop) => break stopping,
            }
        }
        let accepted = tokio::select! {
            biased;
            stopping = requested(&mut stop) => break stopping,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Headers and body leave in separate writes; with Nagle's algorithm on, the
                // body of a small response waits for the client's delayed ACK (~40 ms).
                let _ = stream.set_nodelay(true);
                let (service, open, closed) = (service.clone(), open.clone(), closed.clone());
                open.set(open.get() + 1);
                actix_web::rt::spawn(async move {
                    let _open = OpenConnection(open, closed);
                    if let Err(e) = service.call((stream, Protocol::Http1, Some(peer))).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            // The client gave up between connecting and our accept: nothing to do.
            Err(e) if is_clients(&e) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot accept connections; retrying in 500 ms");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    stopping = requested(&mut stop) => break stopping,
                }
            }
        }
    };
    drop(listener);
    if stopping == Stop::Graceful && open.get() > 0 {
        draining.send_replace(true);
        let all_closed = async {
            while open.get() > 0 {
                closed.notified().await;
            }
        };
        if tokio::time::timeout(config.shutdown_timeout, all_closed)
            .await
            .is_err()
        {
            tracing::warn!(
                open = open.get(),
                "connections still open after the shutdown timeout; dropping them"
            );
        }
    }
}

/// Counts a connection as open until its task ends or is dropped.
struct OpenConnection(Rc<Cell<usize>>, Rc<Notify>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
        self.1.notify_one();
    }
}

/// Accept errors that concern one connection, not the listener.
fn is_clients(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
