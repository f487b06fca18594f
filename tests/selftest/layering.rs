//! The module graph points one way (docs/design/architecture.md): no two modules of the crate,
//! and no two files of one module, use each other, directly or around a longer circle.
//!
//! Read from the product code's own `crate::` and `super::` paths (`use` trees, inline paths
//! and doc-comment links; other comments and `#[cfg(test)]` modules left out). An edge between two files counts at
//! the level where their module paths part: `src/config/parse.rs` → `src/config/sweep.rs` is
//! an edge between the siblings `parse` and `sweep` of `config`; `src/gate/stats.rs` →
//! `src/record/metric.rs` one between the crate's modules `gate` and `record`. A module's own
//! file (`mod.rs`, `lib.rs`) is its front and takes part in no circle of its children; an item
//! it re-exports (`pub use child::Item`) counts as the child's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type ModPath = Vec<String>;

/// Where a path starts: the crate root, or `n` modules above the file's own.
#[derive(Debug, Clone, Copy)]
enum Start {
    Crate,
    Super(usize),
}

/// One edge between two children of a module, with the first place that made it.
#[derive(Debug)]
struct Evidence {
    file: String,
    path: String,
}

/// The module path of a file below `src/`: `config/parse.rs` is `config::parse`,
/// `config/mod.rs` is `config`, `lib.rs` the root; `main.rs` is another crate (`None`).
fn module_path(rel: &str) -> Option<ModPath> {
    let rel = rel.strip_suffix(".rs")?;
    if rel == "main" {
        return None;
    }
    if rel == "lib" {
        return Some(Vec::new());
    }
    let mut parts: ModPath = rel.split('/').map(str::to_string).collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    Some(parts)
}

/// The product part of a file: everything before its `#[cfg(test)]` module, without comments.
fn product_text(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        // A doc comment's paths are links rustdoc resolves: they count. Other comments do not.
        if let Some(doc) = t.strip_prefix("///").or_else(|| t.strip_prefix("//!")) {
            out.push_str(doc);
            out.push('\n');
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(strip_trailing_comment(line));
        out.push('\n');
    }
    out
}

/// `code // comment` → `code`, leaving a `//` inside a string (an URL) alone.
fn strip_trailing_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && b[i + 1] == b'/' => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

/// The paths of a `use` tree or an inline path from `b[*i]` on (just after `crate::`):
/// `{a::{self, B}, c}` gives `[a], [a, B], [c]`; `x::Y::<T>` gives `[x, Y]`.
fn tree(b: &[u8], i: &mut usize) -> Vec<ModPath> {
    skip_ws(b, i);
    if b.get(*i) == Some(&b'{') {
        *i += 1;
        let mut out = Vec::new();
        loop {
            skip_ws(b, i);
            match b.get(*i) {
                Some(b'}') => {
                    *i += 1;
                    break;
                }
                None => break,
                _ => {}
            }
            let before = *i;
            out.extend(tree(b, i));
            skip_ws(b, i);
            // `X as Y`: the alias names nothing new.
            if b[*i..].starts_with(b"as ") {
                *i += 3;
                skip_ws(b, i);
                while *i < b.len() && is_ident(b[*i]) {
                    *i += 1;
                }
                skip_ws(b, i);
            }
            match b.get(*i) {
                Some(b',') => *i += 1,
                Some(b'}') => {
                    *i += 1;
                    break;
                }
                _ if *i == before => break,
                _ => break,
            }
        }
        return out;
    }
    let start = *i;
    while *i < b.len() && is_ident(b[*i]) {
        *i += 1;
    }
    let id = String::from_utf8_lossy(&b[start..*i]).into_owned();
    if id.is_empty() {
        return vec![Vec::new()];
    }
    if b[*i..].starts_with(b"::") {
        *i += 2;
        return tree(b, i)
            .into_iter()
            .map(|rest| {
                let mut p = vec![id.clone()];
                p.extend(rest.into_iter().filter(|s| s != "self"));
                p
            })
            .collect();
    }
    vec![vec![id]]
}

