//! A TCP proxy on loopback that a test can cut, to take one client away from its server while
//! the server (and every other client) carries on; optionally it runs a hook before forwarding
//! each request of a given ZooKeeper opcode, to act between two requests of one operation.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Called with a request's opcode before the request is forwarded.
pub type Hook = Arc<dyn Fn(i32) + Send + Sync>;

/// Forwards connections from its own port to `upstream`, until cut.
pub struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:(a free port) to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Proxy {
        Self::start_with(upstream, None)
    }

    /// Like [`start`](Self::start), running `hook` before each request a client sends.
    pub fn start_with(upstream: u16, hook: Option<Hook>) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let open = Arc::new(AtomicBool::new(true));
        let stopped = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (o, s, c) = (Arc::clone(&open), Arc::clone(&stopped), Arc::clone(&conns));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !o.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let mut held = c.lock().unwrap_or_else(|e| e.into_inner());
                let (Ok(c2s_from), Ok(c2s_to), Ok(s2c_from), Ok(s2c_to)) = (
                    client.try_clone(),
                    server.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                ) else {
                    continue;
                };
                let hook = hook.clone();
                std::thread::spawn(move || match hook {
                    Some(hook) => pump_requests(c2s_from, c2s_to, &*hook),
                    None => pump(c2s_from, c2s_to),
                });
                std::thread::spawn(move || pump(s2c_from, s2c_to));
                held.push(client);
                held.push(server);
            }
        });
        Proxy {
            port,
            open,
            stopped,
            conns,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for conn in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the listener's `accept`, which then sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Forwards a client's length-prefixed frames one by one, calling `hook` with each request's
/// opcode first (the first frame is the connect request, which has none).
fn pump_requests(mut from: TcpStream, mut to: TcpStream, hook: &(dyn Fn(i32) + Send + Sync)) {
    let mut first = true;
    loop {
        let mut len = [0u8; 4];
        if from.read_exact(&mut len).is_err() {
            break;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        if from.read_exact(&mut body).is_err() {
            break;
        }
        if !first && body.len() >= 8 {
            hook(i32::from_be_bytes(body[4..8].try_into().expect("4 bytes")));
        }
        first = false;
        if to.write_all(&len).is_err() || to.write_all(&body).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
