//! `udev/60-arid.rules`, checked twice: (a) by a strict parser here that knows the keys and
//! operators of udev(7) and this project's policy (groups, modes, sourced USB ids, GOTO/LABEL),
//! and (b) by the real udev: `udevadm verify` where it exists (systemd 253 and later), otherwise
//! `udevadm test` in a private mount namespace that sees only our file besides the system's own
//! rules. Both checkers are also fed broken rules, to show that they can fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RULES_NAME: &str = "60-arid.rules";

fn rules_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("udev")
        .join(RULES_NAME)
}

fn rules_text() -> String {
    std::fs::read_to_string(rules_path()).unwrap()
}

/// The USB devices the rules open to the group `arid`: vendor id, product id, device. Each one
/// also needs an "Id from <repository> <path>" comment above its rule in the file.
const USB_HSMS: &[(&str, &str, &str)] = &[
    ("1050", "0030", "Yubico YubiHSM 2"),
    ("20a0", "4230", "Nitrokey HSM / HSM 2"),
    ("04e6", "5817", "CardContact SmartCard-HSM USB token"),
];

// ------------------------------------------------------------------------------------------
// (a) The structural parser.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `==`
    Match,
    /// `!=`
    NoMatch,
    /// `=`
    Assign,
    /// `+=`
    Add,
    /// `-=`
    Remove,
    /// `:=`
    Final,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Match => "==",
            Op::NoMatch => "!=",
            Op::Assign => "=",
            Op::Add => "+=",
            Op::Remove => "-=",
            Op::Final => ":=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attr {
    Forbidden,
    Required,
    Optional,
}

use Op::{Add, Assign, Final, Match, NoMatch, Remove};

/// Every key udev(7) documents (systemd 252), whether it takes `{attr}`, and the operators it
/// accepts. Where udev would only warn about an operator and use another one instead (for
/// example `GROUP+=` becomes `GROUP=`), the operator is left out: this file has no reason to
/// rely on udev's second guess.
const KEYS: &[(&str, Attr, &[Op])] = &[
    ("ACTION", Attr::Forbidden, &[Match, NoMatch]),
    ("DEVPATH", Attr::Forbidden, &[Match, NoMatch]),
    ("KERNEL", Attr::Forbidden, &[Match, NoMatch]),
    ("KERNELS", Attr::Forbidden, &[Match, NoMatch]),
    ("SUBSYSTEM", Attr::Forbidden, &[Match, NoMatch]),
    ("SUBSYSTEMS", Attr::Forbidden, &[Match, NoMatch]),
    ("DRIVER", Attr::Forbidden, &[Match, NoMatch]),
    ("DRIVERS", Attr::Forbidden, &[Match, NoMatch]),
    ("ATTRS", Attr::Required, &[Match, NoMatch]),
    ("CONST", Attr::Required, &[Match, NoMatch]),
    ("TAGS", Attr::Forbidden, &[Match, NoMatch]),
    ("TEST", Attr::Optional, &[Match, NoMatch]),
    ("RESULT", Attr::Forbidden, &[Match, NoMatch]),
    (
        "PROGRAM",
        Attr::Forbidden,
        &[Match, NoMatch, Assign, Add, Final],
    ),
    (
        "IMPORT",
        Attr::Required,
        &[Match, NoMatch, Assign, Add, Final],
    ),
    ("NAME", Attr::Forbidden, &[Match, NoMatch, Assign, Final]),
    (
        "SYMLINK",
        Attr::Forbidden,
        &[Match, NoMatch, Assign, Add, Remove, Final],
    ),
    (
        "TAG",
        Attr::Forbidden,
        &[Match, NoMatch, Assign, Add, Remove, Final],
    ),
    ("ATTR", Attr::Required, &[Match, NoMatch, Assign]),
    ("SYSCTL", Attr::Required, &[Match, NoMatch, Assign]),
    ("ENV", Attr::Required, &[Match, NoMatch, Assign, Add]),
    ("OWNER", Attr::Forbidden, &[Assign, Final]),
    ("GROUP", Attr::Forbidden, &[Assign, Final]),
    ("MODE", Attr::Forbidden, &[Assign, Final]),
    ("SECLABEL", Attr::Required, &[Assign, Add]),
    ("RUN", Attr::Optional, &[Assign, Add, Final]),
    ("OPTIONS", Attr::Forbidden, &[Assign, Add]),
    ("LABEL", Attr::Forbidden, &[Assign]),
    ("GOTO", Attr::Forbidden, &[Assign]),
];

