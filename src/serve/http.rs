//! `serve`'s HTTP side: `/metrics`, `/healthz` and `/`, over hyper (HTTP/1.1) on a one-thread
//! tokio runtime, with TLS (rustls) and basic auth from `--web-config`.
//!
//! Why hyper over the hand-written server it replaces: a thread per connection let 16 slow
//! clients take every slot, so any local user could blind the scraper. Tasks make connections
//! cheap, so the limits can be generous, and hyper brings what had to be written and tested by
//! hand: a strict HTTP/1.x parser (bare-LF lines, `HTTP/1.9`, oversized heads), a timeout on
//! each request head, keep-alive, TLS through tokio-rustls. The cost is measured in the commit.
//!
//! Bounds (the manual lists them):
//! - A TLS handshake and each request head must arrive within [`HEAD_TIMEOUT`]; a head is at
//!   most [`MAX_HEAD`] bytes (431 beyond).
//! - A connection lives at most [`LIFETIME`]; then it finishes its response (at most
//!   [`RESPONSE_TIMEOUT`] more) and closes. A slow reader holds one connection that long.
//! - [`MAX_PER_PEER`] connections per client address, [`MAX_CONNECTIONS`] in all. A new
//!   connection over a limit takes the place of the oldest one past [`EVICT_AFTER`] (of that
//!   address, or of the address with the most): a connection that has held its place that long
//!   is slow or idle, while a scraper's lasts milliseconds, so slow clients can never starve it.
//!   When none is that old, the newcomer gets 503 once its request is read, never a reset.
//! - Expositions are encoded once per published state and shared by every response that sends
//!   it, so slow readers of a large one cost no memory each.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::AbortHandle;

use super::metrics::{self, Format, Published};
use super::webconfig::WebConfig;

/// Connections at once, in all.
pub(crate) const MAX_CONNECTIONS: usize = 512;
/// Connections at once from one client address.
pub(crate) const MAX_PER_PEER: usize = 64;
/// A connection this old may be closed to make room for a new one.
pub(crate) const EVICT_AFTER: Duration = Duration::from_secs(1);
/// Longest time for a TLS handshake, and for each request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of a connection (keep-alive included) before it is closed after its response.
pub(crate) const LIFETIME: Duration = Duration::from_secs(60);
/// Longest time to finish a response once the connection's life is over; a refused connection
/// also gets this long to send its request.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request head (hyper's smallest buffer limit).
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Connections being refused (read, answered 503) at once; more are closed at once.
pub(crate) const MAX_REFUSING: usize = 64;
/// bcrypt checks of unknown passwords run one at a time: each costs ~50 ms of CPU at cost 10,
/// and a known good password is remembered (as a BLAKE3 digest) after its first check.
const REMEMBERED_PASSWORDS: usize = 64;

/// A bound listener; `serve` runs it until `stop`.
pub(crate) struct Server {
    listener: TcpListener,
    site: Arc<Site>,
}

/// A state and its exposition in each format, encoded when first asked for.
type Encoded = (Arc<metrics::Exposed>, [Option<Bytes>; 2]);

/// What every request reads.
struct Site {
    registry: Registry,
    published: Published,
    web: WebConfig,
    /// The last encodings: the state they were made from, and one body per format.
    cache: Mutex<Option<Encoded>>,
    /// Digests of user:password pairs that passed bcrypt.
    passed: Mutex<Vec<[u8; 32]>>,
    /// One bcrypt check at a time.
    bcrypt: tokio::sync::Semaphore,
    /// A hash of the users' cost, checked for unknown users.
    decoy: String,
}

