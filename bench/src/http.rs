//! One bare HTTP/1.1 keep-alive connection per simulated client (hyper's low-level client): no
//! pool and no retries, so "32 clients" is 32 requests at the server, and the herd can open every
//! connection before it fires.

use crate::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub type Body = Full<Bytes>;

pub struct Conn(SendRequest<Body>);

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        // Latency is what is measured: Nagle must not hold small requests back.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // A failed connection shows up as an error on the next request.
        tokio::spawn(connection);
        Ok(Conn(sender))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, request: Request<Body>) -> Result<Response<Bytes>> {
        self.0.ready().await?;
        let (parts, body) = self.0.send_request(request).await?.into_parts();
        Ok(Response::from_parts(
            parts,
            body.collect().await?.to_bytes(),
        ))
    }
}

/// Who a request claims to be (the local server's dev identity headers): a user, maybe an
/// organizer.
#[derive(Debug, Clone)]
pub struct Identity(HeaderValue, bool);

impl Identity {
    pub fn user(id: &str) -> Identity {
        Identity(HeaderValue::from_str(id).expect("plain ASCII"), false)
    }

    pub fn organizer(id: &str) -> Identity {
        Identity(HeaderValue::from_str(id).expect("plain ASCII"), true)
    }
}

pub fn get(path: &str, who: &Identity) -> Request<Body> {
    build(Method::GET, path, who, None)
}

pub fn post(path: &str, who: &Identity, body: &serde_json::Value) -> Request<Body> {
    build(Method::POST, path, who, Some(Bytes::from(body.to_string())))
}

/// `request` with one more header.
pub fn with(mut request: Request<Body>, name: HeaderName, value: HeaderValue) -> Request<Body> {
    request.headers_mut().insert(name, value);
    request
}

fn build(method: Method, path: &str, who: &Identity, body: Option<Bytes>) -> Request<Body> {
    // HTTP/1.1 requires Host; the server does not look at it.
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, HeaderValue::from_static("127.0.0.1"))
        .header("x-dev-user", who.0.clone());
    if who.1 {
        builder = builder.header("x-dev-groups", HeaderValue::from_static("organizers"));
    }
    if body.is_some() {
        builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    builder
        .body(Full::new(body.unwrap_or_default()))
        .expect("a valid request")
}
