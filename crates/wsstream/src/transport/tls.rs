//! TLS for `wss://` (client) and for servers, on rustls with the crypto provider chosen
//! explicitly by the crate features: aws-lc-rs (`rustls-aws-lc-rs`, the default: the
//! post-quantum hybrid X25519MLKEM768 key exchange first, then X25519, as browsers offer)
//! or *ring* (`rustls-ring`). Nothing depends on a process-wide default provider, so
//! there is no "no process-level CryptoProvider available" panic whatever else is linked
//! in. With neither provider feature (`tls` alone), the provider the application installed
//! with `CryptoProvider::install_default` is used, and connecting fails with a clear error
//! when there is none.

use std::io;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use url::Url;

use super::AsyncIo;

/// The ALPN protocol of a WebSocket opening handshake (RFC 6455 runs over HTTP/1.1).
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The ALPN protocol of HTTP/2 over TLS (RFC 9113 §3.2).
#[cfg(feature = "http2")]
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// The crypto provider of every configuration built here: aws-lc-rs when its feature is
/// on, else *ring* when its feature is on, else the process default.
pub(crate) fn provider() -> io::Result<Arc<CryptoProvider>> {
    #[cfg(any(feature = "rustls-aws-lc-rs", feature = "rustls-ring"))]
    {
        static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
        #[cfg(feature = "rustls-aws-lc-rs")]
        let make = rustls::crypto::aws_lc_rs::default_provider;
        #[cfg(not(feature = "rustls-aws-lc-rs"))]
        let make = rustls::crypto::ring::default_provider;
        Ok(PROVIDER.get_or_init(|| Arc::new(make())).clone())
    }
    #[cfg(not(any(feature = "rustls-aws-lc-rs", feature = "rustls-ring")))]
    {
        CryptoProvider::get_default().cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "no rustls crypto provider: enable wsstream's `rustls-aws-lc-rs` or \
                 `rustls-ring` feature, or install one with CryptoProvider::install_default",
            )
        })
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Every `CERTIFICATE` block of `pem`, in order; an error if there is none.
pub(crate) fn certs_from_pem(pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no CERTIFICATE block in the PEM input",
        ));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of `pem`.
pub(crate) fn key_from_pem(pem: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Which root certificates verify a server's certificate.
///
/// Certificates added with [`TlsOptions::add_root`] / [`TlsOptions::add_root_pem`] are
/// trusted in addition, whichever variant is chosen.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Roots {
    /// The operating system's verifier and trust store, through
    /// `rustls-platform-verifier` (the default): what a browser on the same machine
    /// trusts. On Linux this reads the system's CA bundle once per [`TlsOptions`] value.
    #[default]
    Platform,
    /// Mozilla's root program, compiled in (the `webpki-roots` crate): the same roots on
    /// every machine, independent of the system. Needs the `webpki-roots` feature.
    #[cfg(feature = "webpki-roots")]
    WebPki,
    /// Exactly these roots (e.g. a private CA), nothing from the system.
    Custom(Vec<CertificateDer<'static>>),
}

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Platform => f.write_str("Platform"),
            #[cfg(feature = "webpki-roots")]
            Self::WebPki => f.write_str("WebPki"),
            Self::Custom(certs) => write!(f, "Custom({} certificates)", certs.len()),
        }
    }
}

/// A client certificate chain and its private key.
struct ClientAuth {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// TLS settings of `wss://` connections: the field
/// [`tls`](crate::WebSocketStreamOptions::tls) of
/// [`WebSocketStreamOptions`](crate::WebSocketStreamOptions).
///
/// The default verifies the server's certificate with the platform verifier
/// ([`Roots::Platform`]) against the URL's host name (sent as SNI; an IP-literal host
/// is checked against the certificate's IP addresses and sends no SNI), offers ALPN
/// `http/1.1` (with the `http2` feature and `HttpVersionPreference::Auto` or
/// `Http2Only`, `h2` and `http/1.1`), and presents no client certificate. Certificate verification cannot be
/// turned off; to trust a private CA, add its certificate:
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use wsstream::{TlsOptions, WebSocketStreamOptions};
///
/// let mut tls = TlsOptions::default();
/// tls.add_root_pem(&std::fs::read("ca.pem")?)?;
/// let options = WebSocketStreamOptions::default().tls(tls);
/// # let _ = options; Ok(()) }
/// ```
///
/// The rustls [`ClientConfig`] is built on first use and then shared by every
/// connection made with this value or a clone of it (building the platform verifier
/// reads the system's trust store, so reuse one `TlsOptions` for many connections).
/// Changing a setting afterwards builds a new one.
#[derive(Clone, Default)]
pub struct TlsOptions {
    roots: Roots,
    extra_roots: Vec<CertificateDer<'static>>,
    client_auth: Option<Arc<ClientAuth>>,
    custom: Option<Arc<ClientConfig>>,
    built: Arc<OnceLock<Arc<ClientConfig>>>,
    /// The built configuration with ALPN `h2` and `http/1.1` (WebSockets over HTTP/2).
    #[cfg(feature = "http2")]
    built_h2: Arc<OnceLock<Arc<ClientConfig>>>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("roots", &self.roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("client_auth", &self.client_auth.is_some())
            .field("custom_client_config", &self.custom.is_some())
            .finish()
    }
}

impl TlsOptions {
    /// The defaults: platform verifier, no extra roots, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options that verify with `roots`.
    pub fn with_roots(roots: Roots) -> Self {
        Self {
            roots,
            ..Self::default()
        }
    }

