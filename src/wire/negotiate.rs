//! Choosing formats: what the request is in (Content-Type, or the body's root for XML) and what the
//! answer should be in (the request's format unless `Accept` prefers the other of JSON and XML; SOAP
//! is always answered in SOAP of the same version).

use super::soap::SoapVersion;
use super::Format;

/// The format a Content-Type announces, before the body is read. SOAP 1.1 travels as `text/xml`, so
/// an XML body may still turn out to be SOAP once its root is seen.
pub fn from_content_type(content_type: Option<&str>) -> Option<Format> {
    let essence = content_type?
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Some(Format::Json),
        "application/xml" | "text/xml" => Some(Format::Xml),
        "application/soap+xml" => Some(Format::Soap(SoapVersion::V12)),
        e if e.starts_with("application/") && e.ends_with("+json") => Some(Format::Json),
        _ => None,
    }
}

/// The SOAP 1.2 `action` parameter of a Content-Type.
pub fn action_parameter(content_type: Option<&str>) -> Option<&str> {
    content_type?.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("action")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// JSON or XML, whichever `Accept` ranks higher; `None` when it names neither or ranks them equal.
pub fn preferred_by_accept(accept: Option<&str>) -> Option<Format> {
    let mut json: f32 = -1.0;
    let mut xml: f32 = -1.0;
    for range in accept?.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim() == "q")
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let (_, sub) = media.split_once('/').unwrap_or(("", ""));
        if sub == "json" || sub.ends_with("+json") {
            json = json.max(q);
        } else if sub == "xml" || sub.ends_with("+xml") {
            xml = xml.max(q);
        }
    }
    if json > xml && json > 0.0 {
        Some(Format::Json)
    } else if xml > json && xml > 0.0 {
        Some(Format::Xml)
    } else {
        None
    }
}

/// The answer's format for a request in `request`.
pub fn response_format(request: Format, accept: Option<&str>) -> Format {
    match request {
        Format::Soap(_) => request,
        _ => preferred_by_accept(accept).unwrap_or(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_name_formats_with_parameters_ignored() {
        assert_eq!(
            from_content_type(Some("application/json; charset=UTF-8")),
            Some(Format::Json)
        );
        assert_eq!(
            from_content_type(Some("text/xml; charset=UTF-8")),
            Some(Format::Xml)
        );
        assert_eq!(
            from_content_type(Some(
                "application/soap+xml; charset=UTF-8; action=\"urn:postStatus\""
            )),
            Some(Format::Soap(SoapVersion::V12))
        );
        assert_eq!(
            from_content_type(Some("application/x-www-form-urlencoded")),
            None
        );
        assert_eq!(from_content_type(None), None);
    }

    #[test]
    fn the_soap12_action_is_read_from_the_content_type() {
        assert_eq!(
            action_parameter(Some(
                "application/soap+xml; charset=UTF-8; action=\"urn:postStatus\""
            )),
            Some("urn:postStatus")
        );
        assert_eq!(action_parameter(Some("application/soap+xml")), None);
    }

    #[test]
    fn accept_overrides_only_when_it_prefers_one() {
        assert_eq!(
            response_format(Format::Json, Some("application/xml")),
            Format::Xml
        );
        assert_eq!(
            response_format(Format::Xml, Some("application/json")),
            Format::Json
        );
        assert_eq!(response_format(Format::Xml, Some("*/*")), Format::Xml);
        assert_eq!(
            response_format(
                Format::Json,
                Some("application/xml;q=0.5, application/json")
            ),
            Format::Json
        );
        assert_eq!(
            response_format(Format::Json, Some("application/problem+xml")),
            Format::Xml
        );
        let soap = Format::Soap(SoapVersion::V11);
        assert_eq!(response_format(soap, Some("application/json")), soap);
    }
}
