//! A small HTTP/1.1 server for `/metrics`, `/healthz` and `/`. Hand-written on `std::net`
//! because what it must guarantee is simple and strict: a bounded number of connections (the
//! next one gets 503 at once), a bounded time per request (read and write timeouts), a bounded
//! request head, one request per connection, and a 4xx for anything malformed. (tiny_http, the
//! obvious crate, spawns a thread per connection without limit and sets no read timeout.)
//! Requests are served on their own threads and read only a published snapshot, so a scrape
//! never touches the probe or ack path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;

use super::metrics::{self, Format};

/// Connections served at once; more get 503.
pub(crate) const MAX_CONNECTIONS: usize = 16;
/// Longest time to read a request or write a response.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;

/// A bound listener; `serve` runs it until `stop`.
pub(crate) struct Server {
    listener: TcpListener,
    registry: Arc<Registry>,
}

impl Server {
    pub(crate) fn bind(addr: SocketAddr, registry: Registry) -> Result<Self> {
        let listener = TcpListener::bind(addr).with_context(|| format!("--listen {addr}: cannot listen"))?;
        Ok(Server { listener, registry: Arc::new(registry) })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Unblocks [`Server::run`]'s accept (a blocking accept serves a scrape at once; a polled
    /// one would add up to its poll interval) so it sees `stop`.
    pub(crate) fn wake(&self) {
        let mut addr = self.local_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    }

    /// Accepts connections until `stop` is set and [`Server::wake`] is called.
    pub(crate) fn run(&self, stop: &AtomicBool) {
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            let accepted = self.listener.accept();
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let stream = match accepted {
                Ok((s, _)) => s,
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
            let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
            if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::AcqRel);
                let mut s = stream;
                let _ = respond(&mut s, 503, "text/plain", b"busy: too many connections\n", false);
                continue;
            }
            let (registry, mine) = (self.registry.clone(), active.clone());
            let spawned = thread::Builder::new().name("http".into()).spawn(move || {
                handle(stream, &registry);
                mine.fetch_sub(1, Ordering::AcqRel);
            });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// A parsed request head: what the three pages need.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub accept: Option<String>,
}

/// Parses a request head (without its final empty line). `Err` carries the status to answer.
pub(crate) fn parse(head: &str) -> Result<Request, u16> {
    let mut lines = head.split("\r\n");
    let line = lines.next().ok_or(400u16)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(400);
    }
    let mut accept = None;
    for h in lines {
        let (name, value) = h.split_once(':').ok_or(400u16)?;
        if name.is_empty() || name.contains(' ') {
            return Err(400);
        }
        if name.eq_ignore_ascii_case("accept") {
            accept = Some(value.trim().to_string());
        }
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    Ok(Request { method: method.to_string(), path, accept })
}

/// Reads the head up to the empty line, within [`REQUEST_TIMEOUT`] in all (a client that sends
/// a byte now and then does not get more); `Err` with a status when it is late, long or broken.
fn read_head(stream: &mut TcpStream) -> Result<String, u16> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return String::from_utf8(buf).map_err(|_| 400);
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(408);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // Too slow: 408, as far as the client still listens.
            Err(_) => return Err(408),
        }
    }
}

const LANDING: &str = "<!doctype html><html><head><title>mcprobe serve</title></head><body>\
<h1>mcprobe serve</h1><p>Continuous LAN multicast probing.</p>\
<ul><li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>\
<li><a href=\"/healthz\">/healthz</a>: liveness</li></ul></body></html>\n";

fn handle(mut stream: TcpStream, registry: &Registry) {
    let req = read_head(&mut stream).and_then(|h| parse(&h));
    let _ = match req {
        Err(status) => respond(&mut stream, status, "text/plain", reason(status).as_bytes(), false),
        Ok(r) if r.method != "GET" && r.method != "HEAD" => {
            respond(&mut stream, 405, "text/plain", b"only GET and HEAD\n", false)
        }
        Ok(r) => {
            let head_only = r.method == "HEAD";
            match r.path.as_str() {
                "/metrics" => {
                    let format = Format::negotiate(r.accept.as_deref());
                    let body = metrics::encode(registry, format);
                    respond(&mut stream, 200, format.content_type(), body.as_bytes(), head_only)
                }
                "/healthz" => respond(&mut stream, 200, "text/plain", b"ok\n", head_only),
                "/" => respond(&mut stream, 200, "text/html; charset=utf-8", LANDING.as_bytes(), head_only),
                _ => respond(&mut stream, 404, "text/plain", b"not found\n", head_only),
            }
        }
    };
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn respond(s: &mut TcpStream, status: u16, ctype: &str, body: &[u8], head_only: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    s.write_all(head.as_bytes())?;
    if !head_only {
        s.write_all(body)?;
    }
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_scrape_and_rejects_malformed_heads() {
        let r = parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text").unwrap();
        assert_eq!(r.path, "/metrics");
        assert_eq!(Format::negotiate(r.accept.as_deref()), Format::OpenMetrics);
        assert_eq!(parse("GET /metrics HTTP/1.0").unwrap().accept, None);
        assert_eq!(parse("GARBAGE"), Err(400));
        assert_eq!(parse("GET metrics HTTP/1.1"), Err(400));
        assert_eq!(parse("GET / HTTP/1.1 extra"), Err(400));
        assert_eq!(parse("GET / SPDY/3"), Err(400));
        assert_eq!(parse("GET / HTTP/1.1\r\nno colon here"), Err(400));
    }
}