/// The groups the daemon is in (primary `arid`, supplementary `tss`).
const GROUPS: &[&str] = &["arid", "tss"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pair {
    key: String,
    attr: Option<String>,
    op: Op,
    value: String,
}

#[derive(Debug, Clone)]
struct Rule {
    /// 1-based line number in the file.
    line: usize,
    pairs: Vec<Pair>,
    /// The comment lines directly above the rule (no blank line in between).
    comment: Vec<String>,
}

impl Rule {
    fn find(&self, key: &str, attr: Option<&str>) -> Option<&Pair> {
        self.pairs
            .iter()
            .find(|p| p.key == key && p.attr.as_deref() == attr)
    }

    fn is(&self, key: &str, attr: Option<&str>, op: Op, value: &str) -> bool {
        self.find(key, attr)
            .is_some_and(|p| p.op == op && p.value == value)
    }

    fn label(&self) -> Option<&str> {
        self.find("LABEL", None).map(|p| p.value.as_str())
    }

    fn goto(&self) -> Option<&str> {
        self.find("GOTO", None).map(|p| p.value.as_str())
    }
}

/// One line of `KEY[{attr}]OP"value"` pairs, separated by a comma and optional blanks.
fn parse_line(line: &str) -> Result<Vec<Pair>, String> {
    let mut pairs = Vec::new();
    let mut rest = line.trim();
    loop {
        let key_len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(rest.len());
        if key_len == 0 {
            return Err(format!("expected an upper-case key at `{rest}`"));
        }
        let key = &rest[..key_len];
        rest = &rest[key_len..];
        let attr = match rest.strip_prefix('{') {
            Some(inner) => {
                let end = inner
                    .find('}')
                    .ok_or_else(|| format!("{key}: `{{` without `}}`"))?;
                let attr = &inner[..end];
                if attr.is_empty() || attr.chars().any(|c| c.is_whitespace() || c == '"') {
                    return Err(format!("{key}: bad attribute name `{attr}`"));
                }
                rest = &inner[end + 1..];
                Some(attr.to_string())
            }
            None => None,
        };
        let (op, after) = [
            ("==", Match),
            ("!=", NoMatch),
            ("+=", Add),
            ("-=", Remove),
            (":=", Final),
            ("=", Assign),
        ]
        .into_iter()
        .find_map(|(text, op)| rest.strip_prefix(text).map(|r| (op, r)))
        .ok_or_else(|| format!("{key}: expected an operator right after the key at `{rest}`"))?;
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| format!("{key}: the value must be a double-quoted string"))?;
        // The value ends at the first `"` not preceded by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = end.ok_or_else(|| format!("{key}: unterminated value"))?;
        pairs.push(Pair {
            key: key.to_string(),
            attr,
            op,
            value: body[..end].to_string(),
        });
        rest = &body[end + 1..];
        if rest.trim().is_empty() {
            return Ok(pairs);
        }
        rest = rest
            .strip_prefix(',')
            .ok_or_else(|| format!("{key}: expected `,` after the value, found `{rest}`"))?
            .trim_start();
        if rest.is_empty() {
            return Err("trailing comma".into());
        }
    }
}

