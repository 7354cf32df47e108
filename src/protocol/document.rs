//! TESTS ONLY: `docs/protocol.md` held to the types of the method table.
//!
//! The document describes each method's members in tables whose header names the method and
//! the side, `` | `admin.agent_csr` params | ... | `` or `` | `payment.status` result | ... | ``
//! (one table may name several methods). Each row's first cell holds the members it describes
//! as backticked paths: `key.kid` for a member of a member (which documents `key` too),
//! `hashes[]` for the elements of a list, `daemon_keys.*` for every value of a map keyed by
//! data. A row whose first cell also
//! links an object described once for several methods (`` `agents[]` [agent view](#agent-view) ``,
//! or the link alone for the whole result) says that the members there are that object's, whose
//! own table's header is its name (`| agent view | ... |`).
//!
//! The test serializes the samples of every params and result type ([`super::sample`]) and
//! compares the members it finds with the documented ones, both ways: a member the document
//! does not describe fails, and so does a documented member the type does not have. It looks
//! into a member's members only where the document describes some of them, so formats
//! documented elsewhere (a JWK, a constraint, key attributes) are members here, not trees.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use super::method::{Call, VisitCall, visit_calls};
use super::sample::Sample;
use super::{ErrorCode, Method};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const DOCUMENT: &str = include_str!("../../docs/protocol.md");

/// What a table says about the members at each documented path: `Some(anchor)` where they are
/// a shared object's.
type Members = BTreeMap<String, Option<String>>;

/// The member tables of the document.
#[derive(Debug, Default)]
struct Document {
    /// By method and side (`params` or `result`).
    methods: BTreeMap<(String, String), Members>,
    /// Shared objects by anchor (`agent-view`).
    objects: BTreeMap<String, Members>,
    /// Methods named in a `###` heading.
    headed: BTreeSet<String>,
}

/// The anchor a heading gets: lower case, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading.trim().to_lowercase().replace(' ', "-")
}

/// The backticked words of `text`.
fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// The paths a row's first cell documents, and the shared object it links, if any.
fn row(cell: &str) -> (Vec<String>, Option<String>) {
    let paths = backticked(cell).map(str::to_string).collect();
    let object = cell
        .split_once("](#")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(a, _)| a.to_string());
    (paths, object)
}

fn parse(text: &str) -> Document {
    let mut doc = Document::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        if let Some(heading) = line.strip_prefix("### ") {
            doc.headed.extend(backticked(heading).map(str::to_string));
        }
        if !line.starts_with('|') {
            i += 1;
            continue;
        }
        let table: Vec<Vec<&str>> = lines[i..]
            .iter()
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .collect();
        i += table.len();
        let header = table[0][0];
        let mut members = Members::new();
        for cells in table.iter().skip(2) {
            let (paths, object) = row(cells[0]);
            if paths.is_empty() && object.is_some() {
                members.insert(String::new(), object.clone());
            }
            for p in paths {
                members.insert(p, object.clone());
            }
        }
        let side = ["params", "result"]
            .into_iter()
            .find(|s| header.ends_with(&format!(" {s}")));
        match side {
            Some(side) => {
                for method in backticked(header) {
                    let previous = doc
                        .methods
                        .insert((method.to_string(), side.to_string()), members.clone());
                    assert!(previous.is_none(), "two {side} tables for {method}");
                }
            }
            None => {
                doc.objects.insert(anchor(header), members);
            }
        }
    }
    doc
}

/// `parent.key`, or `key` at the root.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Compares `value` with the documented `members`; pushes what disagrees onto `problems`.
fn compare(
    value: &Value,
    members: &Members,
    doc: &Document,
    what: &str,
    problems: &mut Vec<String>,
) {
    let mut found = BTreeSet::new();
    walk(value, "", members, doc, what, &mut found, problems);
    // A member whose members are documented is documented by them.
    let documented = |path: &String| {
        members.contains_key(path)
            || members
                .keys()
                .any(|p| p.starts_with(&format!("{path}.")) || p.starts_with(&format!("{path}[")))
    };
    for path in found.iter().filter(|p| !documented(p)) {
        problems.push(format!("{what}: `{path}` is not documented"));
    }
    let documented = members.keys().filter(|p| !p.is_empty());
    for path in documented.filter(|p| !found.contains(*p)) {
        problems.push(format!("{what}: documented `{path}` is not a member"));
    }
}

