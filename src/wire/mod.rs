//! Wire formats: JSON, plain XML and SOAP 1.1/1.2 as thin codecs around the operation core.
//!
//! A request becomes `(Operation, parameters as a JSON value)`; a result (a JSON value) or an
//! [`Error`] becomes bytes in the caller's format. Nothing here knows what an operation does, and
//! nothing in `operations/` knows these formats: adding a format touches this module only. The HTTP
//! layer hands in the headers it read and gets back a [`Reply`]; this module does not know actix-web.

pub mod entities;
pub mod form_data;
pub mod html;
pub mod json;
pub mod negotiate;
pub mod openapi;
pub mod soap;
pub mod wsdl;
pub mod xml;

use serde_json::{json, Value};

use crate::error::{Error, ErrorKind};
use crate::operations::Operation;
pub use form_data::is_form_data;
pub use soap::SoapVersion;

/// A wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
    Soap(SoapVersion),
}

impl Format {
    /// The `transport` metric label.
    pub fn transport(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Soap(SoapVersion::V11) => "soap11",
            Format::Soap(SoapVersion::V12) => "soap12",
        }
    }
}

/// The request headers the codecs need.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestMeta<'a> {
    pub content_type: Option<&'a str>,
    pub accept: Option<&'a str>,
    /// The SOAP 1.1 `SOAPAction` header.
    pub soap_action: Option<&'a str>,
}

impl RequestMeta<'_> {
    /// The format to answer in when the request cannot even be decoded: what the Content-Type
    /// announces, else what Accept prefers, else (on `/soap`) SOAP 1.1, else JSON.
    pub fn fallback_format(&self, soap_endpoint: bool) -> Format {
        let announced = negotiate::from_content_type(self.content_type);
        match (announced, soap_endpoint) {
            (Some(Format::Soap(v)), _) => Format::Soap(v),
            (_, true) => Format::Soap(SoapVersion::V11),
            (Some(request), false) => negotiate::response_format(request, self.accept),
            (None, false) => negotiate::preferred_by_accept(self.accept).unwrap_or(Format::Json),
        }
    }
}

/// A decoded call, ready for the core.
#[derive(Debug)]
pub struct Decoded {
    pub operation: Operation,
    pub params: Value,
    pub request_format: Format,
    pub response_format: Format,
    /// The file of a `multipart/form-data` call (uploadMedia's REST path).
    pub file: Option<crate::operations::media::FilePart>,
}

/// A request that could not be decoded, with what is known for rendering the error.
#[derive(Debug)]
pub struct Rejected {
    pub format: Format,
    pub operation: Option<Operation>,
    pub error: Error,
}

/// Decodes `POST /v1/operations/{operation}` sent as `multipart/form-data` (see `form_data.rs`):
/// uploadMedia's text parameters and its file. Other operations take JSON, XML or SOAP.
pub fn decode_form_data_request(
    path_operation: &str,
    meta: &RequestMeta<'_>,
    body: &bytes::Bytes,
) -> Result<Decoded, Rejected> {
    let response_format = negotiate::response_format(Format::Json, meta.accept);
    let reject = |operation, error| Rejected {
        format: response_format,
        operation,
        error,
    };
    let Some(operation) = Operation::from_name(path_operation) else {
        return Err(reject(None, Operation::unknown(path_operation)));
    };
    if operation != Operation::UploadMedia {
        return Err(reject(
            Some(operation),
            Error::new(
                ErrorKind::UnsupportedMediaType,
                format!("multipart/form-data is taken by uploadMedia only; send {operation} as application/json, application/xml or text/xml"),
            ),
        ));
    }
    let (params, file) = form_data::parse(meta.content_type.unwrap_or_default(), body)
        .map_err(|e| reject(Some(operation), e))?;
    Ok(Decoded {
        operation,
        params,
        request_format: Format::Json,
        response_format,
        file,
    })
}

