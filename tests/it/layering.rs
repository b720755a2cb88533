//! The module layering of ARCHITECTURE §3, checked on the source: an import never runs
//! back up the layers, and no modules import each other in a circle. Imports are read
//! from `src/` (`use crate::…`, `crate::…` paths and `super::…` paths, outside comments
//! and `#[cfg(test)]` modules) and resolved to the source file of the module they name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top to bottom. A module belongs to the longest entry that prefixes it.
/// `App` is the seam: modules above it take `&App`; modules below it take only the
/// parts they use, so the process state can hold the queue, the guarded client and the
/// store without importing anything that takes it.
const LAYERS: &[&[&str]] = &[
    // The composition root (it mounts the built-in sandbox, a crate of its own).
    &["main", "startup"],
    // Entry points: HTTP handlers, job handlers and the command line's API client.
    &["web", "jobs", "cli"],
    // Use cases, alerting among them.
    &["services", "alerts"],
    // The sync engine.
    &["sync"],
    // Talking to providers: the authorised session, OAuth, the catalogue.
    &["connectors"],
    // The process state.
    &["app"],
    // What the process state holds, and what it is built from.
    &["queue", "connectors::http", "crypto", "auth", "telemetry"],
    &["store"],
    &["domain", "error", "config"],
];

/// Imports that still run up or around the layers, each to be removed by issue 17. The
/// test fails on any other, and on any of these that is gone (so the list only shrinks).
const KNOWN: &[(&str, &str)] = &[];

/// Web modules that still read the store directly.
const KNOWN_WEB_STORE: &[&str] = &[];

/// Modules that still import each other in a circle, each to be broken by issue 17.
const KNOWN_CIRCLES: &[&str] = &[];

#[test]
fn no_import_runs_back_up_the_layers() {
    let graph = Graph::of_source();
    let mut found = BTreeSet::new();
    for (from, tos) in &graph.imports {
        for to in tos {
            if layer(to) < layer(from) {
                found.insert((component(from), component(to), format!("{from} → {to}")));
            }
        }
    }
    check_against_known("runs up the layers", &found);
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let graph = Graph::of_source();
    let files = cycles(&graph.imports);
    // The same check one level up: components (the entries of `LAYERS`) must not
    // import each other in a circle either.
    let mut components: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &graph.imports {
        for to in tos {
            let (a, b) = (component(from), component(to));
            if a != b {
                components.entry(a).or_default().insert(b);
            }
        }
    }
    let found: BTreeSet<String> = files
        .iter()
        .chain(cycles(&components).iter())
        .map(|circle| circle.join(" ↔ "))
        .collect();
    let known: BTreeSet<String> = KNOWN_CIRCLES.iter().map(|c| (*c).to_owned()).collect();
    let new: Vec<&String> = found.difference(&known).collect();
    assert!(
        new.is_empty(),
        "modules that import each other in a circle:\n{new:#?}"
    );
    let gone: Vec<&String> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "circles no longer found; remove them from KNOWN_CIRCLES: {gone:?}"
    );
}

#[test]
fn only_start_up_knows_the_built_in_sandbox() {
    // Everything else reaches it over HTTP, like any provider.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    collect(&src, &src, &mut files);
    let naming: Vec<&String> = files
        .iter()
        .filter(|(_, file)| {
            code_of(&std::fs::read_to_string(file).unwrap()).contains("sluice_sandbox")
        })
        .map(|(module, _)| module)
        .filter(|module| component(module) != "startup")
        .collect();
    assert!(
        naming.is_empty(),
        "modules that name the sandbox crate: {naming:?}"
    );
}

#[test]
fn web_handlers_reach_data_only_through_use_cases() {
    let graph = Graph::of_source();
    let found: BTreeSet<String> = graph
        .imports
        .iter()
        .filter(|(from, tos)| {
            component(from) == "web" && tos.iter().any(|to| component(to) == "store")
        })
        .map(|(from, _)| from.clone())
        .collect();
    let known: BTreeSet<String> = KNOWN_WEB_STORE.iter().map(|m| (*m).to_owned()).collect();
    let new: Vec<&String> = found.difference(&known).collect();
    assert!(
        new.is_empty(),
        "web modules that import the store:\n{new:#?}"
    );
    let gone: Vec<&String> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "no longer import the store; remove them from KNOWN_WEB_STORE: {gone:?}"
    );
}

fn check_against_known(what: &str, found: &BTreeSet<(String, String, String)>) {
    let pairs: BTreeSet<(String, String)> = found
        .iter()
        .map(|(a, b, _)| (a.clone(), b.clone()))
        .collect();
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<&String> = found
        .iter()
        .filter(|(a, b, _)| !known.contains(&(a.clone(), b.clone())))
        .map(|(_, _, line)| line)
        .collect();
    assert!(new.is_empty(), "imports that {what}:\n{new:#?}");
    let gone: Vec<&(String, String)> = known.difference(&pairs).collect();
    assert!(
        gone.is_empty(),
        "no longer found; remove them from KNOWN: {gone:?}"
    );
}