fn walk(
    value: &Value,
    at: &str,
    members: &Members,
    doc: &Document,
    what: &str,
    found: &mut BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    if let Some(Some(object)) = members.get(at) {
        match doc.objects.get(object) {
            Some(inner) => compare(
                value,
                inner,
                doc,
                &format!("{what} `{at}` ({object})"),
                problems,
            ),
            None => problems.push(format!("{what}: no table for the object #{object}")),
        }
        return;
    }
    let described = |child: &str| members.keys().any(|p| p.starts_with(child));
    match value {
        Value::Object(map) => {
            let every = join(at, "*");
            for (key, child) in map {
                let path = if described(&every) {
                    every.clone()
                } else {
                    join(at, key)
                };
                if at.is_empty() || described(&format!("{at}.")) {
                    found.insert(path.clone());
                    walk(child, &path, members, doc, what, found, problems);
                }
            }
        }
        Value::Array(items) => {
            let path = format!("{at}[]");
            if described(&path) {
                found.insert(path.clone());
                for item in items {
                    walk(item, &path, members, doc, what, found, problems);
                }
            }
        }
        _ => {}
    }
}

/// Adds the members of `from` to `into`, at every depth.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// Checks each method's params and result samples against the document.
struct Check<'a> {
    doc: &'a Document,
    problems: Vec<String>,
}

impl Check<'_> {
    fn side<T: Sample + serde::Serialize>(&mut self, method: Method, side: &str) {
        let none = Members::new();
        let members = self
            .doc
            .methods
            .get(&(method.name().to_string(), side.to_string()))
            .unwrap_or(&none);
        // The members of every sample together: an enum's variants each show theirs.
        let mut all = Value::Object(serde_json::Map::new());
        for sample in T::samples() {
            let value = serde_json::to_value(sample).unwrap();
            assert!(
                value.is_object(),
                "{} {side} is not an object",
                method.name()
            );
            merge(&mut all, value);
        }
        let what = format!("{} {side}", method.name());
        compare(&all, members, self.doc, &what, &mut self.problems);
    }
}

impl VisitCall for Check<'_> {
    fn visit<C>(&mut self)
    where
        C: Call,
        C::Params: Sample,
        C::Result: Sample,
    {
        if !self.doc.headed.contains(C::METHOD.name()) {
            self.problems
                .push(format!("no `###` section for {}", C::METHOD.name()));
        }
        self.side::<C::Params>(C::METHOD, "params");
        self.side::<C::Result>(C::METHOD, "result");
    }
}

/// Every disagreement between `text` and the types.
fn problems(text: &str) -> Vec<String> {
    let doc = parse(text);
    let mut check = Check {
        doc: &doc,
        problems: Vec::new(),
    };
    visit_calls(&mut check);
    let mut problems = check.problems;
    for (method, side) in doc.methods.keys() {
        if Method::from_name(method).is_none() {
            problems.push(format!("a {side} table for {method}, which is no method"));
        }
    }
    problems
}

#[test]
fn every_method_and_member_is_documented_as_the_types_have_it() {
    let problems = problems(DOCUMENT);
    assert!(
        problems.is_empty(),
        "docs/protocol.md disagrees with the protocol's types:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_renamed_member_is_caught() {
    let renamed = DOCUMENT.replace("| `log_index` |", "| `log_idx` |");
    assert!(
        renamed != DOCUMENT,
        "the document has no `log_index` row to rename"
    );
    let problems = problems(&renamed);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`log_idx` is not a member"))
            && problems
                .iter()
                .any(|p| p.contains("`log_index` is not documented")),
        "{problems:?}"
    );
}

#[test]
fn every_error_code_has_its_row() {
    for c in ErrorCode::ALL {
        let row = format!(
            "| {} | `{}` | {} |",
            c.code(),
            c.reason(),
            if c.retryable() { "yes" } else { "no" }
        );
        assert!(
            DOCUMENT.contains(&row),
            "docs/protocol.md lacks the row for {c:?}: {row}"
        );
    }
}
