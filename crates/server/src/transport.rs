//! The HTTP/1 listener, with a guard on each connection below actix.
//!
//! actix-http answers a request line longer than the `http` crate can hold as a URI
//! (64 KiB) with a bare 400, and a request head over its 128 KiB buffer with a bare 431:
//! no body, no `code`, unlike every other refusal. [`HeadGuard`] holds each request head
//! back until it is complete, and hands actix a head over [`MAX_REQUEST_LINE`] or
//! [`MAX_REQUEST_HEAD`] as a small stand-in request instead, marked with
//! [`TRANSPORT_REFUSAL_HEADER`]: the application answers it like any other oversized
//! head (`input_limits`: 414 `uri_too_long`, 431 `headers_too_large`, problem+json,
//! logged and counted), in order after the connection's earlier requests, and closes the
//! connection. The guard follows message framing: it passes `Content-Length` bodies
//! straight through, and steps aside for the rest of a connection that sends any other
//! (a chunked body), since it never decodes chunks; actix's own limits still hold there.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_http::HttpService;
use actix_server::Server;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::{AppConfig, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, body::MessageBody};
use tenure_api::middleware::input_limits::TRANSPORT_REFUSAL_HEADER;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The longest request line (method, target and version; the bytes before its line feed)
/// a connection may send.
pub const MAX_REQUEST_LINE: usize = 32 * 1024;
/// The largest request head (request line and headers).
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Serves `app` (built once per worker) over HTTP/1 on `bind`, each connection behind a
/// [`HeadGuard`].
pub fn serve<F, T, B>(app: F, workers: usize, bind: &str) -> io::Result<Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    Ok(Server::build()
        .workers(workers)
        .bind("tenure-http", bind, move || {
            let app = app().into_factory().map_err(|err| err.error_response());
            fn_service(|io: TcpStream| {
                let peer = io.peer_addr().ok();
                std::future::ready(Ok::<_, actix_http::error::DispatchError>((
                    HeadGuard::new(io),
                    peer,
                )))
            })
            .and_then(
                HttpService::build()
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .h1(map_config(app, |()| AppConfig::default())),
            )
        })?
        .run())
}

/// What the guard refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    RequestLine,
    Head,
}

impl Refusal {
    /// The request actix gets instead of the oversized head: the application refuses it
    /// (the marker names which limit) and the connection closes after the answer.
    fn stand_in(self) -> Vec<u8> {
        let code = match self {
            Self::RequestLine => "uri_too_long",
            Self::Head => "headers_too_large",
        };
        format!(
            "GET / HTTP/1.1\r\nhost: tenure\r\n{TRANSPORT_REFUSAL_HEADER}: {code}\r\n\
             connection: close\r\n\r\n"
        )
        .into_bytes()
    }
}

/// Where a connection is in its stream of requests.
#[derive(Debug)]
enum Framing {
    /// Reading a request head: its bytes so far, held back from actix until the head is
    /// complete.
    Head(Vec<u8>),
    /// Inside a body with this many bytes still to come.
    Body(u64),
    /// Not watched any more: a body framed otherwise than by length.
    Off,
    /// A head was refused: actix has the stand-in, and nothing more of the client's.
    Refused,
}

impl Framing {
    fn head() -> Self {
        Self::Head(Vec::new())
    }

    /// Follows the bytes the client sent next, appending to `release` what actix may
    /// read now: body bytes at once, a head once it is complete and within the limits,
    /// a stand-in request for one that is not (after which nothing more is released).
    fn observe(&mut self, mut input: &[u8], release: &mut Vec<u8>) {
        while !input.is_empty() {
            match self {
                Self::Off => {
                    release.extend_from_slice(input);
                    return;
                }
                Self::Refused => return,
                Self::Body(left) => {
                    let taken = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                    release.extend_from_slice(&input[..taken]);
                    *left -= taken as u64;
                    input = &input[taken..];
                    if *left == 0 {
                        *self = Self::head();
                    }
                }
                Self::Head(held) if held.is_empty() => {
                    // The common case: the whole head is in this read. It is checked
                    // where it lies and released from there, with nothing held.
                    let Some(end) = head_end(input) else {
                        if let Some(refusal) = over_limit(input) {
                            release.extend_from_slice(&refusal.stand_in());
                            *self = Self::Refused;
                            return;
                        }
                        // The head goes on in the next read.
                        held.extend_from_slice(input);
                        return;
                    };
                    let head = &input[..end];
                    if let Some(refusal) = over_limit(head) {
                        release.extend_from_slice(&refusal.stand_in());
                        *self = Self::Refused;
                        return;
                    }
                    release.extend_from_slice(head);
                    input = &input[end..];
                    *self = body_after(head);
                }
                Self::Head(held) => {
                    // Hold at most one byte over the limit: enough to know it is over.
                    let seen = held.len();
                    let take = input.len().min(MAX_REQUEST_HEAD + 1 - seen);
                    held.extend_from_slice(&input[..take]);
                    // A terminator may straddle two reads: look from a little before.
                    let from = seen.saturating_sub(3);
                    let end = head_end(&held[from..]).map(|i| from + i);
                    if let Some(refusal) = over_limit(&held[..end.unwrap_or(held.len())]) {
                        release.extend_from_slice(&refusal.stand_in());
                        *self = Self::Refused;
                        return;
                    }
                    let Some(end) = end else {
                        // The head goes on in the next read (all of this one is held).
                        return;
                    };
                    held.truncate(end);
                    let next = body_after(held);
                    release.append(held);
                    input = &input[end - seen..];
                    *self = next;
                }
            }
        }
    }