    /// Options that use `config` as it is: its verifier, roots, client certificate and
    /// ALPN list (set `alpn_protocols` to `[b"http/1.1"]` yourself if the server needs
    /// ALPN). Every other setting of this value is ignored. With the `http2` feature,
    /// WebSockets over HTTP/2 are tried only if this list offers `h2` (see
    /// `HttpVersionPreference::Auto`).
    pub fn with_client_config(config: Arc<ClientConfig>) -> Self {
        Self {
            custom: Some(config),
            ..Self::default()
        }
    }

    /// The root certificates in use.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// Verifies with `roots` from now on.
    pub fn set_roots(&mut self, roots: Roots) {
        self.roots = roots;
        self.changed();
    }

    /// Trusts `cert` as a root in addition to [`roots`](Self::roots).
    pub fn add_root(&mut self, cert: CertificateDer<'static>) {
        self.extra_roots.push(cert);
        self.changed();
    }

    /// Trusts every certificate of a PEM file (`-----BEGIN CERTIFICATE-----` blocks) as a
    /// root in addition to [`roots`](Self::roots). Fails with
    /// [`InvalidData`](io::ErrorKind::InvalidData) if the input holds no certificate or a
    /// malformed one; nothing is added then.
    pub fn add_root_pem(&mut self, pem: &[u8]) -> io::Result<()> {
        let certs = certs_from_pem(pem)?;
        self.extra_roots.extend(certs);
        self.changed();
        Ok(())
    }

    /// Presents `chain` (the client's certificate first, then intermediates) and proves
    /// possession of `key` when the server asks for a client certificate.
    pub fn set_client_auth(
        &mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) {
        self.client_auth = Some(Arc::new(ClientAuth { chain, key }));
        self.changed();
    }

    /// [`set_client_auth`](Self::set_client_auth) from PEM: every certificate of
    /// `cert_chain_pem`, and the first private key (PKCS#8, PKCS#1 or SEC1) of `key_pem`
    /// (both may be the same file).
    pub fn set_client_auth_pem(&mut self, cert_chain_pem: &[u8], key_pem: &[u8]) -> io::Result<()> {
        let chain = certs_from_pem(cert_chain_pem)?;
        let key = key_from_pem(key_pem)?;
        self.set_client_auth(chain, key);
        Ok(())
    }

    /// Uses `config` as it is from now on; see [`with_client_config`](Self::with_client_config).
    pub fn set_client_config(&mut self, config: Arc<ClientConfig>) {
        self.custom = Some(config);
        self.changed();
    }

    /// The rustls configuration connections use: the one given to
    /// [`set_client_config`](Self::set_client_config), or one built from these options
    /// (once; clones share it). Fails if the platform's trust store holds no usable
    /// certificate and no extra root was added, or if a root or the client key is
    /// invalid.
    pub fn client_config(&self) -> io::Result<Arc<ClientConfig>> {
        if let Some(config) = &self.custom {
            return Ok(config.clone());
        }
        if let Some(config) = self.built.get() {
            return Ok(config.clone());
        }
        let config = Arc::new(self.build()?);
        // A concurrent first use may have won the race; either value is equivalent.
        Ok(self.built.get_or_init(|| config).clone())
    }

    fn changed(&mut self) {
        self.built = Arc::default();
        #[cfg(feature = "http2")]
        {
            self.built_h2 = Arc::default();
        }
    }