/// Every `crate::…` and `super::…` path in `text`, with the text it was read from.
fn paths(text: &str) -> Vec<(Start, ModPath, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for (prefix, start) in [("crate::", Start::Crate), ("super::", Start::Super(1))] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix).map(|k| k + from) {
            from = at + prefix.len();
            let before = at.checked_sub(1).map(|k| b[k]);
            if before.is_some_and(|c| is_ident(c) || c == b':') {
                continue;
            }
            let mut i = from;
            let end_of_line = text[at..].find('\n').map_or(text.len(), |k| k + at);
            let shown = text[at..end_of_line].trim().to_string();
            for mut p in tree(b, &mut i) {
                let start = match start {
                    Start::Super(_) => {
                        let mut n = 1;
                        while p.first().map(String::as_str) == Some("super") {
                            p.remove(0);
                            n += 1;
                        }
                        Start::Super(n)
                    }
                    s => s,
                };
                out.push((start, p, shown.clone()));
            }
        }
    }
    out
}

/// Names a module's front file re-exports from its children: `pub use parse::{parse, X}` maps
/// `parse` and `X` to the child `parse`.
fn reexports(front: &str, children: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in front.split(';') {
        let s = stmt.trim();
        let Some(rest) = ["pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| s.strip_prefix(p))
        else {
            continue;
        };
        let rest = rest.strip_prefix("self::").unwrap_or(rest);
        let b = rest.as_bytes();
        let mut i = 0;
        for p in tree(b, &mut i) {
            if let (Some(child), Some(name)) = (p.first(), p.last())
                && p.len() >= 2
                && children.contains(child)
            {
                map.insert(name.clone(), child.clone());
            }
        }
    }
    map
}

/// The circles among the children of each module, as `module: a -> b -> a (evidence)` lines.
fn circles(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut modules: BTreeMap<ModPath, (String, String)> = BTreeMap::new();
    for (rel, text) in files {
        if let Some(m) = module_path(rel) {
            modules.insert(m, (rel.clone(), product_text(text)));
        }
    }
    let children_of = |m: &ModPath| -> BTreeSet<String> {
        modules
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
            .map(|k| k[m.len()].clone())
            .collect()
    };
    let exports: BTreeMap<ModPath, BTreeMap<String, String>> = modules
        .iter()
        .map(|(m, (_, text))| (m.clone(), reexports(text, &children_of(m))))
        .collect();

    // (module, from child, to child) -> the first place that made the edge.
    let mut edges: BTreeMap<(ModPath, String, String), Evidence> = BTreeMap::new();
    for (from, (rel, text)) in &modules {
        for (start, segs, shown) in paths(text) {
            let mut cur: ModPath = match start {
                Start::Crate => Vec::new(),
                Start::Super(n) => {
                    let Some(keep) = from.len().checked_sub(n) else {
                        continue;
                    };
                    from[..keep].to_vec()
                }
            };
            let mut rest = segs.iter();
            for seg in rest.by_ref() {
                let mut next = cur.clone();
                next.push(seg.clone());
                if modules.contains_key(&next) {
                    cur = next;
                } else {
                    if let Some(child) = exports.get(&cur).and_then(|e| e.get(seg)) {
                        cur.push(child.clone());
                    }
                    break;
                }
            }
            let to = cur;
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // A module's front file, or a path into the file's own module or one below it,
            // is no edge between siblings.
            if common == from.len() || common == to.len() {
                continue;
            }
            let key = (
                from[..common].to_vec(),
                from[common].clone(),
                to[common].clone(),
            );
            edges.entry(key).or_insert_with(|| Evidence {
                file: format!("src/{rel}"),
                path: shown,
            });
        }
    }

    let mut graphs: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, a, b) in edges.keys() {
        graphs
            .entry(module.clone())
            .or_default()
            .entry(a.clone())
            .or_default()
            .insert(b.clone());
    }
    let mut found = Vec::new();
    for (module, graph) in &graphs {
        for cycle in find_cycles(graph) {
            let name = if module.is_empty() {
                "the crate".to_string()
            } else {
                module.join("::")
            };
            let why: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let e = &edges[&(module.clone(), w[0].clone(), w[1].clone())];
                    format!("{} -> {}: {} has `{}`", w[0], w[1], e.file, e.path)
                })
                .collect();
            found.push(format!(
                "{name}: {} ({})",
                cycle.join(" -> "),
                why.join("; ")
            ));
        }
    }
    found
}

