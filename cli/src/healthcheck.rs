//! `sqlrft healthcheck`: the container health check (distroless images have no curl) and the
//! compose stack's "it is up" line. Plain HTTP/1.0 over std: it runs every few seconds in every
//! container, so it starts no runtime and no telemetry.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

/// Exit 0 when every URL answers HTTP 200, else 1 (Docker HEALTHCHECK, compose, scripts).
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// `http://` URLs to GET [default: http://127.0.0.1:$PORT/healthz, PORT defaulting to 8080].
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    /// Keep trying each URL for up to this long before failing.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    wait: f64,
    /// Print this line once every URL is healthy.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
}

pub fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let urls = if args.urls.is_empty() {
        let port = std::env::var("PORT")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "8080".into());
        vec![format!("http://127.0.0.1:{port}/healthz")]
    } else {
        args.urls
    };
    let deadline = Instant::now() + Duration::from_secs_f64(args.wait.max(0.0));
    for url in &urls {
        loop {
            match get_status(url) {
                Ok(200) => break,
                Ok(status) if Instant::now() >= deadline => {
                    bail!("{url} answered HTTP {status}, not 200")
                }
                Err(err) if Instant::now() >= deadline => return Err(err),
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
    if let Some(message) = args.message {
        println!("{message}");
    }
    Ok(())
}

/// GETs `url` and returns the status code.
fn get_status(url: &str) -> anyhow::Result<u16> {
    let rest = url.strip_prefix("http://").with_context(|| {
        format!("`{url}` is not an http:// URL; pass one like http://127.0.0.1:8080/healthz")
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let timeout = Duration::from_secs(3);
    let socket = address
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{authority}` in {url}"))?
        .next()
        .with_context(|| format!("`{authority}` in {url} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, timeout)
        .with_context(|| format!("nothing answers at {url}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: `write!` on a raw socket sends each formatted piece as its own segment.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = [0u8; 64];
    let read = stream
        .read(&mut head)
        .with_context(|| format!("no reply from {url}"))?;
    // "HTTP/1.1 200 OK": the code is the second word of the status line.
    std::str::from_utf8(&head[..read])
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{url} did not answer HTTP"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Answers one connection with `status_line` on a real loopback socket.
    fn one_reply(status_line: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // A request may arrive in several segments: read up to the end of its head.
            let mut request = Vec::new();
            let mut chunk = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let read = stream.read(&mut chunk).unwrap();
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..read]);
            }
            let request = String::from_utf8_lossy(&request).to_string();
            let status = if request.starts_with("GET /healthz HTTP/1.0\r\n") {
                status_line
            } else {
                "HTTP/1.1 400 Bad Request"
            };
            write!(stream, "{status}\r\ncontent-length: 0\r\n\r\n").unwrap();
        });
        url
    }

    #[test]
    fn reads_the_status_code() {
        assert_eq!(get_status(&one_reply("HTTP/1.1 200 OK")).unwrap(), 200);
        assert_eq!(
            get_status(&one_reply("HTTP/1.1 503 Service Unavailable")).unwrap(),
            503
        );
    }

    #[test]
    fn a_closed_port_and_a_bad_url_are_errors_that_say_what() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/healthz", listener.local_addr().unwrap())
        };
        let err = get_status(&closed).unwrap_err().to_string();
        assert!(err.contains("nothing answers"), "{err}");
        let err = get_status("https://x/healthz").unwrap_err().to_string();
        assert!(err.contains("not an http:// URL"), "{err}");
    }
}