impl Server {
    pub(crate) fn bind(addr: SocketAddr, registry: Registry, published: Published, web: WebConfig) -> Result<Self> {
        let listener = TcpListener::bind(addr).with_context(|| format!("--listen {addr}: cannot listen"))?;
        listener.set_nonblocking(true).context("--listen: cannot set the listener non-blocking")?;
        let decoy = match web.users.values().next() {
            Some(h) => {
                let cost = h.parse::<bcrypt::HashParts>().map_or(bcrypt::DEFAULT_COST, |p| p.get_cost());
                bcrypt::hash(rand::random::<u64>().to_string(), cost).context("cannot make a bcrypt hash")?
            }
            None => String::new(),
        };
        let site = Site {
            registry,
            published,
            web,
            cache: Mutex::new(None),
            passed: Mutex::new(Vec::new()),
            bcrypt: tokio::sync::Semaphore::new(1),
            decoy,
        };
        Ok(Server { listener, site: Arc::new(site) })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub(crate) fn scheme(&self) -> &'static str {
        if self.site.web.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves until `stop` is set (looked at every [`crate::net::STOP_TICK`]), on this thread
    /// (plus one for bcrypt).
    pub(crate) fn run(self, stop: &AtomicBool) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .thread_name("http-bcrypt")
            .build()
            .context("cannot start the HTTP runtime")?;
        rt.block_on(async {
            let listener = tokio::net::TcpListener::from_std(self.listener).context("--listen")?;
            let conns = Arc::new(Mutex::new(Conns::default()));
            let refusing = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING));
            // `stop` is a plain flag nothing rings: looked at every STOP_TICK (it was 50 ms), the
            // one wake-up an idle server has; connections are served by their own tasks.
            let mut tick = tokio::time::interval(crate::net::STOP_TICK);
            loop {
                tokio::select! {
                    _ = tick.tick() => if stop.load(Ordering::SeqCst) { return Ok(()) },
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => admit(&self.site, &conns, &refusing, stream, peer.ip()),
                        // Out of descriptors and the like: back off instead of spinning.
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    },
                }
            }
        })
    }
}

/// The connections open, oldest first (ids grow), each with its address and its task.
#[derive(Default)]
struct Conns {
    next: u64,
    open: BTreeMap<u64, (IpAddr, Instant, AbortHandle)>,
    per_peer: HashMap<IpAddr, usize>,
}

impl Conns {
    /// The connection to close for a newcomer from `peer`, if one must and may be.
    fn victim(&self, peer: IpAddr) -> Result<Option<u64>, ()> {
        let of_peer = self.per_peer.get(&peer).copied().unwrap_or(0);
        let from = if of_peer >= MAX_PER_PEER {
            peer
        } else if self.open.len() >= MAX_CONNECTIONS {
            // The address with the most connections pays for the crowd.
            *self.per_peer.iter().max_by_key(|(_, n)| **n).expect("connections are open").0
        } else {
            return Ok(None);
        };
        let oldest = self.open.iter().find(|(_, (p, _, _))| *p == from);
        match oldest {
            Some((id, (_, since, _))) if since.elapsed() >= EVICT_AFTER => Ok(Some(*id)),
            _ => Err(()),
        }
    }

    fn remove(&mut self, id: u64) -> Option<AbortHandle> {
        let (peer, _, handle) = self.open.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
        Some(handle)
    }
}

/// Takes the connection's entry out when its task ends or is aborted.
struct Leave(Arc<Mutex<Conns>>, u64);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(self.1);
    }
}

fn admit(
    site: &Arc<Site>,
    conns: &Arc<Mutex<Conns>>,
    refusing: &Arc<tokio::sync::Semaphore>,
    stream: tokio::net::TcpStream,
    peer: IpAddr,
) {
    let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
    let evicted = match c.victim(peer) {
        Ok(victim) => victim.and_then(|id| c.remove(id)),
        Err(()) => {
            drop(c);
            // Too many young connections: refused, politely, if there is room even for that.
            if let Ok(permit) = refusing.clone().try_acquire_owned() {
                let tls = site.web.tls.is_some();
                tokio::spawn(async move {
                    refuse(stream, tls).await;
                    drop(permit);
                });
            }
            return;
        }
    };
    let id = c.next;
    c.next += 1;
    let task = tokio::spawn({
        let (site, leave) = (site.clone(), Leave(conns.clone(), id));
        async move {
            let _leave = leave;
            connection(site, stream).await;
        }
    });
    c.open.insert(id, (peer, Instant::now(), task.abort_handle()));
    *c.per_peer.entry(peer).or_default() += 1;
    drop(c);
    if let Some(h) = evicted {
        h.abort();
    }
}

