//! The webhook's HTTPS server: rustls with the swappable serving certificate,
//! HTTP/1.1, one task a connection.

use std::net::SocketAddr;
use std::sync::Arc;

use steward_runtime::Shutdown;

use super::{Ctx, PATH, review};
use crate::certs::Resolver;
use crate::error::{Error, Result};

/// Serves the webhook over TLS on `listener` until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    resolver: Arc<Resolver>,
    ctx: Ctx,
    shutdown: Shutdown,
) {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_no_client_auth().with_cert_resolver(resolver));
    let Ok(tls) = tls.as_mut() else {
        tracing::error!("no TLS protocol version available; webhook not served");
        return;
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.clone()));
    let app = axum::Router::new()
        .route(PATH, axum::routing::post(review))
        .with_state(ctx);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => { tracing::warn!(%error, "accepting a webhook connection failed"); continue; }
            },
            () = shutdown.signaled() => return,
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(t) => t,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(tls);
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%peer, %error, "webhook connection ended with an error");
            }
        });
    }
}

/// Binds the webhook address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