/// One circle through each strongly connected part of `graph` that has one (a depth-first
/// search; a back edge closes a circle).
fn find_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(at) = stack.iter().position(|s| s == next) {
                let mut cycle = stack[at..].to_vec();
                cycle.push(next.clone());
                out.push(cycle);
            } else if !done.contains(next) {
                visit(next, graph, done, stack, out);
            }
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for node in graph.keys() {
        if !done.contains(node) {
            visit(node, graph, &mut done, &mut Vec::new(), &mut out);
        }
    }
    out
}

fn read_tree(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            read_tree(&path, &rel, out);
        } else if name.ends_with(".rs") {
            out.insert(rel, std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn the_module_graph_has_no_circles() {
    let mut files = BTreeMap::new();
    read_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut files,
    );
    assert!(files.len() > 100, "read only {} files", files.len());
    let found = circles(&files);
    assert!(
        found.is_empty(),
        "the module graph has circles:\n{}",
        found.join("\n")
    );
}

/// DESIGN.md's "only places": the runner is the only module that starts processes, the
/// history the only one that talks to SQLite, the serve client the only one that speaks
/// HTTP/gRPC to a server (product code; comments and test modules left out).
#[test]
fn processes_sqlite_and_http_each_have_one_home() {
    let mut files = BTreeMap::new();
    read_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut files,
    );
    for (what, needles, home) in [
        ("starts a process", &["Command::new"][..], "runner/"),
        ("talks to SQLite", &["rusqlite"][..], "history/"),
        (
            "speaks HTTP/gRPC",
            &["reqwest", "tonic::", "hyper::"][..],
            "serve/",
        ),
    ] {
        let outside: Vec<&String> = files
            .iter()
            .filter(|(rel, text)| {
                !rel.starts_with(home) && {
                    let code = product_text(text);
                    needles.iter().any(|n| code.contains(n))
                }
            })
            .map(|(rel, _)| rel)
            .collect();
        assert!(
            outside.is_empty(),
            "only src/{home} {what}, but so do: {outside:?}"
        );
    }
}

#[test]
fn the_checker_finds_circles_between_modules_and_between_siblings() {
    let tree = |files: &[(&str, &str)]| -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    };
    // Two crate modules using each other, one through a `use` group, one inline.
    let found = circles(&tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a/mod.rs", "mod x;\nuse crate::b::{self, Thing};\n"),
        ("a/x.rs", "fn f() { crate::b::g(); }\n"),
        ("b.rs", "fn g() -> u8 { crate::a::X }\n"),
    ]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("the crate: a -> b -> a"), "{found:?}");
    // Siblings: one names the other, the other reaches it through the front's re-export.
    let found = circles(&tree(&[
        ("lib.rs", "pub mod c;\n"),
        (
            "c/mod.rs",
            "mod p;\nmod q;\npub use p::{parse, Name as N};\n",
        ),
        ("c/p.rs", "use super::q::helper;\n"),
        ("c/q.rs", "fn h() { super::parse(\"x\"); }\n"),
    ]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("c: p -> q -> p"), "{found:?}");
    // Children using their front, the front re-exporting them, `super::super` into another
    // module, and paths in plain comments and in the test module (which would close a circle
    // `p -> q -> p` if they counted): no circle.
    let found = circles(&tree(&[
        ("lib.rs", "pub mod c;\npub mod d;\n"),
        (
            "c/mod.rs",
            "mod p;\nmod q;\npub use p::Thing;\npub struct Base;\n",
        ),
        (
            "c/p.rs",
            "use super::Base; // super::q::x\n// see super::q::y\nfn u() { let s = \"http://x\"; }\n\
             fn v() { super::super::d::w(); }\n#[cfg(test)]\nmod tests { use super::super::q::*; }\n",
        ),
        ("c/q.rs", "use super::{Base, p::Thing};\n"),
        ("d.rs", "fn w() {}\n"),
    ]));
    assert!(found.is_empty(), "{found:?}");
    // A doc comment's link is a path rustdoc resolves: it closes a circle like code does.
    let found = circles(&tree(&[
        ("lib.rs", "pub mod c;\npub mod d;\n"),
        ("c.rs", "//! Loaded by [`crate::d::load`].\npub struct T;\n"),
        ("d.rs", "pub fn load() -> crate::c::T { crate::c::T }\n"),
    ]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("the crate: c -> d -> c"), "{found:?}");
}
