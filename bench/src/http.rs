//! A bare HTTP/1.1 keep-alive connection per simulated client, on hyper's low-level client API.
//!
//! No pool and no retries: each client owns exactly one TCP connection, so "32 clients" means 32
//! concurrent requests at the server, and the herd can open every connection before it fires.

use crate::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub type Body = Full<Bytes>;

pub struct Conn {
    sender: SendRequest<Body>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are small and latency is what is measured: do not let Nagle hold them back.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // A failed connection shows up as an error on the next request.
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, request: Request<Body>) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

impl Conn {
    /// Sends one request and reads the whole answer, headers included.
    pub async fn send_with_headers(
        &mut self,
        request: Request<Body>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes)> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// Who a request claims to be (the local server's dev identity headers).
#[derive(Debug, Clone)]
pub struct Identity {
    user: HeaderValue,
    organizer: bool,
}

impl Identity {
    pub fn user(id: &str) -> Identity {
        Identity {
            user: HeaderValue::from_str(id).expect("user ids are plain ASCII"),
            organizer: false,
        }
    }

    pub fn organizer(id: &str) -> Identity {
        Identity {
            organizer: true,
            ..Identity::user(id)
        }
    }
}

pub fn get(path: &str, who: &Identity) -> Request<Body> {
    build(Method::GET, path, who, None)
}

pub fn delete(path: &str, who: &Identity) -> Request<Body> {
    build(Method::DELETE, path, who, None)
}

pub fn post_json(path: &str, who: &Identity, body: Vec<u8>) -> Request<Body> {
    build(Method::POST, path, who, Some(Bytes::from(body)))
}

fn build(method: Method, path: &str, who: &Identity, body: Option<Bytes>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        // HTTP/1.1 requires Host; the server does not look at it, so a constant will do.
        .header(HOST, HeaderValue::from_static("127.0.0.1"))
        .header("x-dev-user", who.user.clone());
    if who.organizer {
        builder = builder.header("x-dev-groups", HeaderValue::from_static("organizers"));
    }
    if body.is_some() {
        builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    builder
        .body(Full::new(body.unwrap_or_default()))
        .expect("method, path and headers are valid")
}
