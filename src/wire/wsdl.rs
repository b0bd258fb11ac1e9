//! The WSDL 1.1 of the SOAP service (`GET /soap?wsdl`), generated from [`Operation::ALL`] and each
//! operation's [`Operation::parameters`], so it cannot drift from what `/soap` accepts.
//!
//! Document/literal: one request element per operation, named as the operation, in
//! `urn:mastodon-sidecar:v1`, its parameters as unqualified children (the sidecar reads them by local
//! name, whatever the namespace); one response element `{operation}Response` typed by the result's
//! entity (`tns:Status`, `tns:StatusPage`, ...), a complexType per entity of [`super::entities`]: a
//! sequence of unqualified, typed elements in the order the encoder writes them, lists as repeated
//! elements, optional fields `minOccurs="0"`, and for Mastodon's entities a trailing optional
//! `extra` (free content) for the fields the server adds. One port type, a SOAP 1.1 and a SOAP 1.2
//! binding (`soapAction="urn:{operation}"`), and a service whose two ports point at the URL the WSDL was
//! fetched from. Nothing here knows HTTP: the caller passes that URL in.
//!
//! Faults: every operation declares the fault `error`, whose detail is the element `tns:error` (the
//! error fields as unqualified children, the same as the plain-XML error body): what `soap::fault`
//! puts in the SOAP 1.1 `detail` and the SOAP 1.2 `Detail`.

use std::fmt::Write as _;

use super::entities::{self, Shape, Type};
use super::soap::{SIDECAR_NS, SOAP11_NS, SOAP12_NS};
use super::xml::escape_into;
use crate::operations::{Operation, Param, ParamKind};

pub const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
pub const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
pub const WSDL_SOAP12_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
pub const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";
/// SOAP over HTTP, the transport both bindings name.
const HTTP_TRANSPORT: &str = "http://schemas.xmlsoap.org/soap/http";

const SERVICE: &str = "MastodonSidecar";
const PORT_TYPE: &str = "MastodonSidecarPortType";
const BINDING_11: &str = "MastodonSidecarSoap11Binding";
const BINDING_12: &str = "MastodonSidecarSoap12Binding";
/// The fault every operation declares, and its message (one part: the element `tns:error`).
const FAULT: &str = "error";
const FAULT_MESSAGE: &str = "Fault";

/// The WSDL, with both ports at `endpoint` (the absolute URL of `/soap`).
pub fn document(endpoint: &str) -> String {
    let mut out = String::with_capacity(24 * 1024);
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?><wsdl:definitions name="{SERVICE}" targetNamespace="{SIDECAR_NS}" xmlns:wsdl="{WSDL_NS}" xmlns:soap="{WSDL_SOAP11_NS}" xmlns:soap12="{WSDL_SOAP12_NS}" xmlns:xs="{XSD_NS}" xmlns:tns="{SIDECAR_NS}">"#
    );
    documentation(
        &mut out,
        "wsdl",
        "Mastodon connector operations. Requests and responses are also described by /openapi.json.",
    );
    types(&mut out);
    messages(&mut out);
    port_type(&mut out);
    binding(&mut out, BINDING_11, "soap", SOAP11_NS);
    binding(&mut out, BINDING_12, "soap12", SOAP12_NS);
    service(&mut out, endpoint);
    out.push_str("</wsdl:definitions>");
    out
}

fn documentation(out: &mut String, prefix: &str, text: &str) {
    let _ = write!(out, "<{prefix}:documentation>");
    escape_into(out, text);
    let _ = write!(out, "</{prefix}:documentation>");
}

