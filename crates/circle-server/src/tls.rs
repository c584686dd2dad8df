//! HTTPS and WSS served by Circle itself (rustls through tokio-rustls, the ring provider).
//!
//! The certificate and key are PEM files (`[tls] cert`, `key`). [`Certificate`] resolves every
//! handshake to the pair loaded last, so a renewal (certbot writing new files) takes effect without a
//! restart: the files' modification times are checked every `tls.watch_secs`, and `circle` reloads at
//! once on SIGHUP. A pair that does not load is logged and the one in use is kept.

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The acceptor every TLS listener uses.
pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

/// Why a certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    /// The key file holds no PEM private key.
    #[error("{0} holds no PEM private key")]
    NoKey(PathBuf),
    /// rustls refused the pair (an unsupported key, or a key that does not match the certificate).
    #[error("certificate {cert} and key {key} do not load: {source}")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

/// The crypto provider Circle uses for TLS.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let private =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey(key.to_owned()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|source| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// The certificate in use, swapped on reload.
#[derive(Debug)]
pub struct Certificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last loaded, to notice a renewal.
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl Certificate {
    /// Loads the pair; fails if it does not load (the server must not start without it).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let stamps = (modified(cert), modified(key));
        let pair = load_pair(cert, key)?;
        Ok(Self {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            current: RwLock::new(Arc::new(pair)),
            stamps: Mutex::new(stamps),
        })
    }

    /// Loads the files again; on failure the pair in use stays and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = (modified(&self.cert_path), modified(&self.key_path));
        let pair = load_pair(&self.cert_path, &self.key_path)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(pair);
        }
        if let Ok(mut s) = self.stamps.lock() {
            *s = stamps;
        }
        info!("TLS certificate loaded");
        Ok(())
    }

    /// Reloads if either file's modification time changed since the last load.
    fn reload_if_changed(&self) {
        let now = (modified(&self.cert_path), modified(&self.key_path));
        let changed = self.stamps.lock().map(|s| *s != now).unwrap_or(false);
        if changed && let Err(e) = self.reload() {
            warn!(error = %e, "TLS certificate changed but does not load; keeping the one in use");
            // Do not retry the same broken files every tick; a further change is tried again.
            if let Ok(mut s) = self.stamps.lock() {
                *s = now;
            }
        }
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A TLS acceptor that always serves the current pair (HTTP/1.1 only).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, rustls::Error> {
        Ok(TlsAcceptor::from(
            self.server_config(vec![b"http/1.1".to_vec()])?,
        ))
    }

    /// A rustls configuration that always serves the current pair, offering these ALPN protocols
    /// (none: any client, e.g. TURN over TLS).
    pub fn server_config(
        self: &Arc<Self>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// Checks the files every `every` until `stop` fires.
    pub fn spawn_watch(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            // The first look is one period after start (the files were just loaded); an
            // immediate first tick could pick up a renewal written since, racing SIGHUP's own reload.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => this.reload_if_changed(),
                }
            }
        });
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
