//! The loopback listener under [`FaultProxy`](crate::FaultProxy) and
//! [`ScriptedServer`](crate::ScriptedServer): a free port on `127.0.0.1`
//! and one acceptor thread that hands each new client, as a blocking socket
//! with `TCP_NODELAY`, to its owner.

/// The public `addr`, `port` and `host` of a type with a `listener:
/// Listener` field.
macro_rules! listener_accessors {
    () => {
        /// The address clients connect to.
        pub fn addr(&self) -> std::net::SocketAddr {
            self.listener.addr()
        }

        /// The port clients connect to.
        pub fn port(&self) -> u16 {
            self.listener.addr().port()
        }

        /// The host clients connect to: always `"127.0.0.1"`.
        pub fn host(&self) -> &str {
            crate::HOST
        }
    };
}
pub(crate) use listener_accessors;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::lock;

/// How often the acceptor looks for new clients and for the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(2);

/// A bound loopback port and its acceptor thread. [`Listener::stop`] (or
/// dropping it) ends the thread; clients already handed over are the
/// owner's to close.
pub(crate) struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds a free loopback port and starts the acceptor thread `name`,
    /// which calls `on_accept(&shared, n, client)` with each client until
    /// stopped, `n` numbering the clients from 0.
    ///
    /// # Panics
    /// If no loopback port can be bound or no thread spawned.
    pub(crate) fn start<S: Send + Sync + 'static>(
        name: &str,
        shared: Arc<S>,
        on_accept: fn(&Arc<S>, u64, TcpStream),
    ) -> Listener {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("imapmig-testkit: cannot bind a loopback port: {e}"));
        let addr = listener.local_addr().expect("local_addr of a bound socket");
        listener.set_nonblocking(true).unwrap_or_else(|e| {
            panic!("imapmig-testkit: cannot make a listener non-blocking: {e}")
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        match listener.accept() {
                            Ok((client, _)) => {
                                let _ = client.set_nonblocking(false);
                                let _ = client.set_nodelay(true);
                                on_accept(&shared, n, client);
                                n += 1;
                            }
                            // Nothing waiting (WouldBlock), or EMFILE and the
                            // like: try again shortly rather than die.
                            Err(_) => std::thread::sleep(ACCEPT_POLL),
                        }
                    }
                })
                .unwrap_or_else(|e| panic!("imapmig-testkit: cannot spawn a thread: {e}"))
        };
        Listener {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting: when this returns, the acceptor thread has ended and
    /// no client will be handed over any more. Idempotent.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Joins every thread in `threads` (taken out of the list first, so that
/// the threads themselves may lock it meanwhile).
pub(crate) fn join_all(threads: &Mutex<Vec<JoinHandle<()>>>) {
    let threads = std::mem::take(&mut *lock(threads));
    for t in threads {
        let _ = t.join();
    }
}