/// Splits the file into rules (with the comment block above each), or returns every syntax error.
fn parse(text: &str) -> Result<Vec<Rule>, Vec<String>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut comment = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            comment.clear();
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            comment.push(c.trim().to_string());
            continue;
        }
        if line.ends_with('\\') {
            errors.push(format!(
                "line {}: no line continuations in this file",
                i + 1
            ));
        }
        match parse_line(line) {
            Ok(pairs) => rules.push(Rule {
                line: i + 1,
                pairs,
                comment: std::mem::take(&mut comment),
            }),
            Err(e) => errors.push(format!("line {}: {e}", i + 1)),
        }
        comment.clear();
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn is_usb_id(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Everything that holds for any rules file of this project: keys and operators as udev(7)
/// documents them, GOTO/LABEL pairing, octal modes without access for others, only the daemon's
/// groups, USB ids as 4 lower-case hex digits and always as a vendor+product pair.
fn lint(text: &str) -> Result<Vec<Rule>, Vec<String>> {
    let rules = parse(text)?;
    let mut errors = Vec::new();
    let specs: BTreeMap<&str, (Attr, &[Op])> =
        KEYS.iter().map(|&(k, a, ops)| (k, (a, ops))).collect();

    for rule in &rules {
        let at = format!("line {}", rule.line);
        for p in &rule.pairs {
            let Some(&(attr_rule, ops)) = specs.get(p.key.as_str()) else {
                errors.push(format!("{at}: unknown key {}", p.key));
                continue;
            };
            match (attr_rule, &p.attr) {
                (Attr::Forbidden, Some(a)) => {
                    errors.push(format!("{at}: {} takes no attribute, got {{{a}}}", p.key))
                }
                (Attr::Required, None) => {
                    errors.push(format!("{at}: {} needs an attribute {{...}}", p.key))
                }
                _ => {}
            }
            if !ops.contains(&p.op) {
                errors.push(format!(
                    "{at}: operator {} is not valid for {}",
                    p.op.text(),
                    p.key
                ));
            }
        }
        if rule.label().is_some() && rule.pairs.len() != 1 {
            errors.push(format!("{at}: LABEL stands on a line of its own"));
        }
        if let Some(mode) = rule.find("MODE", None) {
            let v = &mode.value;
            if !(3..=4).contains(&v.len()) || !v.bytes().all(|b| matches!(b, b'0'..=b'7')) {
                errors.push(format!("{at}: MODE \"{v}\" is not an octal mode"));
            } else if !v.ends_with('0') {
                errors.push(format!("{at}: MODE \"{v}\" gives access to every user"));
            }
        }
        if let Some(group) = rule.find("GROUP", None)
            && !GROUPS.contains(&group.value.as_str())
        {
            errors.push(format!(
                "{at}: GROUP \"{}\" is not one of {GROUPS:?}",
                group.value
            ));
        }
        for p in &rule.pairs {
            let Some(attr) = p.attr.as_deref() else {
                continue;
            };
            if !matches!(p.key.as_str(), "ATTR" | "ATTRS")
                || !matches!(attr, "idVendor" | "idProduct")
            {
                continue;
            }
            if !is_usb_id(&p.value) {
                errors.push(format!(
                    "{at}: {}{{{attr}}} \"{}\" is not 4 lower-case hex digits",
                    p.key, p.value
                ));
            }
            if p.op != Match {
                errors.push(format!("{at}: {}{{{attr}}} must be matched with ==", p.key));
            }
            let other = if attr == "idVendor" {
                "idProduct"
            } else {
                "idVendor"
            };
            if rule.find(&p.key, Some(other)).is_none() {
                errors.push(format!(
                    "{at}: {}{{{attr}}} without {}{{{other}}}",
                    p.key, p.key
                ));
            }
        }
    }

    // Every GOTO jumps forward to a LABEL; every LABEL is used, and only once defined.
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    for rule in &rules {
        if let Some(l) = rule.label()
            && labels.insert(l, rule.line).is_some()
        {
            errors.push(format!("line {}: LABEL \"{l}\" defined twice", rule.line));
        }
    }
    let mut used = BTreeSet::new();
    for rule in &rules {
        if let Some(target) = rule.goto() {
            used.insert(target);
            match labels.get(target) {
                None => errors.push(format!(
                    "line {}: GOTO \"{target}\" has no LABEL",
                    rule.line
                )),
                Some(&l) if l < rule.line => errors.push(format!(
                    "line {}: GOTO \"{target}\" jumps backwards (LABEL on line {l})",
                    rule.line
                )),
                Some(_) => {}
            }
        }
    }
    for (l, line) in &labels {
        if !used.contains(l) {
            errors.push(format!("line {line}: LABEL \"{l}\" is never jumped to"));
        }
    }

    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// What this particular file has to do: only act on add/change, TPM access through the resource
/// manager only, USB grants only on whole USB devices from the sourced list, each with its source.
fn policy(rules: &[Rule]) -> Vec<String> {
    let mut errors = Vec::new();
    let (Some(first), Some(last)) = (rules.first(), rules.last()) else {
        return vec!["no rules".into()];
    };
    let end = last.label().unwrap_or("");
    if !(first.is("ACTION", None, NoMatch, "add|change")
        && first.goto() == Some(end)
        && first.pairs.len() == 2)
    {
        errors.push(format!(
            "line {}: the first rule must be ACTION!=\"add|change\", GOTO=<the last LABEL>",
            first.line
        ));
    }

    // The raw TPM node is not touched; the resource manager goes to "tss".
    for rule in rules {
        if let Some(k) = rule.find("KERNEL", None)
            && k.value.starts_with("tpm")
            && !k.value.starts_with("tpmrm")
        {
            errors.push(format!(
                "line {}: rules for the raw TPM node ({}) are out of scope",
                rule.line, k.value
            ));
        }
        if rule.is("GROUP", None, Assign, "tss")
            && !(rule.is("KERNEL", None, Match, "tpmrm[0-9]*")
                && rule.is("SUBSYSTEM", None, Match, "tpmrm")
                && rule.is("MODE", None, Assign, "0660"))
        {
            errors.push(format!(
                "line {}: GROUP=\"tss\" belongs on SUBSYSTEM==\"tpmrm\", KERNEL==\"tpmrm[0-9]*\" \
                 with MODE=\"0660\"",
                rule.line
            ));
        }
    }
    if !rules.iter().any(|r| r.is("GROUP", None, Assign, "tss")) {
        errors.push("no rule gives /dev/tpmrm* to the group tss".into());
    }

    // USB grants: behind the two gates that keep them to whole USB devices.
    let gate = |key: &str, attr: Option<&str>, value: &str| {
        rules
            .iter()
            .find(|r| {
                r.is(key, attr, NoMatch, value) && r.goto() == Some(end) && r.pairs.len() == 2
            })
            .map(|r| r.line)
    };
    let usb_gate = gate("SUBSYSTEM", None, "usb");
    let devtype_gate = gate("ENV", Some("DEVTYPE"), "usb_device");
    let mut seen = BTreeSet::new();
    for rule in rules {
        let vendor = rule.find("ATTR", Some("idVendor"));
        let product = rule.find("ATTR", Some("idProduct"));
        let arid = rule.is("GROUP", None, Assign, "arid");
        if rule.find("ATTRS", Some("idVendor")).is_some() {
            errors.push(format!(
                "line {}: match the device's own ATTR{{idVendor}}, not ATTRS of a parent",
                rule.line
            ));
        }
        if arid != vendor.is_some() {
            errors.push(format!(
                "line {}: GROUP=\"arid\" goes with ATTR{{idVendor}}/ATTR{{idProduct}} matches",
                rule.line
            ));
        }
        let (Some(vendor), Some(product)) = (vendor, product) else {
            continue;
        };
        if !rule.is("MODE", None, Assign, "0660") || rule.pairs.len() != 4 {
            errors.push(format!(
                "line {}: a USB rule is ATTR{{idVendor}}, ATTR{{idProduct}}, GROUP=\"arid\", \
                 MODE=\"0660\"",
                rule.line
            ));
        }
        for (name, gate_line) in [
            ("SUBSYSTEM!=\"usb\"", usb_gate),
            ("ENV{DEVTYPE}!=\"usb_device\"", devtype_gate),
        ] {
            if gate_line.is_none_or(|g| g >= rule.line) {
                errors.push(format!(
                    "line {}: USB rule not behind a {name} GOTO to the end",
                    rule.line
                ));
            }
        }
        if !rule.comment.iter().any(|c| c.starts_with("Id from ")) {
            errors.push(format!(
                "line {}: {}:{} has no \"Id from <repository> <path>\" comment above it",
                rule.line, vendor.value, product.value
            ));
        }
        if !seen.insert((vendor.value.clone(), product.value.clone())) {
            errors.push(format!(
                "line {}: {}:{} listed twice",
                rule.line, vendor.value, product.value
            ));
        }
    }
    let expected: BTreeSet<(String, String)> = USB_HSMS
        .iter()
        .map(|&(v, p, _)| (v.to_string(), p.to_string()))
        .collect();
    if seen != expected {
        errors.push(format!(
            "USB ids in the file {seen:?} differ from the sourced list {expected:?}"
        ));
    }
    errors
}

#[test]
fn rules_file_is_well_formed_and_follows_policy() {
    let text = rules_text();
    let rules = match lint(&text) {
        Ok(r) => r,
        Err(errors) => panic!("{RULES_NAME}:\n  {}", errors.join("\n  ")),
    };
    let errors = policy(&rules);
    assert!(
        errors.is_empty(),
        "{RULES_NAME}:\n  {}",
        errors.join("\n  ")
    );

    let pairs: usize = rules.iter().map(|r| r.pairs.len()).sum();
    let keys: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| &r.pairs)
        .map(|p| match &p.attr {
            Some(a) => format!("{}{{{a}}}{}", p.key, p.op.text()),
            None => format!("{}{}", p.key, p.op.text()),
        })
        .collect();
    println!(
        "(a) {}: {} rules, {pairs} KEY OP \"value\" pairs, all keys/operators valid per udev(7)",
        rules_path().display(),
        rules.len()
    );
    println!("    key/operator forms used: {keys:?}");
    for rule in &rules {
        if let Some(target) = rule.goto() {
            println!(
                "    line {}: GOTO \"{target}\" -> its LABEL further down",
                rule.line
            );
        }
        if let Some(g) = rule.find("GROUP", None) {
            let m = rule.find("MODE", None).map_or("-", |m| m.value.as_str());
            let what = match (
                rule.find("ATTR", Some("idVendor")),
                rule.find("ATTR", Some("idProduct")),
            ) {
                (Some(v), Some(p)) => {
                    let name = USB_HSMS
                        .iter()
                        .find(|h| h.0 == v.value && h.1 == p.value)
                        .map_or("?", |h| h.2);
                    format!("USB {}:{} ({name})", v.value, p.value)
                }
                _ => rule
                    .find("KERNEL", None)
                    .map_or("?".into(), |k| format!("KERNEL {}", k.value)),
            };
            println!(
                "    line {}: {what} -> GROUP \"{}\", MODE {m}",
                rule.line, g.value
            );
        }
    }
}

/// Each broken line must be caught, with exactly one complaint of the expected kind.
#[test]
fn parser_rejects_broken_rules() {
    let cases: &[(&str, &str)] = &[
        (
            r#"KERNEL="tpmrm[0-9]*", GROUP="tss""#,
            "operator = is not valid for KERNEL",
        ),
        (
            r#"KERNEL=="tpmrm[0-9]*", GROUP=="tss""#,
            "operator == is not valid for GROUP",
        ),
        (
            r#"KERNEL=="tpmrm[0-9]*", GROUP+="tss""#,
            "operator += is not valid for GROUP",
        ),
        (
            r#"KERNAL=="tpmrm[0-9]*", GROUP="tss""#,
            "unknown key KERNAL",
        ),
        (r#"ATTRS=="1050", GROUP="arid""#, "ATTRS needs an attribute"),
        (
            r#"KERNEL{x}=="tpmrm0", GROUP="tss""#,
            "KERNEL takes no attribute",
        ),
        (
            r#"KERNEL=="tpmrm[0-9]*" GROUP="tss""#,
            "expected `,` after the value",
        ),
        (r#"KERNEL=="tpmrm[0-9]*", GROUP="tss","#, "trailing comma"),
        (
            r#"KERNEL == "tpmrm[0-9]*""#,
            "expected an operator right after the key",
        ),
        (
            r#"KERNEL==tpmrm0, GROUP="tss""#,
            "must be a double-quoted string",
        ),
        (
            r#"KERNEL=="tpmrm[0-9]*, GROUP="tss""#,
            "expected `,` after the value",
        ),
        (r#"KERNEL=="tpmrm0\""#, "unterminated value"),
        (r#"kernel=="tpmrm0""#, "expected an upper-case key"),
        (
            r#"KERNEL=="tpmrm[0-9]*", MODE="0668""#,
            "is not an octal mode",
        ),
        (
            r#"KERNEL=="tpmrm[0-9]*", MODE="rw""#,
            "is not an octal mode",
        ),
        (
            r#"KERNEL=="tpmrm[0-9]*", MODE="0666""#,
            "gives access to every user",
        ),
        (r#"KERNEL=="tpmrm[0-9]*", GROUP="plugdev""#, "is not one of"),
        (
            r#"ATTR{idVendor}=="1A2B", ATTR{idProduct}=="0030", GROUP="arid""#,
            "is not 4 lower-case hex digits",
        ),
        (
            r#"ATTR{idVendor}=="1050", ATTR{idProduct}=="30", GROUP="arid""#,
            "is not 4 lower-case hex digits",
        ),
        (
            r#"ATTR{idVendor}=="1050", ATTR{idProduct}=="003*", GROUP="arid""#,
            "is not 4 lower-case hex digits",
        ),
        (
            r#"ATTR{idVendor}=="1050", ATTR{idProduct}!="0030", GROUP="arid""#,
            "must be matched with ==",
        ),
        (
            r#"ATTR{idVendor}=="1050", GROUP="arid""#,
            "without ATTR{idProduct}",
        ),
        (r#"KERNEL=="tpmrm[0-9]*", GOTO="nowhere""#, "has no LABEL"),
        (
            "LABEL=\"back\"\nKERNEL==\"tpmrm[0-9]*\", GOTO=\"back\"",
            "jumps backwards",
        ),
        (
            "KERNEL==\"tpmrm[0-9]*\", GOTO=\"end\"\nLABEL=\"end\"\nLABEL=\"end\"",
            "defined twice",
        ),
        ("LABEL=\"unused\"", "is never jumped to"),
        (
            "KERNEL==\"x\", GOTO=\"end\"\nLABEL=\"end\", GROUP=\"tss\"",
            "LABEL stands on a line of its own",
        ),
        (
            "KERNEL==\"tpmrm[0-9]*\", \\\n  GROUP=\"tss\"",
            "no line continuations",
        ),
    ];
    for (text, expected) in cases {
        let errors = match lint(text) {
            Ok(_) => panic!("accepted broken rules:\n{text}"),
            Err(e) => e,
        };
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{text}\n  expected an error containing {expected:?}, got {errors:?}"
        );
        // Broken continuation lines produce one error per physical line; the rest exactly one.
        if !expected.contains("continuation") {
            assert_eq!(errors.len(), 1, "{text}\n  one error expected: {errors:?}");
        }
    }
    println!(
        "(a) the parser rejected all {} deliberately broken rule snippets",
        cases.len()
    );
}

/// The policy part, fed variants of the real file that each break one promise.
#[test]
fn policy_rejects_changed_rules() {
    let text = rules_text();
    let yubihsm = r#"ATTR{idVendor}=="1050", ATTR{idProduct}=="0030", GROUP="arid", MODE="0660""#;
    assert!(
        text.contains(yubihsm),
        "the YubiHSM 2 rule moved; update this test"
    );
    let tpmrm = r#"SUBSYSTEM=="tpmrm", KERNEL=="tpmrm[0-9]*", GROUP="tss", MODE="0660""#;
    assert!(text.contains(tpmrm), "the TPM rule moved; update this test");
    let cases: Vec<(String, &str)> = vec![
        (
            text.replace(
                yubihsm,
                r#"ATTR{idVendor}=="1050", ATTR{idProduct}=="0031", GROUP="arid", MODE="0660""#,
            ),
            "differ from the sourced list",
        ),
        (
            text.replace(
                yubihsm,
                r#"ATTRS{idVendor}=="1050", ATTRS{idProduct}=="0030", GROUP="arid", MODE="0660""#,
            ),
            "not ATTRS of a parent",
        ),
        (
            text.replace(yubihsm, &format!("{yubihsm}\n{yubihsm}")),
            "listed twice",
        ),
        (
            text.replace("# Id from Yubico/", "# Taken from Yubico/"),
            "has no \"Id from",
        ),
        (
            text.replace(
                tpmrm,
                &format!("{tpmrm}\nKERNEL==\"tpm[0-9]*\", GROUP=\"tss\", MODE=\"0660\""),
            ),
            "raw TPM node",
        ),
        (
            text.replace("ACTION!=\"add|change\"", "ACTION!=\"add\""),
            "the first rule must be",
        ),
        (
            text.replace(
                "ENV{DEVTYPE}!=\"usb_device\", GOTO=\"arid_end\"",
                "ENV{DEVTYPE}!=\"usb_device\", GOTO=\"arid_usb\"\nLABEL=\"arid_usb\"",
            ),
            "not behind a ENV{DEVTYPE}!=\"usb_device\" GOTO",
        ),
    ];
    for (changed, expected) in &cases {
        let rules = lint(changed).unwrap_or_else(|e| panic!("lint: {e:?}"));
        let errors = policy(&rules);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected a policy error containing {expected:?}, got {errors:?}"
        );
    }
    println!(
        "(a) the policy check rejected all {} altered copies of the file",
        cases.len()
    );
}

// ------------------------------------------------------------------------------------------
// (b) The real udev.

/// What the real udev said about a rules file.
#[derive(Debug)]
struct UdevReport {
    /// How the file was checked, for the test output.
    how: String,
    /// Lines in udev's output that complain about the file (with `NAME:line` in them).
    complaints: Vec<String>,
    /// The whole output, for failure messages.
    output: String,
}

fn run(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.output()
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the real udev over `file` (named `RULES_NAME`), or says why it cannot here.
fn real_udev(file: &Path) -> Result<UdevReport, String> {
    let version = match run(Command::new("udevadm").arg("--version")) {
        Ok(out) if out.status.success() => text_of(&out).trim().to_string(),
        Ok(out) => return Err(format!("`udevadm --version` failed: {}", text_of(&out))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err("udevadm is not installed (package udev / systemd)".into());
        }
        Err(e) => return Err(format!("cannot run udevadm: {e}")),
    };

    // systemd 253 and later: a static checker that needs nothing else. Names are not resolved
    // because the group arid exists only once the package is installed.
    let verify = run(Command::new("udevadm").args(["verify", "--help"]));
    if verify.is_ok_and(|o| o.status.success()) {
        let out = run(Command::new("udevadm")
            .args(["verify", "--resolve-names=never"])
            .arg(file))
        .unwrap();
        let output = text_of(&out);
        let complaints = if out.status.success() {
            Vec::new()
        } else {
            let named: Vec<String> = output
                .lines()
                .filter(|l| l.contains(RULES_NAME))
                .map(str::to_string)
                .collect();
            if named.is_empty() {
                vec![format!("udevadm verify failed: {}", out.status)]
            } else {
                named
            }
        };
        return Ok(UdevReport {
            how: format!("udevadm verify --resolve-names=never (udev {version})"),
            complaints,
            output,
        });
    }

    // systemd 252 and older: `udevadm test` loads every rules directory and logs each problem as
    // `FILE:LINE ...`. In a private mount namespace it sees a tmpfs on /run holding only our
    // file in /run/udev/rules.d, an empty /etc/udev/rules.d (local rules hidden, so a stale copy
    // cannot shadow ours), a copy of /etc/group with the daemon's groups in it (so GROUP names
    // are really resolved), and a tmpfs on /dev/char (udevadm test writes a symlink there and
    // its database under /run/udev; neither reaches the real system).
    let dir = tempfile::tempdir().unwrap();
    let group_file = dir.path().join("group");
    let mut groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let gids: BTreeSet<u32> = groups
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .collect();
    let mut free_gid = (60_000..).filter(|g| !gids.contains(g));
    for name in GROUPS {
        if !groups.lines().any(|l| l.split(':').next() == Some(name)) {
            if !groups.is_empty() && !groups.ends_with('\n') {
                groups.push('\n');
            }
            groups.push_str(&format!("{name}:x:{}:\n", free_gid.next().unwrap()));
        }
    }
    std::fs::write(&group_file, groups).unwrap();

    let script = r#"set -eu
exec 3<"$1"
mount --bind "$2" /etc/group
mount -t tmpfs tmpfs /run
mkdir -p /run/udev/rules.d
cat <&3 >"/run/udev/rules.d/$3"
if [ -d /etc/udev/rules.d ]; then mount -t tmpfs tmpfs /etc/udev/rules.d; fi
if [ -d /dev/char ]; then mount -t tmpfs tmpfs /dev/char; fi
exec udevadm test --action=add /sys/devices/virtual/mem/null
"#;
    // As root a mount namespace is enough; otherwise try one inside a user namespace.
    let flavours: [&[&str]; 2] = [
        &["--mount", "--propagation", "private"],
        &["--map-root-user", "--mount", "--propagation", "private"],
    ];
    let mut refusals = Vec::new();
    let mut chosen = None;
    for flags in flavours {
        match run(Command::new("unshare").args(flags).arg("true")) {
            Ok(out) if out.status.success() => {
                chosen = Some(flags);
                break;
            }
            Ok(out) => refusals.push(format!(
                "unshare {}: {}",
                flags.join(" "),
                text_of(&out).trim()
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err("udevadm verify is missing (udev < 253) and unshare(1) \
                            (util-linux) is not installed"
                    .into());
            }
            Err(e) => return Err(format!("cannot run unshare: {e}")),
        }
    }
    let Some(flags) = chosen else {
        return Err(format!(
            "udevadm verify is missing (udev < 253) and no private mount namespace can be made \
             here: {}",
            refusals.join("; ")
        ));
    };
    let out = run(Command::new("unshare")
        .args(flags)
        .args(["sh", "-c", script, "sh"])
        .arg(file)
        .arg(&group_file)
        .arg(RULES_NAME))
    .unwrap();
    let output = text_of(&out);
    assert!(
        out.status.success(),
        "udevadm test in a private namespace failed ({}):\n{output}",
        out.status
    );
    let path = format!("/run/udev/rules.d/{RULES_NAME}");
    assert!(
        output
            .lines()
            .any(|l| l.trim() == format!("Reading rules file: {path}")),
        "udevadm test did not read {path}:\n{output}"
    );
    let complaints = output
        .lines()
        .filter(|l| l.contains(&path) && !l.starts_with("Reading rules file:"))
        .map(str::to_string)
        .collect();
    Ok(UdevReport {
        how: format!(
            "udevadm test --action=add /sys/devices/virtual/mem/null in `unshare {}` \
             (udev {version}, no `udevadm verify`)",
            flags.join(" ")
        ),
        complaints,
        output,
    })
}

#[test]
fn real_udev_accepts_rules_file() {
    let report = match real_udev(&rules_path()) {
        Ok(r) => r,
        Err(why) => {
            println!("(b) SKIPPED, the real udev cannot check the file here: {why}");
            return;
        }
    };
    assert!(
        report.complaints.is_empty(),
        "udev complains about {RULES_NAME} ({}):\n  {}\n--- full output ---\n{}",
        report.how,
        report.complaints.join("\n  "),
        report.output
    );
    println!("(b) {}: no complaints about {RULES_NAME}", report.how);
}

/// The same check on a broken copy must name every broken line, or (b) proves nothing.
#[test]
fn real_udev_flags_broken_rules() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join(RULES_NAME);
    std::fs::write(
        &broken,
        concat!(
            "ACTION!=\"add|change\", GOTO=\"arid_nowhere\"\n",
            "SUBSYSTEM=\"usb\", ATTR{idVendor}==\"1050\", GROUP=\"arid\"\n",
            "KERNEL==\"tpmrm[0-9]*\", GRUOP=\"tss\", MODE=\"0660\"\n",
            "LABEL=\"arid_end\"\n",
        ),
    )
    .unwrap();
    let report = match real_udev(&broken) {
        Ok(r) => r,
        Err(why) => {
            println!("(b) SKIPPED, the real udev cannot check a file here: {why}");
            return;
        }
    };
    for line in 1..=3 {
        let tag = format!("{RULES_NAME}:{line}");
        assert!(
            report.complaints.iter().any(|c| c.contains(&tag)),
            "udev did not flag line {line} of the broken file ({}); complaints: {:?}\n--- full \
             output ---\n{}",
            report.how,
            report.complaints,
            report.output
        );
    }
    println!(
        "(b) {}: the broken copy drew {} complaints, one or more for each broken line:\n    {}",
        report.how,
        report.complaints.len(),
        report.complaints.join("\n    ")
    );
}