fn layer(module: &str) -> usize {
    let entry = component(module);
    LAYERS
        .iter()
        .position(|layer| layer.contains(&entry.as_str()))
        .unwrap_or_else(|| panic!("module {module} belongs to no layer: add it to LAYERS"))
}

/// The entry of `LAYERS` a module belongs to (the longest that prefixes it).
fn component(module: &str) -> String {
    LAYERS
        .iter()
        .flat_map(|layer| layer.iter())
        .filter(|entry| module == **entry || module.starts_with(&format!("{entry}::")))
        .max_by_key(|entry| entry.len())
        .map(|entry| (*entry).to_owned())
        .unwrap_or_else(|| module.split("::").next().unwrap_or_default().to_owned())
}

/// Which module imports which, by module path (`sync::engine`, `services`).
struct Graph {
    imports: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn of_source() -> Graph {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = BTreeMap::new();
        collect(&src, &src, &mut files);
        let modules: BTreeSet<String> = files.keys().cloned().collect();
        let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, file) in &files {
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            // `super` names the parent module, whether the file is `a/b.rs` or `a/b/mod.rs`.
            let mut parent: Vec<&str> = module.split("::").collect();
            parent.pop();
            for (root, path) in paths_in(&code) {
                let full = match root {
                    Root::Crate => path,
                    Root::Super => parent.iter().map(|s| (*s).to_owned()).chain(path).collect(),
                };
                let Some(target) = resolve(&modules, &full) else {
                    continue;
                };
                // A module reaching into its own children or its parent's items is one
                // unit with them.
                let related = target == *module
                    || module.starts_with(&format!("{target}::"))
                    || target.starts_with(&format!("{module}::"));
                if !related && target != "lib" {
                    imports.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        Graph { imports }
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut segs: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if segs.last().is_some_and(|s| s == "mod") {
                segs.pop();
            }
            // Test-only files (`#[cfg(test)] mod x_tests;`) are not part of the layering.
            if segs.last().is_some_and(|s| s.ends_with("_tests")) {
                continue;
            }
            files.insert(segs.join("::"), path);
        }
    }
}

/// The source without comments, string contents and `#[cfg(test)]` modules.
fn code_of(source: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut pending_test = false;
    for line in source.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let line = line.split(" //").next().unwrap_or_default();
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if pending_test && skip_depth.is_none() {
            if trimmed.starts_with("mod ") && trimmed.ends_with(';') {
                pending_test = false;
                continue;
            }
            if opens > 0 {
                skip_depth = Some(depth);
            }
            pending_test = false;
        }
        depth = (depth + opens).saturating_sub(closes);
        if let Some(at) = skip_depth {
            if depth <= at {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(&strip_strings(line));
        out.push('\n');
    }
    out
}

fn strip_strings(line: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                out.push('"');
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

enum Root {
    Crate,
    Super,
}

/// Every path that starts at `crate::` or `super::`, with `{…}` groups expanded.
fn paths_in(code: &str) -> Vec<(Root, Vec<String>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let boundary = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        let root = if boundary && rest.starts_with("crate::") {
            Some((Root::Crate, 7))
        } else if boundary && rest.starts_with("super::") {
            Some((Root::Super, 7))
        } else {
            None
        };
        if let Some((root, skip)) = root {
            let mut j = i + skip;
            // Further `super::` segments climb one more level each.
            let mut prefix = Vec::new();
            let mut paths = Vec::new();
            parse_tree(&bytes, &mut j, &mut prefix, &mut paths);
            for p in paths {
                out.push((
                    match root {
                        Root::Crate => Root::Crate,
                        Root::Super => Root::Super,
                    },
                    p,
                ));
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Parses `a::b::{c, d::e}` from `chars[*at..]`, pushing each full path.
fn parse_tree(
    chars: &[char],
    at: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let start_len = prefix.len();
    loop {
        skip_space(chars, at);
        if chars.get(*at) == Some(&'{') {
            *at += 1;
            loop {
                skip_space(chars, at);
                match chars.get(*at) {
                    Some('}') => {
                        *at += 1;
                        break;
                    }
                    Some(',') => *at += 1,
                    None => break,
                    _ => {
                        let before = *at;
                        parse_tree(chars, at, prefix, out);
                        if *at == before {
                            *at += 1;
                        }
                    }
                }
            }
            break;
        }
        let ident: String = chars[*at..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect();
        if ident.is_empty() {
            out.push(prefix.clone());
            break;
        }
        *at += ident.chars().count();
        prefix.push(ident);
        if chars.get(*at) == Some(&':') && chars.get(*at + 1) == Some(&':') {
            *at += 2;
        } else {
            out.push(prefix.clone());
            break;
        }
    }
    prefix.truncate(start_len);
}

fn skip_space(chars: &[char], at: &mut usize) {
    while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
        *at += 1;
    }
}

/// The longest known module that prefixes `path`.
fn resolve(modules: &BTreeSet<String>, path: &[String]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// The strongly connected groups of more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                group.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}