/// Decodes `POST /v1/operations/{operation}`: JSON or plain XML, or a SOAP envelope sent there.
pub fn decode_operation_request(
    path_operation: &str,
    meta: &RequestMeta<'_>,
    body: &[u8],
) -> Result<Decoded, Rejected> {
    let fallback = meta.fallback_format(false);
    let reject = |format, operation, error| Rejected {
        format,
        operation,
        error,
    };
    let Some(operation) = Operation::from_name(path_operation) else {
        return Err(reject(fallback, None, Operation::unknown(path_operation)));
    };
    let announced = match negotiate::from_content_type(meta.content_type) {
        Some(format) => format,
        // `curl -X POST` with no body and no Content-Type: an operation without parameters.
        None if meta.content_type.is_none() && body.is_empty() => Format::Json,
        None => {
            return Err(reject(
                fallback,
                Some(operation),
                Error::new(
                    ErrorKind::UnsupportedMediaType,
                    format!(
                        "Content-Type {:?} is not accepted here; send application/json, application/xml or text/xml (SOAP goes to /soap)",
                        meta.content_type.unwrap_or("(none)").chars().take(80).collect::<String>()
                    ),
                ),
            ))
        }
    };
    match announced {
        Format::Json => {
            let params = json::parse(body).map_err(|e| reject(fallback, Some(operation), e))?;
            Ok(Decoded {
                operation,
                params,
                request_format: Format::Json,
                response_format: negotiate::response_format(Format::Json, meta.accept),
                file: None,
            })
        }
        Format::Xml | Format::Soap(_) => {
            let root = xml::parse(body).map_err(|e| reject(fallback, Some(operation), e))?;
            if root.local == "Envelope" {
                // A SOAP envelope posted to the REST path is handled as SOAP there too.
                let decoded = decode_envelope(&root, meta, announced)?;
                if decoded.operation != operation {
                    return Err(reject(
                        decoded.response_format,
                        Some(operation),
                        Error::invalid(format!(
                            "the path names {} but the SOAP Body holds {}",
                            operation, decoded.operation
                        )),
                    ));
                }
                return Ok(decoded);
            }
            if root.local != "jsonObject" && !root.local.eq_ignore_ascii_case(operation.name()) {
                return Err(reject(
                    fallback,
                    Some(operation),
                    Error::invalid(format!(
                        "the root element <{}> does not name the operation: use <{}> or MI's <jsonObject>",
                        root.local.chars().take(64).collect::<String>(),
                        operation.name()
                    )),
                ));
            }
            let params =
                xml::parameters(&root).map_err(|e| reject(fallback, Some(operation), e))?;
            Ok(Decoded {
                operation,
                params,
                request_format: Format::Xml,
                response_format: negotiate::response_format(Format::Xml, meta.accept),
                file: None,
            })
        }
    }
}

/// Decodes `POST /soap`.
pub fn decode_soap_request(meta: &RequestMeta<'_>, body: &[u8]) -> Result<Decoded, Rejected> {
    let fallback = meta.fallback_format(true);
    let announced = negotiate::from_content_type(meta.content_type);
    if !matches!(announced, Some(Format::Xml | Format::Soap(_))) {
        return Err(Rejected {
            format: fallback,
            operation: None,
            error: Error::new(
                ErrorKind::UnsupportedMediaType,
                "SOAP 1.1 is sent as text/xml with a SOAPAction header, SOAP 1.2 as application/soap+xml",
            ),
        });
    }
    let root = xml::parse(body).map_err(|error| Rejected {
        format: fallback,
        operation: None,
        error,
    })?;
    decode_envelope(&root, meta, fallback)
}

fn decode_envelope(
    root: &xml::Element,
    meta: &RequestMeta<'_>,
    fallback: Format,
) -> Result<Decoded, Rejected> {
    let version = SoapVersion::of_envelope(root);
    let format = version.map_or(fallback, Format::Soap);
    let call = soap::read_envelope(root).map_err(|error| Rejected {
        format,
        operation: None,
        error,
    })?;
    let format = Format::Soap(call.version);
    let operation = Operation::from_name(&call.operation).ok_or_else(|| Rejected {
        format,
        operation: None,
        error: Operation::unknown(&call.operation),
    })?;
    let action = match call.version {
        SoapVersion::V11 => meta.soap_action,
        SoapVersion::V12 => negotiate::action_parameter(meta.content_type),
    };
    soap::check_action(action, operation.name()).map_err(|error| Rejected {
        format,
        operation: Some(operation),
        error,
    })?;
    Ok(Decoded {
        operation,
        params: call.params,
        request_format: format,
        response_format: format,
        file: None,
    })
}

