//! The WSO2 MI connector (`mediation/mastodon-connector/`), generated from the declarations: one
//! Synapse template, uischema form, output schema and component entry per operation, the components themselves,
//! `connector.xml`, and `fail.xml`'s one case per error code. Only what is MI's own and no operation's
//! (the connection form, `init`'s MI settings, the call to the sidecar) is fixed text, in `mi/`.
//!
//! A template takes the operation's parameters flat, the way MI's forms and expressions give them:
//! a nested object's fields become `{object}_{field}` (`poll_options`), a list of objects becomes
//! numbered slots (`media1_data`, `media2_data`), and a list is ONE string split on the template's
//! `list_separator` without a script mediator (XPath 1.0 has no split: each slot takes the text before
//! the next separator). Every element is always emitted: the sidecar reads an empty element, and an
//! object whose children are all empty, as absent.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{field_title, group, title, xml_escape, File};
use crate::error::ErrorKind;
use crate::operations::{Entity, Operation, Param, ParamKind, Returns};

/// Slots of a list given as one separated string.
pub const LIST_SLOTS: usize = 20;
/// Slots of a list of objects (`media1_…` to `media8_…`).
pub const OBJECT_SLOTS: usize = 8;

const INIT: &str = include_str!("mi/init.xml");
const CALL_SIDECAR: &str = include_str!("mi/callSidecar.xml");
const FAIL_HEAD: &str = include_str!("mi/fail-head.xml");
const CONNECTION_FORM: &str = include_str!("mi/connection.json");
const ICON_SMALL: &[u8] = include_bytes!("mi/icon-small.png");
const ICON_LARGE: &[u8] = include_bytes!("mi/icon-large.png");

/// The connector's own codes, beside the sidecar's: a template that ran before `init`, and an error
/// status without the sidecar's error document (a proxy in between).
const CONNECTOR_CODES: [&str; 2] = ["not_initialized", "sidecar_error"];

/// Every file of the connector folder.
pub fn files() -> Vec<File> {
    let mut files = vec![
        File::text("connector.xml", connector_xml()),
        File::text("config/init.xml", INIT),
        File::text("config/callSidecar.xml", CALL_SIDECAR),
        File::text("config/fail.xml", fail_xml()),
        File::text("uischema/connection.json", CONNECTION_FORM),
        File {
            path: "icon/icon-small.png".into(),
            bytes: ICON_SMALL.to_vec(),
        },
        File {
            path: "icon/icon-large.png".into(),
            bytes: ICON_LARGE.to_vec(),
        },
    ];
    for component in components() {
        files.push(File::text(
            format!("{component}/component.xml"),
            component_xml(component),
        ));
    }
    for op in Operation::ALL {
        if op != Operation::Init {
            files.push(File::text(
                format!("{}/{}.xml", group(op), op.name()),
                template(op),
            ));
        }
        files.push(File::text(
            format!("uischema/{}.json", op.name()),
            pretty(&uischema(op)),
        ));
        files.push(File::text(
            format!("outputschema/{}.json", op.name()),
            pretty(&output_schema(op)),
        ));
    }
    files
}

/// What MI 4.4 keeps in an operation's `responseVariable` (`payload`, the sidecar's answer as the
/// entity declarations describe it, and `attributes`), the form WSO2's own connectors use: the
/// designer offers the result's fields from it.
fn output_schema(op: Operation) -> Value {
    let mut payload = crate::wire::entities::result_json_schema(op.returns());
    payload["description"] = json!(format!("What {} answers", op.name()));
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "title": format!("Output Schema for {} Operation", op.name()),
        "description": format!("Output schema for the {} operation: {}", op.name(), op.summary()),
        "properties": {
            "payload": payload,
            "attributes": {
                "type": "object",
                "description": "Metadata about the operation.",
                "properties": {
                    "statusCode": {
                        "type": "integer",
                        "description": "HTTP status code of the sidecar's answer.",
                        "minimum": 100,
                        "maximum": 599,
                    },
                },
            },
        },
        "required": ["payload", "attributes"],
        "additionalProperties": false,
    })
}

