//! The permessage-deflate handshake (RFC 7692 §5, §7.1): the client's offer, the server's
//! choice among offers, and the client's check of the response.

use std::fmt::Write as _;

use super::{DeflateConfig, DeflateParams, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::handshake::ExtensionOffer;

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// Why a server's permessage-deflate response is unacceptable: RFC 7692 §7 says the client
/// MUST fail the WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateNegotiationError {
    /// The element is not `permessage-deflate`.
    NotDeflate(String),
    /// A parameter RFC 7692 does not define.
    UnknownParameter(String),
    /// A parameter given twice.
    DuplicateParameter(String),
    /// A parameter with a value it may not have: a value on a `*_no_context_takeover`, a
    /// window that is missing, not a decimal without leading zeros, or outside 8 to 15.
    InvalidValue {
        /// The parameter.
        param: String,
        /// Its value (`None`: the value is missing).
        value: Option<String>,
    },
    /// A window larger than the one we asked for or announced.
    WindowTooLarge {
        /// The parameter.
        param: &'static str,
        /// The largest value we accept.
        max: u8,
        /// The value in the response.
        got: u8,
    },
    /// A parameter we asked for (`server_no_context_takeover`, `server_max_window_bits`) is
    /// missing from the response: the server did not agree to it.
    NotAccepted(&'static str),
}

impl std::fmt::Display for DeflateNegotiationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotDeflate(name) => write!(f, "extension {name:?} is not {EXTENSION_NAME}"),
            Self::UnknownParameter(p) => write!(f, "unknown {EXTENSION_NAME} parameter {p:?}"),
            Self::DuplicateParameter(p) => write!(f, "duplicate {EXTENSION_NAME} parameter {p:?}"),
            Self::InvalidValue {
                param,
                value: Some(value),
            } => write!(f, "invalid value {value:?} for {param}"),
            Self::InvalidValue { param, value: None } => write!(f, "{param} needs a value"),
            Self::WindowTooLarge { param, max, got } => {
                write!(f, "{param}={got} exceeds the {max} we allow")
            }
            Self::NotAccepted(param) => write!(f, "the server did not accept {param}"),
        }
    }
}

impl std::error::Error for DeflateNegotiationError {}

/// The four parameters of one element, after the checks RFC 7692 §7 applies to offers and
/// responses alike.
#[derive(Debug, Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window value: "a decimal integer value without leading zeroes between 8 to 15,
/// inclusive" (RFC 7692 §7.1.2.1, §7.1.2.2). A quoted-string value was already unquoted
/// by the header parser, and is judged the same way (RFC 7692 §7.1).
fn window_bits(value: &str) -> Option<u8> {
    let bits = match value {
        "8" => 8,
        "9" => 9,
        "10" => 10,
        "11" => 11,
        "12" => 12,
        "13" => 13,
        "14" => 14,
        "15" => 15,
        _ => return None,
    };
    debug_assert!((MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits));
    Some(bits)
}

/// RFC 7692 §7: no parameter outside the four defined, none twice, every value valid.
fn parse(element: &ExtensionOffer) -> Result<Parsed, DeflateNegotiationError> {
    let mut out = Parsed::default();
    let mut seen = [false; 4];
    for (name, value) in &element.params {
        let index = match name.as_str() {
            SERVER_NO_CONTEXT_TAKEOVER => 0,
            CLIENT_NO_CONTEXT_TAKEOVER => 1,
            SERVER_MAX_WINDOW_BITS => 2,
            CLIENT_MAX_WINDOW_BITS => 3,
            _ => return Err(DeflateNegotiationError::UnknownParameter(name.clone())),
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(DeflateNegotiationError::DuplicateParameter(name.clone()));
        }
        let invalid = || DeflateNegotiationError::InvalidValue {
            param: name.clone(),
            value: value.clone(),
        };
        match index {
            // §7.1.1.1, §7.1.1.2: these parameters have no value.
            0 | 1 if value.is_some() => return Err(invalid()),
            0 => out.server_no_context_takeover = true,
            1 => out.client_no_context_takeover = true,
            // §7.1.2.1: server_max_window_bits always has a value.
            2 => {
                out.server_max_window_bits =
                    Some(value.as_deref().and_then(window_bits).ok_or_else(invalid)?);
            }
            // §7.1.2.2: client_max_window_bits may come without a value (in an offer).
            _ => {
                out.client_max_window_bits = Some(match value.as_deref() {
                    None => None,
                    Some(v) => Some(window_bits(v).ok_or_else(invalid)?),
                });
            }
        }
    }
    Ok(out)
}

