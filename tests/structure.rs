//! The house rules that the compiler does not check: no file in `src` over 600 lines, a `//!`
//! line at the top of every file, and no import cycle between files.
//!
//! An edge runs from a file to the file of each module it names through `crate::`, `super::` or
//! `self::` (in `use` lines and in code, comments left out). A module naming its own
//! descendants (a `mod.rs` re-exporting its children) is its facade, not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `src`, by module path (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`).
fn modules() -> BTreeMap<Module, PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&root).unwrap().with_extension("");
                let mut module: Module = rel.iter().map(|s| s.to_string_lossy().into()).collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                    module.pop();
                }
                out.insert(module, path);
            }
        }
    }
    out
}

/// The module paths `text` names, from module `here`.
fn named_paths(text: &str, here: &Module) -> Vec<Module> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for head in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(head) {
            let word_before =
                at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
            if word_before {
                continue;
            }
            let mut module: Module = match head {
                "crate::" => Vec::new(),
                "super::" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => here.clone(),
            };
            let rest = &code[at + head.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            for seg in path.split("::").filter(|s| !s.is_empty()) {
                if seg == "super" {
                    module.pop();
                } else {
                    module.push(seg.to_owned());
                }
            }
            out.push(module.clone());
            // `use path::{a, b::c}`: each lowercase item may be a module too.
            if rest[path.len()..].starts_with('{') {
                let group: String = rest[path.len() + 1..]
                    .chars()
                    .take_while(|c| *c != '}')
                    .collect();
                for item in group.split(',') {
                    let item = item.trim().split("::").next().unwrap_or("");
                    if item.starts_with(|c: char| c.is_ascii_lowercase()) && item != "self" {
                        let mut m = module.clone();
                        m.push(item.to_owned());
                        out.push(m);
                    }
                }
            }
        }
    }
    out
}

/// The file module a named path lands in: its longest prefix that is a file.
fn owner<'a>(path: &[String], files: &'a BTreeMap<Module, PathBuf>) -> Option<&'a Module> {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k))
}

#[test]
fn no_file_in_src_is_over_600_lines_and_each_says_what_it_is() {
    let mut problems = Vec::new();
    for path in modules().values() {
        let text = std::fs::read_to_string(path).unwrap();
        let lines = text.lines().count();
        if lines > 600 {
            problems.push(format!("{}: {lines} lines", path.display()));
        }
        if !text.starts_with("//!") {
            problems.push(format!("{}: no `//!` first line", path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let files = modules();
    let mut edges: BTreeMap<&Module, BTreeSet<&Module>> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for named in named_paths(&text, module) {
            let Some(target) = owner(&named, &files) else {
                continue;
            };
            if target != module && !target.starts_with(module) {
                edges.entry(module).or_default().insert(target);
            }
        }
    }
    // A cycle exists iff some file reaches itself; report each such file's loop once.
    let mut cycles = BTreeSet::new();
    for start in files.keys() {
        let mut stack = vec![(start, vec![start])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten() {
                if *next == start {
                    let mut names: Vec<String> = trail.iter().map(|m| m.join("/")).collect();
                    names.sort();
                    cycles.insert(names.join(" ↔ "));
                } else if seen.insert(*next) {
                    let mut longer = trail.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between files:\n{}",
        cycles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_cycle_finder_sees_a_cycle() {
    let files: BTreeMap<Module, PathBuf> = [vec!["a".to_owned()], vec!["b".to_owned()]]
        .into_iter()
        .map(|m| (m, PathBuf::new()))
        .collect();
    let here = vec!["a".to_owned()];
    let named = named_paths(
        "use super::b::{Thing, inner};\nfn f() { crate::b::g() }",
        &here,
    );
    assert!(
        named
            .iter()
            .all(|m| owner(m, &files) == Some(&vec!["b".to_owned()])),
        "{named:?}"
    );
    assert!(named_paths("// crate::b::x\nlet v = 1;", &here).is_empty());
}