/// The MI error code of a sidecar code: `rate_limited` → `MASTODON:RATE_LIMITED`.
pub fn error_code(code: &str) -> String {
    format!("MASTODON:{}", code.to_ascii_uppercase())
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// The components in a stable order: `config` first, then as the operations are declared.
fn components() -> Vec<&'static str> {
    let mut out = vec!["config"];
    for op in Operation::ALL {
        let g = group(op);
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

fn connector_xml() -> String {
    let mut out = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!--
  Mastodon connector for WSO2 Micro Integrator (generated by `mastodon-sidecar generate mi-connector`
  from the sidecar's operation declarations; do not edit by hand).

  The connector holds no Mastodon logic of its own: every operation builds a plain-XML request and
  POSTs it to the mastodon-sidecar running next to MI (by default on http://127.0.0.1:8080, i.e. the
  same pod or host). The sidecar owns OAuth, token storage, rate limits, exactly-once writes and the
  translation to the server's API.

  Requires WSO2 MI 4.4.0 or later (the templates use the throwError mediator so that sidecar errors
  reach fault sequences with a real ERROR_CODE).
-->
<connector>
    <component name="mastodon" package="org.wso2.carbon.connector">
"#,
    );
    for component in components() {
        let _ = writeln!(out, "        <dependency component=\"{component}\"/>");
    }
    let _ = writeln!(
        out,
        "        <description>Mastodon and the servers that speak its API from WSO2 Micro Integrator, through the mastodon-sidecar: OAuth set-up, statuses with media and polls, timelines, notifications, search, accounts, lists ({} operations).</description>",
        Operation::ALL.len()
    );
    out.push_str(
        "    </component>\n    <icon>icon/icon-small.png</icon>\n    <displayName>Mastodon</displayName>\n</connector>\n",
    );
    out
}

fn component_xml(component: &str) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- Generated by `mastodon-sidecar generate mi-connector`; do not edit by hand. -->\n<component name=\"{component}\" type=\"synapse/template\">\n    <subComponents>\n"
    );
    let mut entry = |name: &str, display: &str, description: &str, hidden: bool| {
        let _ = writeln!(out, "        <component name=\"{name}\">");
        let _ = writeln!(out, "            <file>{name}.xml</file>");
        let _ = writeln!(
            out,
            "            <displayName>{}</displayName>",
            xml_escape(display)
        );
        let _ = writeln!(
            out,
            "            <description>{}</description>",
            xml_escape(description)
        );
        if hidden {
            out.push_str("            <hidden>true</hidden>\n");
        }
        out.push_str("        </component>\n");
    };
    for op in Operation::ALL
        .into_iter()
        .filter(|op| group(*op) == component)
    {
        entry(op.name(), &title(op.name()), op.summary(), false);
    }
    if component == "config" {
        entry(
            "callSidecar",
            "Call sidecar (internal)",
            "Internal: sends the current plain-XML body to the sidecar and turns error answers into faults. Used by every operation.",
            true,
        );
        entry(
            "fail",
            "Fail (internal)",
            "Internal: raises a typed MASTODON:* error so that fault sequences see a meaningful ERROR_CODE.",
            true,
        );
    }
    out.push_str("    </subComponents>\n</component>\n");
    out
}

fn fail_xml() -> String {
    let mut out = String::from(FAIL_HEAD);
    out.push_str("        <switch source=\"$ctx:mastodon.error.code\">\n");
    let codes = ErrorKind::ALL
        .iter()
        .map(|k| k.code())
        .chain(CONNECTOR_CODES);
    for code in codes {
        let _ = write!(
            out,
            "            <case regex=\"{code}\">\n                <throwError type=\"{}\" errorMessage=\"{{$ctx:mastodon.error.message}}\"/>\n            </case>\n",
            error_code(code)
        );
    }
    out.push_str("            <default>\n                <throwError type=\"MASTODON:SIDECAR_ERROR\" errorMessage=\"{$ctx:mastodon.error.message}\"/>\n            </default>\n        </switch>\n    </sequence>\n</template>\n");
    out
}

