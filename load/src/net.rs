//! Plain networking: the server's base URL, TCP connections from spread loopback source
//! addresses, and the few HTTP/1.1 requests the harness makes (`/healthz`, `/api/login`),
//! written by hand to avoid an HTTP client dependency.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Distinct loopback source addresses used in rotation (127.0.1.1 to 127.0.1.250), so many
/// connections do not run out of ephemeral ports on one address.
pub const SOURCE_POOL: usize = 250;

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port` as given, for the `Host` header and websocket URLs.
    pub authority: String,
    /// The resolved address.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Parses `http://host:port` (a trailing slash is allowed) and resolves it.
    pub async fn resolve(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("the server URL must start with http:// (no TLS support), not `{url}`")
        })?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(format!(
                "the server URL must be http://host:port with no path, not `{url}`"
            ));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{with_port} resolves to no address"))?;
        Ok(Endpoint {
            authority: authority.to_string(),
            addr,
        })
    }

    /// The websocket URL of a path such as `/ws/visitor`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.authority)
    }

    /// Whether connections can come from spread loopback addresses.
    pub fn spreads_sources(&self) -> bool {
        matches!(self.addr.ip(), IpAddr::V4(ip) if ip.is_loopback())
    }

    /// Opens a TCP connection. With `source` set and a loopback server, the socket is bound
    /// to that loopback source address first. `recv_buffer` shrinks the receive buffer (it
    /// also turns off the kernel's autotuning), for clients meant to push back.
    pub async fn tcp(
        &self,
        source: Option<usize>,
        recv_buffer: Option<u32>,
    ) -> std::io::Result<TcpStream> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let (Some(index), true) = (source, self.spreads_sources()) {
            socket.bind(SocketAddr::new(IpAddr::V4(source_ip(index)), 0))?;
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// The loopback source address for connection number `index`.
pub fn source_ip(index: usize) -> Ipv4Addr {
    let k = index % SOURCE_POOL;
    Ipv4Addr::new(127, 0, 1 + (k / 250) as u8, 1 + (k % 250) as u8)
}

/// An HTTP response: status and body.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole response.
pub async fn http(
    ep: &Endpoint,
    method: &str,
    path: &str,
    json_body: Option<&str>,
) -> Result<Response, String> {
    http_as(ep, method, path, json_body, None).await
}

/// [`http`] with an operator's bearer token.
pub async fn http_as(
    ep: &Endpoint,
    method: &str,
    path: &str,
    json_body: Option<&str>,
    token: Option<&str>,
) -> Result<Response, String> {
    let fut = async {
        let mut stream = ep
            .tcp(None, None)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", ep.addr))?;
        let body = json_body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            ep.authority,
            body.len()
        );
        if json_body.is_some() {
            req.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("cannot send {method} {path}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("cannot read the answer to {method} {path}: {e}"))?;
        parse_response(&raw).ok_or_else(|| format!("malformed HTTP answer to {method} {path}"))
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| format!("{method} {path}: no answer within 30 s"))?
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &raw[split + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (401, "abcde"));
    }

    #[test]
    fn source_addresses_rotate_over_loopback() {
        assert_eq!(source_ip(0), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(source_ip(249), Ipv4Addr::new(127, 0, 1, 250));
        assert_eq!(source_ip(250), source_ip(0));
    }
}