    /// The configuration of an HTTP/2 attempt: a configuration of the user's own as it
    /// is, else the built one with ALPN `h2` and `http/1.1` (RFC 9113 §3.2).
    #[cfg(feature = "http2")]
    pub(crate) fn client_config_h2(&self) -> io::Result<Arc<ClientConfig>> {
        if let Some(config) = &self.custom {
            return Ok(config.clone());
        }
        if let Some(config) = self.built_h2.get() {
            return Ok(config.clone());
        }
        let mut config = (*self.client_config()?).clone();
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        let config = Arc::new(config);
        Ok(self.built_h2.get_or_init(|| config).clone())
    }

    /// The configuration of an HTTP/1.1 attempt after HTTP/2 failed: the usual one, but a
    /// configuration of the user's own that offers `h2` is copied with ALPN `http/1.1`
    /// alone, so that the server cannot pick HTTP/2 again.
    #[cfg(feature = "http2")]
    pub(crate) fn client_config_http11(&self) -> io::Result<Arc<ClientConfig>> {
        match &self.custom {
            Some(config) if config.alpn_protocols.iter().any(|p| p == ALPN_H2) => {
                let mut config = (**config).clone();
                config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
                Ok(Arc::new(config))
            }
            _ => self.client_config(),
        }
    }

    /// What tells connections made with these options apart, for sharing an HTTP/2
    /// connection: the roots, extra roots and client certificate (by content, so that
    /// equal options made separately share), or the identity of a configuration of the
    /// user's own.
    #[cfg(feature = "http2")]
    pub(crate) fn identity(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        match &self.custom {
            Some(config) => {
                0u8.hash(&mut hasher);
                (Arc::as_ptr(config) as usize).hash(&mut hasher);
            }
            None => {
                1u8.hash(&mut hasher);
                match &self.roots {
                    Roots::Platform => 0u8.hash(&mut hasher),
                    #[cfg(feature = "webpki-roots")]
                    Roots::WebPki => 1u8.hash(&mut hasher),
                    Roots::Custom(certs) => {
                        2u8.hash(&mut hasher);
                        for cert in certs {
                            cert.as_ref().hash(&mut hasher);
                        }
                    }
                }
                for cert in &self.extra_roots {
                    cert.as_ref().hash(&mut hasher);
                }
                if let Some(auth) = &self.client_auth {
                    for cert in &auth.chain {
                        cert.as_ref().hash(&mut hasher);
                    }
                    auth.key.secret_der().hash(&mut hasher);
                }
            }
        }
        hasher.finish()
    }

    fn build(&self) -> io::Result<ClientConfig> {
        let provider = provider()?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?;
        let builder = match &self.roots {
            Roots::Platform => {
                let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
                    self.extra_roots.iter().cloned(),
                    provider,
                )
                .map_err(tls_error)?;
                // The platform verifier is a complete verifier, not a way around one.
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
            }
            #[cfg(feature = "webpki-roots")]
            Roots::WebPki => {
                let mut store = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                self.add_extra_roots(&mut store)?;
                builder.with_root_certificates(store)
            }
            Roots::Custom(certs) => {
                let mut store = RootCertStore::empty();
                for cert in certs {
                    store.add(cert.clone()).map_err(tls_error)?;
                }
                self.add_extra_roots(&mut store)?;
                builder.with_root_certificates(store)
            }
        };
        let mut config = match &self.client_auth {
            Some(auth) => builder
                .with_client_auth_cert(auth.chain.clone(), auth.key.clone_key())
                .map_err(tls_error)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(config)
    }

    fn add_extra_roots(&self, store: &mut RootCertStore) -> io::Result<()> {
        for cert in &self.extra_roots {
            store.add(cert.clone()).map_err(tls_error)?;
        }
        Ok(())
    }
}

/// The name the server's certificate must match: the URL's host. A domain is also sent
/// as SNI; an IP literal is matched against the certificate's IP addresses and sends no
/// SNI (RFC 6066 §3 allows only host names there).
fn server_name(url: &Url) -> io::Result<ServerName<'static>> {
    match url.host() {
        Some(url::Host::Domain(domain)) => ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
        Some(url::Host::Ipv4(ip)) => Ok(ServerName::from(std::net::IpAddr::V4(ip))),
        Some(url::Host::Ipv6(ip)) => Ok(ServerName::from(std::net::IpAddr::V6(ip))),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "URL without host",
        )),
    }
}

/// Runs the client side of the TLS handshake over `io` for `url`'s host.
pub(crate) async fn connect<S: AsyncIo>(
    io: S,
    url: &Url,
    options: &TlsOptions,
) -> io::Result<tokio_rustls::client::TlsStream<S>> {
    let config = options.client_config()?;
    let name = server_name(url)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
}