impl DeflateConfig {
    /// The client's `Sec-WebSocket-Extensions` offer, e.g.
    /// `permessage-deflate; client_max_window_bits` for the default config.
    ///
    /// `client_max_window_bits` is always offered (RFC 7692 §7.1.2.2: it tells the server we
    /// can limit our window), with our limit as its value when we have one.
    pub fn client_offer(&self) -> String {
        let mut out = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            let _ = write!(out, "; {SERVER_NO_CONTEXT_TAKEOVER}");
        }
        if self.client_no_context_takeover {
            let _ = write!(out, "; {CLIENT_NO_CONTEXT_TAKEOVER}");
        }
        if let Some(bits) = self.server_max_window_bits {
            let _ = write!(out, "; {SERVER_MAX_WINDOW_BITS}={bits}");
        }
        let _ = match self.client_max_window_bits {
            Some(bits) => write!(out, "; {CLIENT_MAX_WINDOW_BITS}={bits}"),
            None => write!(out, "; {CLIENT_MAX_WINDOW_BITS}"),
        };
        out
    }

    /// Client: checks the server's response element against our [`client_offer`] and
    /// returns the agreed parameters.
    ///
    /// RFC 7692 §7 makes the client fail the connection on a response with an unknown
    /// parameter, a duplicate, an invalid value, or a configuration it does not support:
    /// here `server_max_window_bits` above what we asked for, or missing when we asked for
    /// one (§7.1.2.1: the server accepts by including it), `server_no_context_takeover`
    /// missing when we asked for it (§7.1.1.1), `client_max_window_bits` without a value or
    /// above the value we offered (§7.1.2.2). The server may add `server_no_context_takeover`,
    /// `client_no_context_takeover`, `server_max_window_bits` and `client_max_window_bits`
    /// (we always offer the latter) on its own.
    ///
    /// `client_no_context_takeover` applies if either side said so: we offered it, so we
    /// honour it even when the response does not repeat it.
    ///
    /// [`client_offer`]: Self::client_offer
    pub fn accept_response(
        &self,
        response: &ExtensionOffer,
    ) -> Result<DeflateParams, DeflateNegotiationError> {
        if response.name != EXTENSION_NAME {
            return Err(DeflateNegotiationError::NotDeflate(response.name.clone()));
        }
        let p = parse(response)?;
        let client_max_window_bits = match p.client_max_window_bits {
            None => self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            // §7.1.2.2: in a response the parameter carries a value.
            Some(None) => {
                return Err(DeflateNegotiationError::InvalidValue {
                    param: CLIENT_MAX_WINDOW_BITS.to_owned(),
                    value: None,
                });
            }
            Some(Some(bits)) => match self.client_max_window_bits {
                Some(max) if bits > max => {
                    return Err(DeflateNegotiationError::WindowTooLarge {
                        param: CLIENT_MAX_WINDOW_BITS,
                        max,
                        got: bits,
                    });
                }
                _ => bits,
            },
        };
        let server_max_window_bits = match (self.server_max_window_bits, p.server_max_window_bits) {
            (Some(_), None) => {
                return Err(DeflateNegotiationError::NotAccepted(SERVER_MAX_WINDOW_BITS));
            }
            (Some(max), Some(bits)) if bits > max => {
                return Err(DeflateNegotiationError::WindowTooLarge {
                    param: SERVER_MAX_WINDOW_BITS,
                    max,
                    got: bits,
                });
            }
            (_, Some(bits)) => bits,
            (None, None) => MAX_WINDOW_BITS,
        };
        if self.server_no_context_takeover && !p.server_no_context_takeover {
            return Err(DeflateNegotiationError::NotAccepted(
                SERVER_NO_CONTEXT_TAKEOVER,
            ));
        }
        Ok(DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            // §7.1.1.2: once the server says client_no_context_takeover, the client MUST
            // NOT take its context over.
            client_no_context_takeover: p.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        })
    }

    /// Server: accepts the first acceptable `permessage-deflate` offer among the client's
    /// extension elements (in the client's order of preference) and returns the agreed
    /// parameters with the response element to send. `None` when there is no acceptable
    /// offer (or this config is invalid): the server then answers without the extension.
    ///
    /// RFC 7692 §7 makes the server decline (skip) an offer with an unknown parameter, a
    /// duplicate or an invalid value; elements of other extensions are ignored. An accepted
    /// offer is answered as follows:
    ///
    /// * `server_no_context_takeover` if the client asked for it or our policy says so
    ///   (§7.1.1.1);
    /// * `client_no_context_takeover` if the client offered it (so we may reset our
    ///   decompressor) or our policy requires it (§7.1.1.2);
    /// * `server_max_window_bits` with the smaller of the client's value and ours, if the
    ///   client gave one (§7.1.2.1: the server accepts by including it) or we have a limit;
    /// * `client_max_window_bits` only if the client offered it (§7.1.2.2: otherwise it MUST
    ///   NOT appear), with the smaller of the client's value and our limit, when there is one.
    pub fn negotiate(&self, offers: &[ExtensionOffer]) -> Option<(DeflateParams, String)> {
        if self.validate().is_err() {
            return None;
        }
        offers
            .iter()
            .filter(|offer| offer.name == EXTENSION_NAME)
            .find_map(|offer| parse(offer).ok())
            .map(|p| self.answer(&p))
    }

    fn answer(&self, offer: &Parsed) -> (DeflateParams, String) {
        let ours = self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
        // §7.1.2.1: the server MUST NOT use a larger window than the client asked for, and
        // accepts the request by answering with the same or a smaller value.
        let (server_max_window_bits, say_server_bits) = match offer.server_max_window_bits {
            Some(asked) => (asked.min(ours), true),
            None => (ours, self.server_max_window_bits.is_some()),
        };
        let (client_max_window_bits, say_client_bits) = match offer.client_max_window_bits {
            // §7.1.2.2: without the client's parameter the response MUST NOT carry it.
            None => (MAX_WINDOW_BITS, false),
            Some(None) => match self.client_max_window_bits {
                Some(limit) => (limit, true),
                None => (MAX_WINDOW_BITS, false),
            },
            Some(Some(announced)) => (
                announced.min(self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS)),
                true,
            ),
        };
        let params = DeflateParams {
            server_no_context_takeover: self.server_no_context_takeover
                || offer.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover
                || offer.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        };
        let mut response = String::from(EXTENSION_NAME);
        if params.server_no_context_takeover {
            let _ = write!(response, "; {SERVER_NO_CONTEXT_TAKEOVER}");
        }
        if params.client_no_context_takeover {
            let _ = write!(response, "; {CLIENT_NO_CONTEXT_TAKEOVER}");
        }
        if say_server_bits {
            let _ = write!(
                response,
                "; {SERVER_MAX_WINDOW_BITS}={server_max_window_bits}"
            );
        }
        if say_client_bits {
            let _ = write!(
                response,
                "; {CLIENT_MAX_WINDOW_BITS}={client_max_window_bits}"
            );
        }
        (params, response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn element(s: &str) -> ExtensionOffer {
        let mut list = parse_extensions(s).unwrap();
        assert_eq!(list.len(), 1, "{s}");
        list.remove(0)
    }

    #[test]
    fn window_values_are_8_to_15_without_leading_zeros() {
        for ok in 8..=15u8 {
            assert_eq!(window_bits(&ok.to_string()), Some(ok));
        }
        for bad in [
            "7", "16", "0", "08", "015", "x", "", "+9", " 9", "9 ", "-9", "1e1",
        ] {
            assert_eq!(window_bits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_rejects_unknown_duplicate_and_invalid() {
        assert!(matches!(
            parse(&element("permessage-deflate; foo")),
            Err(DeflateNegotiationError::UnknownParameter(p)) if p == "foo"
        ));
        assert!(matches!(
            parse(&element(
                "permessage-deflate; client_max_window_bits; client_max_window_bits=10"
            )),
            Err(DeflateNegotiationError::DuplicateParameter(_))
        ));
        assert!(matches!(
            parse(&element("permessage-deflate; server_no_context_takeover=1")),
            Err(DeflateNegotiationError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse(&element("permessage-deflate; server_max_window_bits")),
            Err(DeflateNegotiationError::InvalidValue { value: None, .. })
        ));
        let p = parse(&element(
            "permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits",
        ))
        .unwrap();
        assert_eq!(p.server_max_window_bits, Some(10));
        assert_eq!(p.client_max_window_bits, Some(None));
    }
}
