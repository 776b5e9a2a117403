//! The core's layers, as `docs/architecture.md` draws them: each module
//! imports only modules of its own layer or below. A base module that
//! reaches up (the error type importing OAuth, the config importing the
//! sandbox) ties every change of a feature to the base; this test fails
//! the day one does.

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules of `crates/postie/src`, lowest layer first. A module
/// may import those of its own layer and the ones before it.
const LAYERS: &[&[&str]] = &[
    &["wording", "error", "fs"],
    &["paths", "provider"],
    &["endpoint"],
    &["config"],
    &["blocking"],
    &["secret", "message", "explain"],
    &["transport"],
    &["oauth"],
    &["api"],
    &["mailer"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The `crate::X` paths a file names, outside its `#[cfg(test)]` module.
fn imports(source: &str) -> Vec<String> {
    let code = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or(source);
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
            rest = &rest[at + 7..];
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_its_layer_and_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            wrong.push(format!(
                "{}: module `{top}` is in no layer: add it to LAYERS and to docs/architecture.md",
                rel.display()
            ));
            continue;
        };
        *seen.entry(top.clone()).or_default() += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for used in imports(&text) {
            if used == top {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l <= own => {}
                Some(l) => wrong.push(format!(
                    "{}: `{top}` (layer {own}) imports `{used}` (layer {l}, above it)",
                    rel.display()
                )),
                // `crate::Error` and other re-exports at the crate root.
                None if used.chars().next().is_some_and(char::is_uppercase) => {}
                None => wrong.push(format!(
                    "{}: `{top}` imports `{used}`, which is in no layer",
                    rel.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // The test reads what it claims to: every layer's modules exist.
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            seen.contains_key(*module),
            "module `{module}` is listed but has no source file"
        );
    }
}

#[test]
fn the_reader_finds_imports_and_skips_tests_and_comments() {
    let src = "use crate::error::Error;\n// crate::mailer in a comment\nfn f() { crate::fs::write_atomic(); }\n#[cfg(test)]\nmod tests {\n    use crate::mailer::Mailer;\n}\n";
    assert_eq!(imports(src), ["error", "fs"]);
}
