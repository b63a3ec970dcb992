//! Pingora's own floor on this machine, for reading bitrouter's benchmark figures (not part of
//! the product). `static` answers every request in `request_filter` with a fixed 818-byte body
//! (the server side alone); `proxy` forwards every request to one upstream with Pingora's stock
//! proxy loop and connection pool (what any Pingora proxy pays per request). Both use
//! bitrouter's listener settings.
//!
//! ```text
//! cargo build --release -p bitrouter-proxy --example pingora_floor
//! target/release/examples/pingora_floor proxy 127.0.0.1:18104 127.0.0.1:18101
//! ```
use async_trait::async_trait;
use bytes::Bytes;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora_core::listeners::ListenerConfig;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};

struct Floor {
    mode: String,
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if self.mode != "static" {
            return Ok(false);
        }
        while session.read_request_body().await?.is_some() {}
        let body = Bytes::from_static(&[b'x'; 818]);
        let mut resp = ResponseHeader::build(200, Some(2))?;
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", body.len().to_string())?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 || !matches!(args[1].as_str(), "static" | "proxy") {
        eprintln!("usage: pingora_floor static|proxy LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    }
    let conf = ServerConf {
        threads: 1,
        upstream_keepalive_pool_size: 256,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = http_proxy_service(
        &server.configuration,
        Floor {
            mode: args[1].clone(),
            upstream: args[3].clone(),
        },
    );
    // bitrouter's listener setting: no L4 read buffer in front of the HTTP/1 parser (Pingora's
    // default is 64 KiB per connection).
    svc.add_listener(
        ListenerConfig::tcp(args[2].as_str()).l4_buffer(bitrouter_proxy::server::l4_buffer()),
    );
    server.add_service(svc);
    server.run_forever();
}