    /// Whether a refusal ended the connection's requests.
    fn refused(&self) -> bool {
        matches!(self, Self::Refused)
    }
}

/// Where a head ends in `bytes` (just after its empty line, `\r\n\r\n` or a bare
/// `\n\n`), if it does.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(bytes, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr::memmem::find(bytes, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Which limit `head` (a whole head, or the start of one) is over, if any.
fn over_limit(head: &[u8]) -> Option<Refusal> {
    let line = memchr::memchr(b'\n', head).unwrap_or(head.len());
    if line > MAX_REQUEST_LINE {
        Some(Refusal::RequestLine)
    } else if head.len() > MAX_REQUEST_HEAD {
        Some(Refusal::Head)
    } else {
        None
    }
}

/// What follows a complete head: its `Content-Length` body, the next head, or (a body
/// framed otherwise, or a head httparse cannot read, which actix will refuse) nothing
/// the guard follows.
fn body_after(head: &[u8]) -> Framing {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return Framing::Off;
    }
    let mut length = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Framing::Off;
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(n) => length = Some(n),
                None => return Framing::Off,
            }
        }
    }
    match length {
        Some(n) if n > 0 => Framing::Body(n),
        _ => Framing::head(),
    }
}

/// How much a guard reads from the socket at once.
const READ_CHUNK: usize = 16 * 1024;

/// A connection whose request heads are held to this module's limits.
pub struct HeadGuard<T> {
    inner: T,
    framing: Framing,
    /// Bytes actix may read, and how many of them it has.
    released: Vec<u8>,
    delivered: usize,
    /// Set once the socket ended or a head was refused: actix then reads the end.
    finished: bool,
    /// Where the socket's bytes land before the guard looks at them (allocated once per
    /// connection, not per read).
    scratch: Box<[u8]>,
}

impl<T> HeadGuard<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            framing: Framing::head(),
            released: Vec::new(),
            delivered: 0,
            finished: false,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.delivered < this.released.len() {
                let ready = &this.released[this.delivered..];
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                this.delivered += n;
                if this.delivered == this.released.len() {
                    this.released.clear();
                    this.delivered = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.finished {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let input = read.filled();
            if input.is_empty() {
                // The client is done: a partial head goes to actix, which knows what to
                // say about it.
                if let Framing::Head(bytes) = &mut this.framing {
                    this.released.append(bytes);
                }
                this.finished = true;
                continue;
            }
            this.framing.observe(input, &mut this.released);
            this.finished = this.framing.refused();
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What actix would read after the client sent `chunks`, and whether a head was
    /// refused.
    fn released(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut framing = Framing::head();
        let mut out = Vec::new();
        for chunk in chunks {
            framing.observe(chunk, &mut out);
        }
        (out, framing.refused())
    }

    #[test]
    fn ordinary_requests_pass_unchanged_however_they_are_split() {
        let request = b"POST /v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /v1/customers HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(released(&[request]), (request.to_vec(), false));
        let pieces: Vec<&[u8]> = request.chunks(3).collect();
        assert_eq!(released(&pieces), (request.to_vec(), false));
    }

    #[test]
    fn a_head_is_held_back_until_complete() {
        assert_eq!(released(&[b"GET / HTTP/1.1\r\nHo"]).0, b"");
        let (out, _) = released(&[b"GET / HTTP/1.1\r\nHo", b"st: x\r\n\r\n"]);
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn a_long_request_line_becomes_a_stand_in_even_in_pieces() {
        let request = format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        let pieces: Vec<&[u8]> = request.as_bytes().chunks(1000).collect();
        assert_eq!(released(&pieces), (Refusal::RequestLine.stand_in(), true));
    }

    #[test]
    fn a_request_line_of_exactly_the_limit_passes() {
        // The limit counts the bytes before the line feed, the carriage return included.
        let request = |visible: usize| {
            format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(visible - 14)
            )
        };
        let fits = request(MAX_REQUEST_LINE - 1);
        let (out, refused) = released(&[fits.as_bytes()]);
        assert!(!refused);
        assert_eq!(out.len(), fits.len());
        assert!(released(&[request(MAX_REQUEST_LINE).as_bytes()]).1);
    }

    #[test]
    fn a_large_head_becomes_a_stand_in() {
        let header = format!("X-Pad: {}\r\n", "p".repeat(1000));
        let request = format!("GET / HTTP/1.1\r\n{}\r\n", header.repeat(70));
        assert_eq!(
            released(&[request.as_bytes()]),
            (Refusal::Head.stand_in(), true)
        );
    }

    #[test]
    fn a_body_passes_and_the_next_head_is_watched() {
        let body = "{".repeat(MAX_REQUEST_HEAD * 2);
        let first = format!(
            "POST /v1/x HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let second = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        let mut expected = first.clone().into_bytes();
        assert_eq!(released(&[first.as_bytes()]), (expected.clone(), false));
        expected.extend(Refusal::RequestLine.stand_in());
        assert_eq!(
            released(&[first.as_bytes(), second.as_bytes(), b"more"]),
            (expected, true)
        );
    }

    #[test]
    fn a_chunked_body_turns_the_guard_off() {
        let first = "POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let rest = "a".repeat(MAX_REQUEST_HEAD * 2);
        let (out, refused) = released(&[first.as_bytes(), rest.as_bytes()]);
        assert_eq!(out.len(), first.len() + rest.len());
        assert!(!refused);
    }
}
