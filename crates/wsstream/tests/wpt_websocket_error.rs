//! `websockets/stream/tentative/websocket-error.any.js`: the
//! `WebSocketError` constructor.
#![allow(clippy::unwrap_used)]

use wsstream::{DomExceptionName, WebSocketCloseInfo, WebSocketError};

fn init(close_code: Option<u16>, reason: &str) -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code,
        reason: reason.into(),
    }
}

/// WPT: "WebSocketError defaults should be correct".
#[test]
fn websocket_error_defaults_should_be_correct() {
    // new WebSocketError()
    let error = WebSocketError::new("", WebSocketCloseInfo::default()).unwrap();
    assert_eq!(error.code(), 0, "DOMException code should be 0");
    assert_eq!(error.name(), "WebSocketError", "name should be correct");
    assert_eq!(error.message(), "", "message should be empty");
    assert_eq!(error.close_code(), None, "closeCode should be null");
    assert_eq!(error.reason(), "", "reason should be empty");
}

/// WPT: "WebSocketError should be initialised from arguments".
#[test]
fn websocket_error_should_be_initialised_from_arguments() {
    let error = WebSocketError::new("message", init(Some(3456), "reason")).unwrap();
    assert_eq!(error.code(), 0, "DOMException code should be 0");
    assert_eq!(error.name(), "WebSocketError", "name should be correct");
    assert_eq!(error.message(), "message", "message should match");
    assert_eq!(error.close_code(), Some(3456), "closeCode should match");
    assert_eq!(error.reason(), "reason", "reason should match");
}

fn assert_invalid_code_throws(code: u16) {
    let error = WebSocketError::new("", init(Some(code), "")).unwrap_err();
    assert_eq!(
        error.name(),
        DomExceptionName::InvalidAccessError,
        "code {code}"
    );
}

/// WPT: "new WebSocketError with invalid code 999 should throw".
#[test]
fn new_websocket_error_with_invalid_code_999_should_throw() {
    assert_invalid_code_throws(999);
}

/// WPT: "new WebSocketError with invalid code 1001 should throw".
#[test]
fn new_websocket_error_with_invalid_code_1001_should_throw() {
    assert_invalid_code_throws(1001);
}

/// WPT: "new WebSocketError with invalid code 2999 should throw".
#[test]
fn new_websocket_error_with_invalid_code_2999_should_throw() {
    assert_invalid_code_throws(2999);
}

/// WPT: "new WebSocketError with invalid code 5000 should throw".
#[test]
fn new_websocket_error_with_invalid_code_5000_should_throw() {
    assert_invalid_code_throws(5000);
}

/// WPT: "passing only close code to WebSocketError should work".
#[test]
fn passing_only_close_code_to_websocket_error_should_work() {
    let error = WebSocketError::new("", init(Some(3333), "")).unwrap();
    assert_eq!(error.close_code(), Some(3333), "closeCode should match");
    assert_eq!(error.reason(), "", "reason should be empty");
}

/// WPT: "passing a non-empty reason should cause the close code to be set to 1000".
#[test]
fn passing_a_non_empty_reason_should_cause_the_close_code_to_be_set_to_1000() {
    let error = WebSocketError::new("", init(None, "specified")).unwrap();
    assert_eq!(
        error.close_code(),
        Some(1000),
        "closeCode should be defaulted"
    );
    assert_eq!(error.reason(), "specified", "reason should match");
}

/// WPT: "overlong reason should throw".
#[test]
fn overlong_reason_should_throw() {
    let error = WebSocketError::new("", init(Some(1000), &"x".repeat(124))).unwrap_err();
    assert_eq!(error.name(), DomExceptionName::SyntaxError);
}

/// WPT: "reason should be rejected based on utf-8 bytes, not character count".
#[test]
fn reason_should_be_rejected_based_on_utf_8_bytes_not_character_count() {
    let reason = "🔌".repeat(32);
    assert_eq!(reason.chars().count(), 32);
    assert_eq!(reason.len(), 128);
    let error = WebSocketError::new("", init(None, &reason)).unwrap_err();
    assert_eq!(error.name(), DomExceptionName::SyntaxError);
}
