//! Throwaway TLS certificates, generated at run time with rcgen: a test CA, server and
//! client leaves it signs (valid or expired), and self-signed leaves. Keys are ECDSA
//! P-256; nothing is written to disk unless a test does it.
//!
//! ```
//! use wsstream_test_support::certs::Ca;
//!
//! let ca = Ca::new("wsstream test CA");
//! let server = ca.server(&["localhost", "127.0.0.1"]);
//! let acceptor: tokio_rustls::TlsAcceptor = server.acceptor();
//! let ca_pem = ca.cert_pem(); // what a client adds as a root
//! # let _ = (acceptor, ca_pem);
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority that signs test certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate and its private key.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
}

fn key_pair() -> KeyPair {
    KeyPair::generate().expect("generate an ECDSA P-256 key")
}

impl Ca {
    /// A new self-signed CA with common name `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = key_pair();
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Self {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM (what a client adds as a root).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid from 1975 to
    /// 4096.
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.sign(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for `names` that expired on 2001-01-01.
    pub fn expired_server(&self, names: &[&str]) -> Leaf {
        self.sign(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate with common name `name`.
    pub fn client(&self, name: &str) -> Leaf {
        self.sign(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("valid subject names");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = key_pair();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the certificate");
        Leaf::new(&cert, &key)
    }
}

impl Leaf {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> Self {
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_pkcs8: key.serialize_der(),
        }
    }

    /// A self-signed server certificate for `names` (not a CA: no client trusts it).
    pub fn self_signed(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).expect("self-sign the certificate");
        Self::new(&cert, &signing_key)
    }

    /// The private key, DER.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }

    /// The chain to present: this certificate alone (the CA is the trust anchor).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone()]
    }

    /// A rustls server configuration presenting this certificate (no client certificates,
    /// ALPN `http/1.1`; the aws-lc-rs provider).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(self.chain(), self.key_der())
            .expect("the generated key matches the certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A server-side acceptor presenting this certificate: any type built from a rustls
    /// server configuration (`wsstream::server::TlsAcceptor`, `tokio_rustls::TlsAcceptor`),
    /// see [`server_config`](Self::server_config).
    pub fn acceptor<A: From<Arc<ServerConfig>>>(&self) -> A {
        A::from(self.server_config())
    }
}