/// Reads what the client sends for up to a second (so closing does not reset the connection
/// under a request it sent), then answers 503; over TLS, where a plain answer would read as a
/// broken handshake and a handshake is what the refusal saves, it only closes.
async fn refuse(mut stream: tokio::net::TcpStream, tls: bool) {
    let mut buf = [0u8; 1024];
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 || seen.len() > MAX_HEAD {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.windows(2).any(|w| w == b"\n\n") {
                break;
            }
        }
    })
    .await;
    let body = "busy: too many connections\n";
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if !tls {
            let _ = stream.write_all(msg.as_bytes()).await;
        }
        let _ = stream.shutdown().await;
        // Drain what is still coming, so the close is a FIN and not a reset.
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn connection(site: Arc<Site>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    match site.web.tls.clone() {
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            if let Ok(Ok(s)) = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
                http(site, s).await;
            }
        }
        None => http(site, stream).await,
    }
}

async fn http<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(site: Arc<Site>, io: I) {
    let service = hyper::service::service_fn(move |req| {
        let site = site.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(&site, &req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT).max_buf_size(MAX_HEAD);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    if tokio::time::timeout(LIFETIME, conn.as_mut()).await.is_err() {
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(RESPONSE_TIMEOUT, conn).await;
    }
}

const LANDING: &str = "<!doctype html><html><head><title>mcprobe serve</title></head><body>\
<h1>mcprobe serve</h1><p>Continuous LAN multicast probing.</p>\
<ul><li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>\
<li><a href=\"/healthz\">/healthz</a>: liveness</li></ul></body></html>\n";

fn response(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

async fn answer(site: &Site, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if !site.web.users.is_empty() && !site.authorized(req).await {
        let mut r = response(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n");
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mcprobe\""));
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET and HEAD\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            response(StatusCode::OK, format.content_type(), site.exposition(format))
        }
        "/healthz" => response(StatusCode::OK, "text/plain", "ok\n"),
        "/" => response(StatusCode::OK, "text/html; charset=utf-8", LANDING),
        _ => response(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

impl Site {
    /// The exposition of the published state in `format`, encoded once per state.
    fn exposition(&self, format: Format) -> Bytes {
        let state = self.published.get();
        let slot = format as usize;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.as_mut() {
            Some((s, bodies)) if Arc::ptr_eq(s, &state) => {
                bodies[slot].get_or_insert_with(|| Bytes::from(metrics::encode(&self.registry, format))).clone()
            }
            _ => {
                let body = Bytes::from(metrics::encode(&self.registry, format));
                let mut bodies = [None, None];
                bodies[slot] = Some(body.clone());
                *cache = Some((state, bodies));
                body
            }
        }
    }

    /// Basic auth against the web config's bcrypt hashes. An unknown user costs a bcrypt check
    /// too, so timing does not tell which users exist.
    async fn authorized(&self, req: &Request<hyper::body::Incoming>) -> bool {
        use base64::Engine;
        let Some((user, password)) = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        else {
            return false;
        };
        let digest = *blake3::keyed_hash(&[7; 32], format!("{user}\0{password}").as_bytes()).as_bytes();
        if self.passed.lock().unwrap_or_else(|e| e.into_inner()).contains(&digest) {
            return true;
        }
        let hash = self.web.users.get(&user).unwrap_or(&self.decoy).clone();
        let known = self.web.users.contains_key(&user);
        let Ok(_permit) = self.bcrypt.acquire().await else { return false };
        let ok = spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false)).await && known;
        if ok {
            let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
            if passed.len() >= REMEMBERED_PASSWORDS {
                passed.remove(0);
            }
            passed.push(digest);
        }
        ok
    }
}

async fn spawn_blocking<F: FnOnce() -> bool + Send + 'static>(f: F) -> bool {
    tokio::task::spawn_blocking(f).await.unwrap_or(false)
}
