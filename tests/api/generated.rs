//! The committed generated files are exactly what the declarations generate: `mediation/mastodon-connector/`
//! holds every file `mastodon-sidecar generate mi-connector` writes, byte for byte, and nothing else, and
//! `deploy/power-automate/` every file of `generate power-automate`. A failure names the files;
//! regenerate with `cargo run -- generate mi-connector --out mediation/mastodon-connector` and
//! `cargo run -- generate power-automate --out deploy/power-automate` (after removing the folder, when
//! an operation was removed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mastodon_sidecar::generate::{self, File};
use mastodon_sidecar::operations::Operation;

fn committed(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.insert(rel.join("/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn hold(folder: &str, command: &str, files: &[File]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(folder);
    let on_disk = committed(&root);
    let generated: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    let missing: Vec<&String> = generated.difference(&on_disk).collect();
    let stale: Vec<&String> = on_disk.difference(&generated).collect();
    let differ: Vec<&str> = files
        .iter()
        .filter(|f| {
            std::fs::read(root.join(&f.path))
                .map(|bytes| bytes != f.bytes)
                .unwrap_or(false)
        })
        .map(|f| f.path.as_str())
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty() && differ.is_empty(),
        "{folder} has drifted from the declarations: not committed {missing:?}, not generated {stale:?}, different {differ:?}; run `cargo run -- generate {command} --out {folder}`"
    );
}

#[test]
fn the_mi_connector_is_what_the_declarations_generate() {
    hold(
        "mediation/mastodon-connector",
        "mi-connector",
        &generate::mi::files(),
    );
}

#[test]
fn the_power_automate_package_is_what_the_declarations_generate() {
    hold(
        "deploy/power-automate",
        "power-automate",
        &generate::power_automate::files(),
    );
}

#[test]
fn the_mi_connector_parses_and_lists_exactly_the_declared_operations() {
    let files = generate::mi::files();
    let mut templates = BTreeSet::new();
    for file in &files {
        if file.path.ends_with(".xml") {
            let text = std::str::from_utf8(&file.bytes).unwrap();
            let mut reader = quick_xml::Reader::from_str(text);
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(quick_xml::events::Event::Start(e)) if e.name().as_ref() == b"template" => {
                        let name = e
                            .try_get_attribute("name")
                            .unwrap()
                            .expect("a template is named")
                            .unescape_value()
                            .unwrap()
                            .into_owned();
                        templates.insert(name);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("{}: {e}", file.path),
                }
            }
        } else if file.path.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&file.bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", file.path));
        }
    }
    let mut expected: BTreeSet<String> = Operation::ALL
        .iter()
        .map(|op| op.name().to_owned())
        .collect();
    expected.insert("callSidecar".into());
    expected.insert("fail".into());
    assert_eq!(templates, expected);
    assert!(files.iter().any(|f| f.path == "connector.xml"));
    assert!(files.iter().any(|f| f.path == "icon/icon-small.png"));
}

/// The connector's `init` sends exactly `init`'s declared parameters (its template is fixed text: it
/// holds MI's own settings too).
#[test]
fn the_fixed_init_template_sends_the_declared_parameters() {
    let files = generate::mi::files();
    let init = files
        .iter()
        .find(|f| f.path == "config/init.xml")
        .expect("init.xml");
    let text = std::str::from_utf8(&init.bytes).unwrap();
    let start = text.find("<init xmlns=\"\">").expect("init's payload");
    let end = text[start..].find("</init>").unwrap() + start;
    let payload = &text[start..end];
    for p in Operation::Init.parameters() {
        assert!(
            payload.contains(&format!("<{}>", p.name)),
            "init's payload lacks {}",
            p.name
        );
    }
    let sent = payload.matches("</").count();
    assert_eq!(sent, Operation::Init.parameters().len(), "{payload}");
}

/// The payload each generated template builds, with every `$n` replaced by `fill`, as MI's
/// payloadFactory would: the sidecar reads it as the operation's parameters (no unknown element, no
/// type it cannot read), and an all-empty payload is only ever short of required parameters.
#[tokio::test]
async fn every_generated_payload_is_read_by_the_sidecar_as_its_operation() {
    let app = crate::helpers::spawn_app_with(mastodon_standin::Options::default(), |s| {
        s.connections.get_mut("main").unwrap().access_token =
            Some(secrecy::SecretString::from("generated-token"));
    })
    .await;
    app.standin.seed_user_token("generated-token", "read write");
    // The detector itself: an element no operation declares is caught by the words below.
    let control = app
        .client
        .post(format!("{}/v1/operations/postStatus", app.address))
        .header("content-type", "application/xml")
        .body("<postStatus><status>x</status><not_a_parameter>1</not_a_parameter></postStatus>")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(control.contains("takes"), "{control}");
    let files = generate::mi::files();
    for op in Operation::ALL {
        let path = if op == Operation::Init {
            "config/init.xml".to_owned()
        } else {
            format!("{}/{}.xml", generate::group(op), op.name())
        };
        let file = files.iter().find(|f| f.path == path).expect("the template");
        let text = std::str::from_utf8(&file.bytes).unwrap();
        let start = text.find("<format>").expect("a payloadFactory") + "<format>".len();
        let end = text.find("</format>").unwrap();
        let format = &text[start..end];
        for fill in ["", "1"] {
            let mut body = String::new();
            let mut rest = format;
            while let Some(at) = rest.find('$') {
                body.push_str(&rest[..at]);
                let digits = rest[at + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .count();
                body.push_str(if digits > 0 { fill } else { "$" });
                rest = &rest[at + 1 + digits..];
            }
            body.push_str(rest);
            let answer = app
                .client
                .post(format!("{}/v1/operations/{}", app.address, op.name()))
                .header("content-type", "application/xml")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let text = answer.text().await.unwrap();
            if status == 400 && text.contains("invalid_request") {
                let not_read = ["takes", "expected", "must hold", "not a"];
                assert!(
                    !not_read.iter().any(|w| text.contains(w)),
                    "{op} with {fill:?}: the sidecar did not read the template's payload: {text}\n{body}"
                );
                if fill == "1" {
                    assert!(!text.contains("needs the parameter"), "{op}: {text}");
                }
            }
        }
    }
}