/// One parameter as the template takes it.
struct Flat {
    name: String,
    description: String,
    required: bool,
    kind: ParamKind,
}

/// The request body a template builds, and what it needs for it.
#[derive(Default)]
struct Payload {
    elements: String,
    args: Vec<String>,
    params: Vec<Flat>,
    lists: Vec<String>,
}

impl Payload {
    fn arg(&mut self, expression: String) -> usize {
        self.args.push(expression);
        self.args.len()
    }

    fn add(&mut self, params: &[Param], prefix: &str, depth: usize) {
        let indent = "    ".repeat(depth + 6);
        for p in params {
            let flat = format!("{prefix}{}", p.name);
            match p.kind {
                // Base64 (`Binary`) is normalized too: the sidecar skips the whitespace it leaves.
                ParamKind::Text | ParamKind::Binary | ParamKind::Bool | ParamKind::Count => {
                    let expression = if flat == "connection" {
                        "$ctx:mastodon.op.connection".to_owned()
                    } else if p.kind == ParamKind::Text {
                        format!("$func:{flat}")
                    } else {
                        format!("normalize-space($func:{flat})")
                    };
                    let n = self.arg(expression);
                    let _ = writeln!(self.elements, "{indent}<{0}>${n}</{0}>", p.name);
                    if flat != "connection" {
                        self.params
                            .push(flat_param(&flat, p, p.description.to_owned()));
                    }
                }
                ParamKind::List => {
                    for slot in 1..=LIST_SLOTS {
                        let n = self.arg(format!("$ctx:mastodon.list.{flat}.{slot}"));
                        let _ = writeln!(self.elements, "{indent}<{0}>${n}</{0}>", p.name);
                    }
                    self.params.push(flat_param(
                        &flat,
                        p,
                        format!(
                            "{}. One string, items separated by list_separator (default comma); at most {LIST_SLOTS}.",
                            p.description.trim_end_matches('.')
                        ),
                    ));
                    self.lists.push(flat);
                }
                ParamKind::Object(fields) => {
                    let _ = writeln!(self.elements, "{indent}<{}>", p.name);
                    self.add(fields, &format!("{flat}_"), depth + 1);
                    let _ = writeln!(self.elements, "{indent}</{}>", p.name);
                }
                ParamKind::Objects(fields) => {
                    for slot in 1..=OBJECT_SLOTS {
                        let _ = writeln!(self.elements, "{indent}<{}>", p.name);
                        self.add(fields, &format!("{flat}{slot}_"), depth + 1);
                        let _ = writeln!(self.elements, "{indent}</{}>", p.name);
                    }
                }
            }
        }
    }
}

fn flat_param(flat: &str, p: &Param, description: String) -> Flat {
    Flat {
        name: flat.to_owned(),
        description,
        required: p.required,
        kind: p.kind,
    }
}

fn payload(op: Operation) -> Payload {
    let mut payload = Payload::default();
    payload.add(op.parameters(), "", 0);
    payload
}

