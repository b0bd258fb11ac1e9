//! SOAP 1.1 and 1.2: envelopes in, envelopes and faults out.
//!
//! The operation is the local name of the one child of `Body`; its namespace is not checked. Header
//! blocks are ignored unless they demand to be understood (`mustUnderstand`), which no header here is:
//! such a request gets a `MustUnderstand` fault, as the SOAP specifications require. A repeated
//! `Header` or `Body`, or a Body with more than one element, is refused: the sidecar would otherwise
//! run one and silently ignore the rest.
//!
//! A result is the element `{operation}Response` in `urn:mastodon-sidecar:v1`, its fields unqualified
//! and in the order the WSDL's types declare ([`super::entities`]). A fault's `detail` (1.1) or
//! `Detail` (1.2) holds one element, `tns:error`, whose unqualified children are the error fields of
//! every format (the plain-XML `<error>` body's): the fault every operation of the WSDL declares.

use serde_json::Value;

use super::entities;
use super::xml::{self, Element};
use crate::error::{Error, ErrorKind, Result};
use crate::operations::Operation;

pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// The namespace of the sidecar's own response elements.
pub const SIDECAR_NS: &str = "urn:mastodon-sidecar:v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_NS,
            SoapVersion::V12 => SOAP12_NS,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            SoapVersion::V11 => "soapenv",
            SoapVersion::V12 => "env",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    /// The version a root element's namespace declares, if it is a SOAP envelope at all.
    pub fn of_envelope(root: &Element) -> Option<SoapVersion> {
        if root.local != "Envelope" {
            return None;
        }
        match root.namespace.as_deref() {
            Some(SOAP11_NS) => Some(SoapVersion::V11),
            Some(SOAP12_NS) => Some(SoapVersion::V12),
            _ => None,
        }
    }
}

/// What a request envelope carries.
pub struct SoapCall {
    pub version: SoapVersion,
    /// The local name of the Body's one child.
    pub operation: String,
    pub params: Value,
}

/// Reads an envelope whose root was already parsed.
pub fn read_envelope(root: &Element) -> Result<SoapCall> {
    let Some(version) = SoapVersion::of_envelope(root) else {
        let mut e = Error::invalid(
            "the body is not a SOAP 1.1 or 1.2 Envelope (check the envelope namespace)",
        );
        if root.local == "Envelope" {
            e.soap_fault_code = Some("VersionMismatch");
        }
        return Err(e);
    };
    let ns = version.namespace();
    let in_envelope = |e: &&Element| e.namespace.as_deref() == Some(ns);
    // One Header at most and one Body, holding one operation: anything repeated would leave the
    // sidecar guessing which one was meant (and ignoring the other), so it is refused.
    let only = |local: &str| -> Result<Option<&Element>> {
        let mut found = root
            .children
            .iter()
            .filter(in_envelope)
            .filter(|e| e.local == local);
        let first = found.next();
        if found.next().is_some() {
            return Err(Error::invalid(format!(
                "the SOAP envelope holds more than one {local}; send one"
            )));
        }
        Ok(first)
    };
    let header = only("Header")?;
    let body = only("Body")?;
    if let Some(header) = header {
        for block in &header.children {
            let must = block
                .attribute(Some(ns), "mustUnderstand")
                .is_some_and(|v| matches!(v.trim(), "1" | "true"));
            if must {
                let mut e = Error::invalid(format!(
                    "the header block <{}> must be understood, and the sidecar understands no header blocks",
                    block.local
                ));
                e.soap_fault_code = Some("MustUnderstand");
                return Err(e);
            }
        }
    }
    let body = body.ok_or_else(|| Error::invalid("the SOAP envelope has no Body"))?;
    let payload = match body.children.as_slice() {
        [one] => one,
        [] => {
            return Err(Error::invalid(
                "the SOAP Body is empty: it must hold the operation element",
            ))
        }
        [first, second, ..] => {
            return Err(Error::invalid(format!(
                "the SOAP Body holds more than one element (<{}>, <{}>, ...): it must hold the one operation element",
                first.local.chars().take(64).collect::<String>(),
                second.local.chars().take(64).collect::<String>()
            )))
        }
    };
    Ok(SoapCall {
        version,
        operation: payload.local.clone(),
        params: xml::parameters(payload)?,
    })
}

