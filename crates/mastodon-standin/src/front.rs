//! snac's connection habit: it closes every connection after one answer without saying
//! `Connection: close`, so a client that reuses the pooled connection gets a reset. actix
//! always says it when it closes, so for snac the server runs with keep-alive off on a
//! private port behind this front, which forwards bytes both ways, drops the
//! `connection:` line from each response head, and closes the client's side when the
//! server closes its own.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The longest response head looked at; anything longer is forwarded as it is.
const MAX_HEAD: usize = 64 * 1024;

/// Accepts on `listener` and forwards every connection to `inner`, until aborted.
pub async fn run(listener: TcpListener, inner: SocketAddr) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(inner).await {
                forward(client, server).await;
            }
        });
    }
}

async fn forward(client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let _ = relay_answer(&mut server_read, &mut client_write).await;
    // The server closed: so does the client's side, whatever the client still sends.
    let _ = client_write.shutdown().await;
    upstream.abort();
}

/// Copies the server's bytes to the client, without the `connection:` header line.
async fn relay_answer(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.write_all(&head).await;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let (h, rest) = head.split_at(end + 4);
            to.write_all(&strip_connection(h)).await?;
            to.write_all(rest).await?;
            break;
        }
        if head.len() > MAX_HEAD {
            to.write_all(&head).await?;
            break;
        }
    }
    tokio::io::copy(from, to).await.map(|_| ())
}

fn strip_connection(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|b| *b == b'\n') {
        let lower = line.to_ascii_lowercase();
        if !lower.starts_with(b"connection:") {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_connection_line_goes() {
        let head = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(
            super::strip_connection(head),
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".to_vec()
        );
    }
}