/// What a template publishes for the flow after a success: (property, field of the answer).
fn published(returns: Returns) -> (&'static str, &'static [&'static str]) {
    match returns {
        Returns::Page(_) => ("page", &[]),
        Returns::List(_) => ("", &[]),
        Returns::One(entity) => match entity {
            Entity::Status | Entity::StatusOrScheduled => ("status", &["id", "url"]),
            Entity::Account => ("account", &["id", "acct"]),
            Entity::AuthorizationUrl => ("oauth", &["url", "state"]),
            Entity::TokenReport => ("token", &["scope"]),
            Entity::MediaAttachment => ("media", &["id", "url"]),
            Entity::List => ("list", &["id"]),
            Entity::Poll => ("poll", &["id"]),
            Entity::Relationship => ("relationship", &["id"]),
            Entity::Notification => ("notification", &["id"]),
            Entity::ScheduledStatus => ("scheduled_status", &["id"]),
            _ => ("", &[]),
        },
    }
}

fn template(op: Operation) -> String {
    let name = op.name();
    let payload = payload(op);
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!--\n  mastodon.{name} (generated by `mastodon-sidecar generate mi-connector` from the operation's\n  declaration; do not edit by hand)\n\n  {}\n",
        xml_escape(op.summary()).replace("--", "- -")
    );
    if let Some(route) = op.route() {
        let _ = writeln!(out, "  Mastodon route: {} {}", route.method, route.path);
    }
    let (prefix, fields) = published(op.returns());
    if prefix == "page" {
        out.push_str("  The answer is a page, {items, next, prev}: mastodon.page.next_max_id and\n  mastodon.page.prev_min_id are published for the next call's max_id / min_id.\n");
    } else if !fields.is_empty() {
        let names: Vec<String> = fields
            .iter()
            .map(|f| format!("mastodon.{prefix}.{f}"))
            .collect();
        let _ = writeln!(out, "  Published after a success: {}.", names.join(", "));
    }
    if !payload.lists.is_empty() {
        let _ = writeln!(
            out,
            "  Lists ({}) are ONE string, items separated by list_separator (default comma), at most\n  {LIST_SLOTS} each; items are trimmed and empty ones skipped.",
            payload.lists.join(", ")
        );
    }
    if payload.params.iter().any(|p| p.kind == ParamKind::Text) {
        out.push_str("  Free text is escaped by payloadFactory, with one Synapse quirk: a value that is, as a\n  whole, a well-formed XML element (e.g. \"<b>hi</b>\") is inserted as markup; the sidecar then\n  refuses the request (invalid_request) instead of sending something else.\n");
    }
    out.push_str("-->\n");
    let _ = writeln!(
        out,
        "<template name=\"{name}\" xmlns=\"http://ws.apache.org/ns/synapse\">"
    );
    out.push_str("    <parameter name=\"connection\" description=\"Sidecar connection name. Empty: the one given to mastodon.init.\"/>\n");
    for p in &payload.params {
        let required = if p.required { " Required." } else { "" };
        let _ = writeln!(
            out,
            "    <parameter name=\"{}\" description=\"{}{required}\"/>",
            p.name,
            xml_escape(&p.description)
        );
    }
    if !payload.lists.is_empty() {
        out.push_str("    <parameter name=\"list_separator\" description=\"Separator of the list parameters (default ,). Not sent to the sidecar.\"/>\n");
    }
    out.push_str(
        r#"
    <!-- MI 4.4+: handled by MI itself around the template (store the result, optionally keep the body). -->
    <parameter name="responseVariable" description="MI 4.4+: name of the variable that receives the sidecar's answer."/>
    <parameter name="overwriteBody" description="MI 4.4+: false keeps the original message body (the answer is only in responseVariable)."/>
    <sequence>
"#,
    );
    let _ = writeln!(
        out,
        "        <property name=\"mastodon.operation\" value=\"{name}\"/>"
    );
    out.push_str(
        r#"        <property name="mastodon.op.connection" expression="normalize-space($func:connection)"/>
        <filter xpath="string-length($ctx:mastodon.op.connection) = 0">
            <then>
                <property name="mastodon.op.connection" expression="$ctx:mastodon.connection"/>
            </then>
        </filter>
"#,
    );
    if !payload.lists.is_empty() {
        out.push_str(
            r#"        <property name="mastodon.list.separator" expression="$func:list_separator"/>
        <filter xpath="string-length($ctx:mastodon.list.separator) = 0">
            <then>
                <property name="mastodon.list.separator" value=","/>
            </then>
        </filter>
"#,
        );
    }
    for list in &payload.lists {
        list_slots(&mut out, name, list);
    }
    out.push_str("        <!-- Every parameter is always emitted: the sidecar treats an empty element as absent. -->\n        <payloadFactory media-type=\"xml\">\n            <format>\n");
    let _ = writeln!(out, "                <{name} xmlns=\"\">");
    out.push_str(&payload.elements);
    let _ = writeln!(out, "                </{name}>");
    out.push_str("            </format>\n            <args>\n");
    for arg in &payload.args {
        let _ = writeln!(
            out,
            "                <arg evaluator=\"xml\" expression=\"{arg}\"/>"
        );
    }
    out.push_str("            </args>\n        </payloadFactory>\n");
    let _ = writeln!(
        out,
        "        <mastodon.callSidecar>\n            <operation>{name}</operation>\n        </mastodon.callSidecar>"
    );
    if prefix == "page" {
        out.push_str("        <property name=\"mastodon.page.next_max_id\" expression=\"string($body/*/*[local-name()='next']/*[local-name()='max_id'])\"/>\n");
        out.push_str("        <property name=\"mastodon.page.prev_min_id\" expression=\"string($body/*/*[local-name()='prev']/*[local-name()='min_id'])\"/>\n");
    } else {
        for field in fields {
            let _ = writeln!(
                out,
                "        <property name=\"mastodon.{prefix}.{field}\" expression=\"string($body/*/*[local-name()='{field}'])\"/>"
            );
        }
    }
    out.push_str("    </sequence>\n</template>\n");
    out
}

/// Splits `$func:{list}` into `mastodon.list.{list}.1..N`, and fails the call when more is left.
fn list_slots(out: &mut String, op: &str, list: &str) {
    let rest = format!("mastodon.list.{list}.rest");
    let _ = writeln!(
        out,
        "        <property name=\"{rest}\" expression=\"concat($func:{list}, $ctx:mastodon.list.separator)\"/>"
    );
    for slot in 1..=LIST_SLOTS {
        let _ = writeln!(
            out,
            "        <property name=\"mastodon.list.{list}.{slot}\" expression=\"normalize-space(substring-before($ctx:{rest}, $ctx:mastodon.list.separator))\"/>\n        <property name=\"{rest}\" expression=\"substring-after($ctx:{rest}, $ctx:mastodon.list.separator)\"/>"
        );
    }
    let _ = write!(
        out,
        r#"        <filter xpath="string-length(normalize-space(translate($ctx:{rest}, $ctx:mastodon.list.separator, ''))) &gt; 0">
            <then>
                <mastodon.fail>
                    <code>invalid_request</code>
                    <status>400</status>
                    <detail>{op}: the connector passes at most {LIST_SLOTS} items of {list}</detail>
                </mastodon.fail>
            </then>
        </filter>
"#
    );
}

/// The form MI's editors show for an operation.
fn uischema(op: Operation) -> Value {
    let name = op.name();
    let mut request = vec![attribute(
        "connection",
        "Sidecar Connection",
        "stringOrExpression",
        false,
        "Overrides the sidecar connection name of the MI connection for this call. Usually empty.",
    )];
    if op == Operation::Init {
        return json!({
            "connectorName": "mastodon",
            "operationName": name,
            "title": title(name),
            "help": format!("<h1>{}</h1> <b>{}</b>", title(name), xml_escape(op.summary())),
            "elements": [{"type": "attributeGroup", "value": {"groupName": "General", "elements": [
                connection_ref(),
                {"type": "attributeGroup", "value": {"groupName": "Request", "elements": request}},
            ]}}],
        });
    }
    let payload = payload(op);
    for p in &payload.params {
        let input = match p.kind {
            ParamKind::Bool => "booleanOrExpression",
            _ => "stringOrExpression",
        };
        request.push(attribute(
            &p.name,
            &field_title(&p.name),
            input,
            p.required,
            &p.description,
        ));
    }
    if !payload.lists.is_empty() {
        request.push(attribute(
            "list_separator",
            "List Separator",
            "stringOrExpression",
            false,
            "Separator of the list parameters (default ,).",
        ));
    }
    json!({
        "connectorName": "mastodon",
        "operationName": name,
        "title": title(name),
        "help": format!("<h1>{}</h1> <b>{}</b>", title(name), xml_escape(op.summary())),
        "elements": [{"type": "attributeGroup", "value": {"groupName": "General", "elements": [
            connection_ref(),
            {"type": "attributeGroup", "value": {"groupName": "Request", "elements": request}},
            {"type": "attributeGroup", "value": {"groupName": "Output", "elements": [
                {"type": "attribute", "value": {
                    "name": "responseVariable", "displayName": "Response Variable Name",
                    "inputType": "string", "defaultValue": "", "required": "false",
                    "helpTip": "MI 4.4+: variable that receives the sidecar answer.",
                    "deriveResponseVariable": true,
                }},
                {"type": "attribute", "value": {
                    "name": "overwriteBody", "displayName": "Overwrite Message Body",
                    "inputType": "checkbox", "defaultValue": "true", "required": "false",
                    "helpTip": "Replace the message body with the sidecar answer. Clear it to keep the original body (MI restores it).",
                }},
            ]}},
        ]}}],
    })
}

fn connection_ref() -> Value {
    json!({"type": "attribute", "value": {
        "name": "configRef", "displayName": "Connection", "inputType": "connection",
        "defaultValue": "", "required": "true",
        "helpTip": "Mastodon connection (sidecar URL and sidecar connection name) to use.",
        "allowedConnectionTypes": ["MASTODON"], "defaultType": "connection.mastodon",
    }})
}

fn attribute(name: &str, display: &str, input: &str, required: bool, help: &str) -> Value {
    json!({"type": "attribute", "value": {
        "name": name, "displayName": display, "inputType": input, "defaultValue": "",
        "required": if required { "true" } else { "false" }, "helpTip": help,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_template_a_form_and_a_component_entry() {
        let files = files();
        let has = |path: &str| files.iter().any(|f| f.path == path);
        for op in Operation::ALL {
            let form = format!("uischema/{}.json", op.name());
            assert!(has(&form), "{form}");
            let template = format!("{}/{}.xml", group(op), op.name());
            assert!(has(&template), "{template}");
            let component = files
                .iter()
                .find(|f| f.path == format!("{}/component.xml", group(op)))
                .expect("the component");
            let text = String::from_utf8(component.bytes.clone()).unwrap();
            assert!(text.contains(&format!("<file>{}.xml</file>", op.name())));
        }
    }

    #[test]
    fn every_error_code_has_its_own_mi_code() {
        let fail = fail_xml();
        for kind in ErrorKind::ALL {
            assert!(
                fail.contains(&format!(
                    "<case regex=\"{}\">\n                <throwError type=\"{}\"",
                    kind.code(),
                    error_code(kind.code())
                )),
                "{}",
                kind.code()
            );
        }
    }

    #[test]
    fn a_template_sends_every_declared_parameter_flattened() {
        let t = template(Operation::PostStatus);
        for needed in [
            "<parameter name=\"status\"",
            "<parameter name=\"poll_options\"",
            "<parameter name=\"poll_expires_in\"",
            "<parameter name=\"media_ids\"",
            "<poll>",
            "<options>$",
            "mastodon.list.media_ids.20",
            "<property name=\"mastodon.status.id\"",
        ] {
            assert!(t.contains(needed), "{needed}");
        }
        let count = template(Operation::CallApi);
        assert!(count.contains("<parameter name=\"params8_value\""));
        assert!(!count.contains("params9_"));
    }
}