fn open_envelope(out: &mut String, version: SoapVersion) {
    let p = version.prefix();
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    out.push_str(&format!(
        r#"<{p}:Envelope xmlns:{p}="{}"><{p}:Body>"#,
        version.namespace()
    ));
}

fn close_envelope(out: &mut String, version: SoapVersion) {
    let p = version.prefix();
    out.push_str(&format!("</{p}:Body></{p}:Envelope>"));
}

/// `<m:{operation}Response xmlns:m="urn:mastodon-sidecar:v1">` holding the result as the WSDL types
/// it (fields in declared order, unqualified), in an envelope.
pub fn response(version: SoapVersion, operation: Operation, result: &Value) -> String {
    let mut out = String::with_capacity(2048);
    let name = operation.name();
    open_envelope(&mut out, version);
    out.push_str(&format!(r#"<m:{name}Response xmlns:m="{SIDECAR_NS}">"#));
    xml::write_typed_children(
        &mut out,
        result,
        entities::result_shape(operation.returns()),
    );
    out.push_str(&format!("</m:{name}Response>"));
    close_envelope(&mut out, version);
    out
}

/// A fault, and the HTTP status it travels with.
pub fn fault(version: SoapVersion, error: &Error, fields: &Value) -> (u16, String) {
    let p = version.prefix();
    let sender = error.kind.blames_sender() && error.soap_fault_code.is_none();
    let mut out = String::with_capacity(1024);
    open_envelope(&mut out, version);
    let mut detail = String::new();
    xml::escape_into(&mut detail, &error.detail);
    // One element the WSDL declares as every operation's fault (`tns:error`), holding the fields.
    let mut fields_xml = format!(r#"<m:error xmlns:m="{SIDECAR_NS}">"#);
    xml::write_typed_children(&mut fields_xml, fields, &entities::ERROR);
    fields_xml.push_str("</m:error>");
    let status = match version {
        SoapVersion::V11 => {
            let code = error
                .soap_fault_code
                .unwrap_or(if sender { "Client" } else { "Server" });
            out.push_str(&format!(
                "<{p}:Fault><faultcode>{p}:{code}</faultcode><faultstring>{detail}</faultstring><detail>{fields_xml}</detail></{p}:Fault>"
            ));
            // SOAP 1.1 over HTTP: every fault is a 500.
            500
        }
        SoapVersion::V12 => {
            let code = error
                .soap_fault_code
                .unwrap_or(if sender { "Sender" } else { "Receiver" });
            out.push_str(&format!(
                "<{p}:Fault><{p}:Code><{p}:Value>{p}:{code}</{p}:Value></{p}:Code><{p}:Reason><{p}:Text xml:lang=\"en\">{detail}</{p}:Text></{p}:Reason><{p}:Detail>{fields_xml}</{p}:Detail></{p}:Fault>"
            ));
            // SOAP 1.2 over HTTP: Sender faults are 400, the others 500.
            if code == "Sender" {
                400
            } else {
                500
            }
        }
    };
    close_envelope(&mut out, version);
    (status, out)
}

/// The operation a `SOAPAction` header or an `action` parameter names: `"urn:postStatus"`,
/// `urn:postStatus`, `postStatus`, or a URI ending in `#postStatus` or `/postStatus`. Empty means none.
pub fn action_operation(action: &str) -> Option<&str> {
    let action = action.trim().trim_matches('"').trim();
    if action.is_empty() {
        return None;
    }
    let name = action.rsplit(['#', '/', ':']).next().unwrap_or(action);
    Some(name)
}

/// Refuses a request whose action names another operation than its Body.
pub fn check_action(action: Option<&str>, body_operation: &str) -> Result<()> {
    match action.and_then(action_operation) {
        Some(named) if !named.eq_ignore_ascii_case(body_operation) => Err(Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "the SOAP action names {:?} but the Body holds {:?}",
                named.chars().take(64).collect::<String>(),
                body_operation.chars().take(64).collect::<String>()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_mi_soap11_envelope_is_read_by_local_names() {
        let body = br#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
            <soapenv:Header><x:Trace xmlns:x="urn:x">1</x:Trace></soapenv:Header>
            <soapenv:Body><postStatus xmlns="http://ws.apache.org/ns/synapse"><status>hi</status></postStatus></soapenv:Body>
            </soapenv:Envelope>"#;
        let call = read_envelope(&xml::parse(body).unwrap()).unwrap();
        assert_eq!(call.version, SoapVersion::V11);
        assert_eq!(call.operation, "postStatus");
        assert_eq!(call.params, json!({"status": "hi"}));
    }

    #[test]
    fn repeated_bodies_headers_and_operations_are_refused() {
        let env =
            |inner: &str| format!(r#"<s:Envelope xmlns:s="{SOAP11_NS}">{inner}</s:Envelope>"#);
        for (inner, says) in [
            (
                "<s:Body><init/></s:Body><s:Body><postStatus/></s:Body>",
                "more than one Body",
            ),
            (
                "<s:Header/><s:Header/><s:Body><init/></s:Body>",
                "more than one Header",
            ),
            (
                "<s:Body><init/><postStatus/></s:Body>",
                "more than one element",
            ),
        ] {
            let e = read_envelope(&xml::parse(env(inner).as_bytes()).unwrap())
                .err()
                .unwrap_or_else(|| panic!("{inner} is refused"));
            assert_eq!(e.kind, ErrorKind::InvalidRequest);
            assert!(e.detail.contains(says), "{inner}: {}", e.detail);
        }
        // Whitespace and comments between them are not elements.
        let ok = env("<s:Header/>\n<!-- c --><s:Body>\n<init/>\n</s:Body>");
        assert!(read_envelope(&xml::parse(ok.as_bytes()).unwrap()).is_ok());
    }

    #[test]
    fn a_header_that_must_be_understood_is_a_must_understand_fault() {
        let body = br#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header>
            <s:Security xmlns:s="urn:s" env:mustUnderstand="true"/></env:Header><env:Body><init/></env:Body></env:Envelope>"#;
        let e = read_envelope(&xml::parse(body).unwrap()).err().unwrap();
        assert_eq!(e.soap_fault_code, Some("MustUnderstand"));
    }

    #[test]
    fn actions_are_compared_by_operation_name() {
        assert_eq!(action_operation("\"urn:postStatus\""), Some("postStatus"));
        assert_eq!(
            action_operation("urn:mastodon-sidecar:v1#init"),
            Some("init")
        );
        assert_eq!(action_operation("\"\""), None);
        assert!(check_action(Some("\"urn:postStatus\""), "postStatus").is_ok());
        assert!(check_action(Some("urn:init"), "postStatus").is_err());
        assert!(check_action(None, "postStatus").is_ok());
    }

    #[test]
    fn faults_take_the_side_and_status_of_the_version() {
        let fields = json!({"code": "rate_limited"});
        let e = Error::new(ErrorKind::RateLimited, "slow down");
        let (status, xml) = fault(SoapVersion::V11, &e, &fields);
        assert_eq!(status, 500);
        assert!(xml.contains("<faultcode>soapenv:Server</faultcode><faultstring>slow down</faultstring><detail><m:error xmlns:m=\"urn:mastodon-sidecar:v1\"><code>rate_limited</code></m:error></detail>"), "{xml}");
        let e = Error::invalid("bad");
        let (status, xml) = fault(SoapVersion::V12, &e, &fields);
        assert_eq!(status, 400);
        assert!(xml.contains("<env:Value>env:Sender</env:Value>"), "{xml}");
    }
}
