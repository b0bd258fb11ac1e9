//! Guards for the invariants ARCHITECTURE.md states.

use std::path::Path;

fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_core_and_the_mastodon_client_know_no_wire_format() {
    for dir in ["src/operations", "src/mastodon"] {
        let files = sources(dir);
        assert!(!files.is_empty(), "{dir}");
        for (path, text) in files {
            // Comments may name the layers; code may not use them.
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for forbidden in ["actix_web", "quick_xml", "crate::wire", "crate::http"] {
                assert!(!code.contains(forbidden), "{path} uses {forbidden}");
            }
        }
    }
}

#[test]
fn every_module_says_what_it_holds() {
    for dir in [
        "src",
        "src/operations",
        "src/mastodon",
        "src/wire",
        "src/store",
        "src/http",
    ] {
        for (path, text) in sources(dir) {
            assert!(
                text.trim_start().starts_with("//!"),
                "{path} lacks a //! header"
            );
        }
    }
}