/// Runs the client side of the TLS handshake over `io` for `url`'s host with `config`.
#[cfg(feature = "http2")]
pub(crate) async fn connect_with<S: AsyncIo>(
    io: S,
    url: &Url,
    config: Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<S>> {
    let name = server_name(url)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
}

/// The server side of TLS: a rustls [`ServerConfig`] to accept TLS connections with,
/// before reading the WebSocket upgrade request over them.
///
/// Build one per listener and clone it for each connection (clones share the
/// configuration and its session cache):
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use wsstream::server::{self, ServerOptions, TlsAcceptor};
///
/// let tls = TlsAcceptor::from_pem(&std::fs::read("cert.pem")?, &std::fs::read("key.pem")?)?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let (tcp, _) = listener.accept().await?;
/// let upgrade = server::read_request_tls(tcp, &tls).await?;
/// let wss = upgrade.accept(None, ServerOptions::default()).await?;
/// # let _ = wss; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    /// [`TlsAcceptor::new`].
    fn from(config: Arc<ServerConfig>) -> Self {
        Self::new(config)
    }
}

impl TlsAcceptor {
    /// Accepts with `config` as it is (its certificates, client-certificate policy and
    /// ALPN list). Build it with an explicit provider, e.g.
    /// `ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// An acceptor presenting the certificate chain of `cert_chain_pem` (the server's
    /// certificate first, then intermediates) with the first private key (PKCS#8, PKCS#1
    /// or SEC1) of `key_pem`; TLS 1.2 and 1.3 with the provider the features choose
    /// (aws-lc-rs by default: post-quantum key exchange first), no client
    /// certificates, ALPN `http/1.1`. Fails if either input holds nothing usable or the key
    /// does not match the certificate.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> io::Result<Self> {
        let chain = certs_from_pem(cert_chain_pem)?;
        let key = key_from_pem(key_pem)?;
        let mut config = ServerConfig::builder_with_provider(provider()?)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_error)?;
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Self::new(Arc::new(config)))
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the server side of the TLS handshake over `io`. The returned stream gives
    /// access to the negotiated session (SNI, ALPN, the client's certificates) through
    /// `get_ref().1`.
    pub async fn accept<S: AsyncIo>(
        &self,
        io: S,
    ) -> io::Result<tokio_rustls::server::TlsStream<S>> {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
            .accept(io)
            .await
    }
}

#[cfg(all(test, feature = "http2", feature = "rustls-aws-lc-rs"))]
mod http2_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn root(name: &str) -> CertificateDer<'static> {
        wsstream_test_support::certs::Ca::new(name).cert_der()
    }

    #[test]
    fn equal_options_made_apart_share_an_identity_and_different_ones_do_not() {
        let ca = root("one");
        let mut a = TlsOptions::with_roots(Roots::Custom(vec![ca.clone()]));
        let b = TlsOptions::with_roots(Roots::Custom(vec![ca.clone()]));
        assert_eq!(a.identity(), b.identity());
        a.add_root(root("two"));
        assert_ne!(a.identity(), b.identity());
        assert_ne!(TlsOptions::default().identity(), b.identity());
        // A configuration of the user's own is told apart by identity, not content.
        let config = b.client_config().unwrap();
        let one = TlsOptions::with_client_config(config.clone());
        let same = TlsOptions::with_client_config(config.clone());
        let copy = TlsOptions::with_client_config(Arc::new((*config).clone()));
        assert_eq!(one.identity(), same.identity());
        assert_ne!(one.identity(), copy.identity());
    }

    #[test]
    fn the_alpn_lists_of_http2_and_of_the_fallback() {
        let options = TlsOptions::with_roots(Roots::Custom(vec![root("ca")]));
        assert_eq!(
            options.client_config().unwrap().alpn_protocols,
            [b"http/1.1"]
        );
        let h2 = options.client_config_h2().unwrap();
        assert_eq!(h2.alpn_protocols, [&b"h2"[..], b"http/1.1"]);
        assert!(Arc::ptr_eq(&h2, &options.client_config_h2().unwrap()));
        assert_eq!(
            options.client_config_http11().unwrap().alpn_protocols,
            [b"http/1.1"]
        );
        // A configuration of the user's own: as it is for HTTP/2, without h2 for the
        // fallback.
        let own = Arc::new((*h2).clone());
        let options = TlsOptions::with_client_config(own.clone());
        assert!(Arc::ptr_eq(&options.client_config_h2().unwrap(), &own));
        assert_eq!(
            options.client_config_http11().unwrap().alpn_protocols,
            [b"http/1.1"]
        );
    }
}