/// An encoded answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Seconds, for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

/// A successful result in `format`.
pub fn success(format: Format, operation: Operation, result: &Value) -> Reply {
    let (content_type, body) = match format {
        Format::Json => ("application/json", json::render(result)),
        Format::Xml => {
            let name = format!("{}Response", operation.name());
            let mut content = String::with_capacity(2048);
            xml::write_typed_children(
                &mut content,
                result,
                entities::result_shape(operation.returns()),
            );
            let mut out = String::with_capacity(content.len() + 2 * name.len() + 48);
            out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
            if content.is_empty() {
                // An empty result still answers a well-formed document with the expected root.
                out.push_str(&format!("<{name}/>"));
            } else {
                out.push_str(&format!("<{name}>{content}</{name}>"));
            }
            ("application/xml", out.into_bytes())
        }
        Format::Soap(version) => (
            version.content_type(),
            soap::response(version, operation, result).into_bytes(),
        ),
    };
    Reply {
        status: 200,
        content_type,
        body,
        retry_after: None,
    }
}

/// The fields every error rendering carries, in the contract's order.
pub fn error_fields(error: &Error, operation: Option<&str>, correlation_id: &str) -> Value {
    let mut fields = json!({
        "type": error.kind.type_uri(),
        "title": error.kind.title(),
        "status": error.http_status(),
        "detail": error.detail,
        "code": error.kind.code(),
        "operation": operation,
        "correlation_id": correlation_id,
    });
    if let Some(up) = &error.upstream {
        fields["upstream"] = json!({"status": up.status, "error": up.error});
    }
    fields
}

/// An error in `format`.
pub fn failure(
    format: Format,
    error: &Error,
    operation: Option<&str>,
    correlation_id: &str,
) -> Reply {
    let fields = error_fields(error, operation, correlation_id);
    let (status, content_type, body) = match format {
        Format::Json => (
            error.http_status(),
            "application/problem+json",
            json::render(&fields),
        ),
        Format::Xml => {
            let mut out = String::with_capacity(512);
            out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
            out.push_str("<error>");
            xml::write_typed_children(&mut out, &fields, &entities::ERROR);
            out.push_str("</error>");
            (error.http_status(), "application/xml", out.into_bytes())
        }
        Format::Soap(version) => {
            let (status, body) = soap::fault(version, error, &fields);
            (status, version.content_type(), body.into_bytes())
        }
    };
    Reply {
        status,
        content_type,
        body,
        retry_after: error.retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta<'a>(content_type: &'a str) -> RequestMeta<'a> {
        RequestMeta {
            content_type: Some(content_type),
            ..RequestMeta::default()
        }
    }

    #[test]
    fn xml_on_the_rest_path_needs_the_operation_or_jsonobject_as_root() {
        let ok = decode_operation_request(
            "postStatus",
            &meta("application/xml"),
            b"<jsonObject><status>x</status></jsonObject>",
        )
        .unwrap();
        assert_eq!(ok.operation, Operation::PostStatus);
        assert_eq!(ok.response_format, Format::Xml);
        let bad = decode_operation_request("postStatus", &meta("application/xml"), b"<init/>")
            .unwrap_err();
        assert_eq!(bad.error.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn an_envelope_on_the_rest_path_is_answered_in_soap() {
        let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><init/></s:Body></s:Envelope>"#;
        let d = decode_operation_request("init", &meta("text/xml"), body).unwrap();
        assert_eq!(d.response_format, Format::Soap(SoapVersion::V11));
    }

    #[test]
    fn every_error_kind_renders_in_every_format() {
        for kind in ErrorKind::ALL {
            let e = Error::new(kind, "d");
            for format in [
                Format::Json,
                Format::Xml,
                Format::Soap(SoapVersion::V11),
                Format::Soap(SoapVersion::V12),
            ] {
                let reply = failure(format, &e, Some("init"), "cid");
                let text = String::from_utf8(reply.body).unwrap();
                assert!(text.contains(kind.code()), "{kind} {format:?}");
                assert!(text.contains("cid"), "{kind} {format:?}");
                if matches!(format, Format::Xml | Format::Soap(_)) {
                    xml::parse(text.as_bytes()).unwrap();
                }
            }
        }
    }
}