fn types(out: &mut String) {
    // The schema declares its own prefixes, so that it can be read (and validated against) alone.
    let _ = write!(
        out,
        r#"<wsdl:types><xs:schema targetNamespace="{SIDECAR_NS}" elementFormDefault="unqualified" xmlns:xs="{XSD_NS}" xmlns:tns="{SIDECAR_NS}">"#
    );
    for op in Operation::ALL {
        let _ = write!(out, r#"<xs:element name="{}">"#, op.name());
        annotation(out, op.summary());
        sequence(out, op.parameters());
        out.push_str("</xs:element>");
        let result = entities::result_shape(op.returns());
        let _ = write!(
            out,
            r#"<xs:element name="{}Response" type="tns:{}"/>"#,
            op.name(),
            result.name
        );
    }
    out.push_str(r#"<xs:element name="error" type="tns:Error">"#);
    annotation(
        out,
        "Every error: the detail of every operation's SOAP fault, and the plain-XML error body",
    );
    out.push_str("</xs:element>");
    for shape in entities::shapes_used(Operation::ALL.iter().map(|op| op.returns())) {
        complex_type(out, shape);
    }
    out.push_str("</xs:schema></wsdl:types>");
}

/// The complexType of `shape`: its fields in declared order (the order `xml::write_typed_children`
/// writes them), then `extra` for an open one; any content for a shape without declared fields.
fn complex_type(out: &mut String, shape: &Shape) {
    if shape.is_free() {
        let _ = write!(
            out,
            r#"<xs:complexType name="{}" mixed="true">"#,
            shape.name
        );
        annotation(out, shape.description);
        out.push_str(r#"<xs:sequence><xs:any processContents="lax" minOccurs="0" maxOccurs="unbounded"/></xs:sequence></xs:complexType>"#);
        return;
    }
    let _ = write!(out, r#"<xs:complexType name="{}">"#, shape.name);
    annotation(out, shape.description);
    out.push_str("<xs:sequence>");
    for f in shape.fields {
        let min = if f.required && !f.many { "1" } else { "0" };
        let max = if f.many { "unbounded" } else { "1" };
        let ty = match f.ty {
            Type::Text | Type::Scalar => "xs:string".to_owned(),
            Type::Integer => "xs:long".to_owned(),
            Type::Number => "xs:double".to_owned(),
            Type::Boolean => "xs:boolean".to_owned(),
            Type::DateTime => "xs:dateTime".to_owned(),
            Type::Object(inner) => format!("tns:{}", inner.name),
        };
        let _ = write!(
            out,
            r#"<xs:element name="{}" type="{ty}" minOccurs="{min}" maxOccurs="{max}">"#,
            f.name
        );
        annotation(out, f.description);
        out.push_str("</xs:element>");
    }
    if shape.open {
        let _ = write!(
            out,
            r#"<xs:element name="{}" type="tns:{}" minOccurs="0" maxOccurs="1">"#,
            entities::EXTRA,
            entities::ANY.name
        );
        annotation(
            out,
            "The fields the server sent that are not declared here (and declared ones whose value does not fit the declared type), as they came",
        );
        out.push_str("</xs:element>");
    }
    out.push_str("</xs:sequence></xs:complexType>");
}

fn annotation(out: &mut String, text: &str) {
    out.push_str("<xs:annotation>");
    documentation(out, "xs", text);
    out.push_str("</xs:annotation>");
}

/// An anonymous complex type holding `params` in their order (callers may send them in any order).
fn sequence(out: &mut String, params: &[Param]) {
    if params.is_empty() {
        out.push_str("<xs:complexType/>");
        return;
    }
    out.push_str("<xs:complexType><xs:sequence>");
    for p in params {
        let min = if p.required { "1" } else { "0" };
        let max = if matches!(p.kind, ParamKind::List | ParamKind::Objects(_)) {
            "unbounded"
        } else {
            "1"
        };
        let _ = write!(
            out,
            r#"<xs:element name="{}" minOccurs="{min}" maxOccurs="{max}""#,
            p.name
        );
        match p.kind {
            ParamKind::Object(fields) | ParamKind::Objects(fields) => {
                out.push('>');
                annotation(out, p.description);
                sequence(out, fields);
            }
            kind => {
                let _ = write!(out, r#" type="{}">"#, simple_type(kind));
                annotation(out, p.description);
            }
        }
        out.push_str("</xs:element>");
    }
    out.push_str("</xs:sequence></xs:complexType>");
}

fn simple_type(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Bool => "xs:boolean",
        ParamKind::Count => "xs:unsignedLong",
        ParamKind::Binary => "xs:base64Binary",
        ParamKind::Text | ParamKind::List | ParamKind::Object(_) | ParamKind::Objects(_) => {
            "xs:string"
        }
    }
}

fn messages(out: &mut String) {
    for op in Operation::ALL {
        let name = op.name();
        let _ = write!(
            out,
            r#"<wsdl:message name="{name}Request"><wsdl:part name="parameters" element="tns:{name}"/></wsdl:message><wsdl:message name="{name}Response"><wsdl:part name="parameters" element="tns:{name}Response"/></wsdl:message>"#
        );
    }
    let _ = write!(
        out,
        r#"<wsdl:message name="{FAULT_MESSAGE}"><wsdl:part name="error" element="tns:error"/></wsdl:message>"#
    );
}

fn port_type(out: &mut String) {
    let _ = write!(out, r#"<wsdl:portType name="{PORT_TYPE}">"#);
    for op in Operation::ALL {
        let name = op.name();
        let _ = write!(out, r#"<wsdl:operation name="{name}">"#);
        documentation(out, "wsdl", op.summary());
        let _ = write!(
            out,
            r#"<wsdl:input message="tns:{name}Request"/><wsdl:output message="tns:{name}Response"/><wsdl:fault name="{FAULT}" message="tns:{FAULT_MESSAGE}"/></wsdl:operation>"#
        );
    }
    out.push_str("</wsdl:portType>");
}

fn binding(out: &mut String, binding: &str, prefix: &str, envelope_ns: &str) {
    let _ = write!(
        out,
        r#"<wsdl:binding name="{binding}" type="tns:{PORT_TYPE}">"#
    );
    documentation(out, "wsdl", &format!("SOAP envelopes in {envelope_ns}"));
    let _ = write!(
        out,
        r#"<{prefix}:binding style="document" transport="{HTTP_TRANSPORT}"/>"#
    );
    for op in Operation::ALL {
        let name = op.name();
        let _ = write!(
            out,
            r#"<wsdl:operation name="{name}"><{prefix}:operation soapAction="urn:{name}" style="document"/><wsdl:input><{prefix}:body use="literal"/></wsdl:input><wsdl:output><{prefix}:body use="literal"/></wsdl:output><wsdl:fault name="{FAULT}"><{prefix}:fault name="{FAULT}" use="literal"/></wsdl:fault></wsdl:operation>"#
        );
    }
    out.push_str("</wsdl:binding>");
}

fn service(out: &mut String, endpoint: &str) {
    let mut location = String::with_capacity(endpoint.len());
    escape_into(&mut location, endpoint);
    let _ = write!(out, r#"<wsdl:service name="{SERVICE}">"#);
    for (port, binding, prefix) in [
        ("MastodonSidecarSoap11", BINDING_11, "soap"),
        ("MastodonSidecarSoap12", BINDING_12, "soap12"),
    ] {
        let _ = write!(
            out,
            r#"<wsdl:port name="{port}" binding="tns:{binding}"><{prefix}:address location="{location}"/></wsdl:port>"#
        );
    }
    out.push_str("</wsdl:service>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::xml;

    #[test]
    fn the_wsdl_is_well_formed_and_escapes_the_endpoint() {
        let text = document("http://a.example/soap?x=1&y=\"2\"");
        let root = xml::parse(text.as_bytes()).expect("well-formed");
        assert_eq!(root.local, "definitions");
        assert_eq!(root.namespace.as_deref(), Some(WSDL_NS));
        assert!(text.contains(r#"location="http://a.example/soap?x=1&amp;y=&quot;2&quot;""#));
    }

    #[test]
    fn lists_repeat_counts_are_unsigned_and_the_poll_nests() {
        let text = document("http://127.0.0.1:8080/soap");
        assert!(text.contains(
            r#"<xs:element name="media_ids" minOccurs="0" maxOccurs="unbounded" type="xs:string">"#
        ));
        assert!(text.contains(
            r#"<xs:element name="expires_in" minOccurs="0" maxOccurs="1" type="xs:unsignedLong">"#
        ));
        assert!(text.contains(
            r#"<xs:element name="sensitive" minOccurs="0" maxOccurs="1" type="xs:boolean">"#
        ));
        assert!(
            text.contains(r#"<xs:element name="poll" minOccurs="0" maxOccurs="1"><xs:annotation>"#)
        );
    }
}
