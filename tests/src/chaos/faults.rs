//! The faults the suite injects: SIGKILLs of container processes, a TCP link that can be cut
//! (a proxy between a client and the server), and bytes no gRPC peer would send.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Container processes of the suite's app on the server at `url`.
pub(crate) fn containers(url: &str) -> Vec<i32> {
    crate::containers()
        .into_iter()
        .filter(|c| {
            c.env.get("MODAL_SERVER_URL").map(String::as_str) == Some(url)
                && c.env.get("MODAL_APP_NAME").map(String::as_str) == Some("e2e-chaos")
        })
        .map(|c| c.pid)
        .collect()
}

pub(crate) fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// A TCP proxy on a loopback port in front of `127.0.0.1:target`, whose link can be cut: every
/// connection through it is closed and new ones are refused until it is restored.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 << 10];
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

impl Proxy {
    pub(crate) fn start(target: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let down = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, o) = (Arc::clone(&down), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
                    let mut open = o.lock().unwrap_or_else(PoisonError::into_inner);
                    open.push(c3);
                    open.push(s3);
                }
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        Ok(Proxy { port, down, open })
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub(crate) fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for s in open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub(crate) fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK: a literal header field without indexing, with a new name (short strings only).
fn header(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

fn send(port: u16, bytes: &[u8]) {
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let _ = s.write_all(bytes);
        let mut sink = [0u8; 4096];
        let _ = s.read(&mut sink);
    }
}

/// Sends what no gRPC peer would to `port`, `rounds` times over: random bytes, an HTTP/1 request,
/// the HTTP/2 preface then garbage, a frame cut short, and a gRPC request (with a valid token)
/// whose message ends before its declared length. Returns how many connections it made.
pub(crate) fn garbage(port: u16, token: (&str, &str), rounds: u32, dice: &mut super::Dice) -> u32 {
    let mut sent = 0;
    for _ in 0..rounds {
        let noise: Vec<u8> = (0..512).map(|_| dice.below(256) as u8).collect();
        send(port, &noise);
        send(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut bytes = PREFACE.to_vec();
        bytes.extend_from_slice(&noise);
        send(port, &bytes);
        // A SETTINGS frame that says 1000 bytes and carries 10.
        let mut bytes = PREFACE.to_vec();
        bytes.extend_from_slice(&[0, 3, 232, 4, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0; 10]);
        send(port, &bytes);
        // A request whose gRPC message says 1000 bytes and ends after 10.
        let mut block = Vec::new();
        header(&mut block, ":method", "POST");
        header(&mut block, ":scheme", "http");
        header(&mut block, ":path", "/modal.v1.ClientApi/AppCreate");
        header(&mut block, ":authority", "127.0.0.1");
        header(&mut block, "content-type", "application/grpc");
        header(&mut block, "te", "trailers");
        header(&mut block, "x-modal-token-id", token.0);
        header(&mut block, "x-modal-token-secret", token.1);
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(4, 0, 0, &[]));
        bytes.extend(frame(1, 0x4, 1, &block));
        let mut message = vec![0, 0, 0, 3, 232];
        message.extend_from_slice(&[7; 10]);
        bytes.extend(frame(0, 0x1, 1, &message));
        send(port, &bytes);
        sent += 5;
    }
    sent
}
