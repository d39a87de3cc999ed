//! The runtime's layers: which top-level module of `modal-runtime/src` may import which, read
//! from every `crate::`, `super::` and `self::` path in the sources (macro bodies included),
//! and the module and file graphs checked for cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The layers, lowest first. A module may import modules of lower layers; within a layer only
/// where the layer says so.
pub(crate) const LAYERS: &[Layer] = &[
    Layer {
        name: "ground",
        modules: &[
            "alloc_tuning",
            "app",
            "binhash",
            "codec",
            "credentials",
            "error",
            "gpu",
            "ids",
            "images",
            "model",
            "paths",
            "payloads",
            "registry",
            "task_env",
            "telemetry",
        ],
        sideways: true,
    },
    Layer {
        name: "wire",
        modules: &["wire"],
        sideways: false,
    },
    Layer {
        name: "roles",
        modules: &["client", "container", "server", "worker"],
        sideways: false,
    },
    Layer {
        name: "assembly",
        modules: &["cli", "embedded"],
        sideways: false,
    },
    Layer {
        name: "door",
        modules: &["__private"],
        sideways: false,
    },
];

/// One layer of the table.
pub(crate) struct Layer {
    pub(crate) name: &'static str,
    pub(crate) modules: &'static [&'static str],
    /// Whether its modules may import each other (still without cycles).
    pub(crate) sideways: bool,
}

fn layer_of(module: &str) -> Option<(usize, &'static Layer)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, l)| l.modules.contains(&module))
}

/// A module path inside the crate (`[]` is the crate root).
type ModPath = Vec<String>;

/// The module path a source file defines (`None` for files that are not modules of the library).
fn module_of(rel: &str) -> Option<ModPath> {
    let rel = rel.strip_suffix(".rs")?;
    if rel.starts_with("bin/") {
        return None;
    }
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    match parts.last().map(String::as_str) {
        Some("lib") if parts.len() == 1 => return Some(Vec::new()),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    // `lib.rs` mounts `private.rs` as `__private` with `#[path]`.
    if parts == ["private"] {
        return Some(vec!["__private".to_owned()]);
    }
    Some(parts)
}

/// Every path the tokens name that starts with `crate`, `super` or `self`, resolved against
/// `module`, with use-trees (`crate::a::{b, c::d}`) expanded; inline `mod x { … }` blocks are
/// scanned as the modules they are.
fn paths(tokens: TokenStream, module: &ModPath, out: &mut Vec<ModPath>) {
    let toks: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            TokenTree::Ident(id) if id == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(g))) =
                    (toks.get(i + 1), toks.get(i + 2))
                    && g.delimiter() == Delimiter::Brace
                {
                    let mut inner = module.clone();
                    inner.push(name.to_string());
                    paths(g.stream(), &inner, out);
                    i += 3;
                    continue;
                }
            }
            TokenTree::Ident(id) if id == "crate" || id == "super" || id == "self" => {
                let preceded_by_colons =
                    i >= 1 && matches!(&toks[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
                if !preceded_by_colons && is_path_sep(&toks, i + 1) {
                    let base = match id.to_string().as_str() {
                        "crate" => Vec::new(),
                        "self" => module.clone(),
                        _ => module[..module.len().saturating_sub(1)].to_vec(),
                    };
                    i = use_tree(&toks, i + 1, base, out);
                    continue;
                }
            }
            TokenTree::Group(g) => paths(g.stream(), module, out),
            _ => {}
        }
        i += 1;
    }
}

fn is_path_sep(toks: &[TokenTree], i: usize) -> bool {
    matches!((toks.get(i), toks.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':')
}

/// Reads `::seg::seg…` (and a trailing `{…}` use-group) from `i`; returns where it stopped.
fn use_tree(toks: &[TokenTree], mut i: usize, mut path: ModPath, out: &mut Vec<ModPath>) -> usize {
    while is_path_sep(toks, i) {
        match toks.get(i + 2) {
            Some(TokenTree::Ident(seg)) => {
                let seg = seg.to_string();
                if seg == "super" {
                    path.pop();
                } else {
                    path.push(seg);
                }
                i += 3;
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                for branch in split_commas(g.stream()) {
                    let branch: Vec<TokenTree> = branch.into_iter().collect();
                    match branch.first() {
                        Some(TokenTree::Ident(first)) if first != "self" => {
                            let mut p = path.clone();
                            p.push(first.to_string());
                            use_tree(&branch, 1, p, out);
                        }
                        _ => out.push(path.clone()),
                    }
                }
                return i + 3;
            }
            _ => break,
        }
    }
    out.push(path);
    i
}

fn split_commas(stream: TokenStream) -> Vec<TokenStream> {
    let mut parts = vec![Vec::new()];
    for t in stream {
        match &t {
            TokenTree::Punct(p) if p.as_char() == ',' => parts.push(Vec::new()),
            _ => {
                if let Some(last) = parts.last_mut() {
                    last.push(t);
                }
            }
        }
    }
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.into_iter().collect())
        .collect()
}

/// The import graph of a crate's sources.
pub(crate) struct Graph {
    /// File → files it imports from (relative to the source root).
    pub(crate) files: BTreeMap<String, BTreeSet<String>>,
    /// Paths through the crate root's re-exports (`crate::Error`), which hide the real edge.
    pub(crate) via_root: Vec<(String, String)>,
}

/// Reads every `.rs` file under `src` (given as relative path → text).
pub(crate) fn graph(sources: &BTreeMap<String, String>) -> Result<Graph> {
    let modules: BTreeMap<ModPath, String> = sources
        .keys()
        .filter_map(|rel| module_of(rel).map(|m| (m, rel.clone())))
        .collect();
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut via_root = Vec::new();
    for (rel, text) in sources {
        let Some(module) = module_of(rel) else {
            continue;
        };
        let tokens = TokenStream::from_str(text)
            .map_err(|e| anyhow::anyhow!("{rel}: cannot tokenize: {e}"))?;
        let mut found = Vec::new();
        paths(tokens, &module, &mut found);
        let edges = files.entry(rel.clone()).or_default();
        for p in found {
            // The longest prefix of the path that is a module file.
            let target = (0..=p.len())
                .rev()
                .find_map(|n| modules.get(&p[..n]).map(|f| (n, f)));
            let Some((n, target)) = target else { continue };
            if n == 0 && !p.is_empty() && !module.is_empty() {
                via_root.push((rel.clone(), p.join("::")));
                continue;
            }
            // A module may name its own descendants (it declares and re-exports them).
            let is_descendant = p.len() > module.len() && p[..module.len()] == module[..];
            if target != rel && n > 0 && !is_descendant {
                edges.insert(target.clone());
            }
        }
    }
    Ok(Graph { files, via_root })
}

fn top(rel: &str) -> String {
    match module_of(rel) {
        Some(m) if !m.is_empty() => m[0].clone(),
        _ => String::new(),
    }
}

/// Strongly connected components with more than one node.
pub(crate) fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// Every problem with the layering of the sources under `src`.
pub(crate) fn problems(sources: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let g = graph(sources)?;
    let mut out = Vec::new();
    for (file, path) in &g.via_root {
        out.push(format!(
            "{file}: names `crate::{path}` through the crate root's re-exports; name the module that defines it"
        ));
    }
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, targets) in &g.files {
        let from = top(file);
        for t in targets {
            let to = top(t);
            if from.is_empty() || from == to {
                continue;
            }
            modules.entry(from.clone()).or_default().insert(to.clone());
            let (Some((lf, layer)), Some((lt, _))) = (layer_of(&from), layer_of(&to)) else {
                for m in [&from, &to] {
                    if layer_of(m).is_none() {
                        out.push(format!(
                            "{file}: module `{m}` is in no layer: add it to the table in xtask/src/layers.rs"
                        ));
                    }
                }
                continue;
            };
            if lt > lf {
                out.push(format!(
                    "{file}: `{from}` ({}) imports `{to}` ({}), a layer above it",
                    layer.name, LAYERS[lt].name
                ));
            } else if lt == lf && !layer.sideways {
                out.push(format!(
                    "{file}: `{from}` imports `{to}`: modules of the {} layer never import each other",
                    layer.name
                ));
            }
        }
    }
    for c in cycles(&modules) {
        out.push(format!("module cycle: {}", c.join(" → ")));
    }
    for c in cycles(&g.files) {
        out.push(format!("file cycle: {}", c.join(" ↔ ")));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads the `.rs` files under `dir`, keyed by their path relative to it.
pub(crate) fn read_sources(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = Vec::new();
    crate::tidy::rust_files(dir, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).with_context(|| format!("{}", f.display()))?;
        out.insert(rel, text);
    }
    if out.is_empty() {
        bail!("no sources under {}", dir.display());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn paths_expand_use_trees_and_resolve_super() {
        let mut out = Vec::new();
        let module = vec!["client".to_owned(), "run".to_owned()];
        let tokens = TokenStream::from_str(
            "use crate::{app::App, wire::{self, pb}}; use super::Client; fn f() { tracing::info!(\"{}\", crate::ids::new_id(\"x\")); }
             mod tests { use super::*; }",
        )
        .unwrap();
        paths(tokens, &module, &mut out);
        let got: Vec<String> = out.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            got,
            [
                "app::App",
                "wire",
                "wire::pb",
                "client::Client",
                "ids::new_id",
                "client::run"
            ]
        );
    }

    #[test]
    fn an_upward_import_is_named() {
        let src = sources(&[
            ("lib.rs", "mod app; mod client; mod server;"),
            ("app/mod.rs", "//! x\nuse crate::client::Client;"),
            ("client/mod.rs", "//! x\npub struct Client;"),
            ("server/mod.rs", "//! x\nuse crate::client::Client;"),
        ]);
        let p = problems(&src).unwrap();
        assert!(
            p.iter()
                .any(|m| m.contains("app/mod.rs: `app` (ground) imports `client` (roles)")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("server/mod.rs: `server` imports `client`")),
            "{p:#?}"
        );
    }

    #[test]
    fn cycles_and_root_reexports_are_found() {
        let src = sources(&[
            ("lib.rs", "mod codec; mod error; pub use error::Error;"),
            ("codec.rs", "//! x\nuse crate::error::Error;"),
            (
                "error.rs",
                "//! x\nuse crate::codec::decode; use crate::Error;",
            ),
        ]);
        let p = problems(&src).unwrap();
        assert!(
            p.iter().any(|m| m == "module cycle: codec → error"),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.contains("names `crate::Error`")),
            "{p:#?}"
        );
    }

    #[test]
    fn the_runtime_follows_its_layers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("modal-runtime/src");
        let p = problems(&read_sources(&root).unwrap()).unwrap();
        assert!(p.is_empty(), "{}", p.join("\n"));
    }
}
