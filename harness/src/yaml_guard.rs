//! Untrusted YAML (values files, scenarios, metrics files from bug reports) checked before and
//! while it is parsed: control characters, flow nesting that makes parsers slow, aliases that
//! multiply, and duplicate keys (which parsers resolve differently). Every finding names the
//! file, the line and the fix.

use crate::error::InputError;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::path::Path;

/// How deep `[`/`{` may nest: far beyond any real values file, far below where parsing
/// slows down.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Checks a user's YAML `text` from `path` (values, scenarios, metrics): what [`precheck`]
/// checks, and no mapping repeats a key (Helm silently keeps the last; a user who wrote both
/// meant one of them). `what` starts a syntax error's message (`invalid scenario`).
///
/// # Errors
/// An [`InputError`] naming the line (and column) of the first problem.
pub fn check(path: &Path, text: &str, what: &str) -> Result<(), InputError> {
    precheck(path, text)?;
    if text.trim().is_empty() {
        return Ok(());
    }
    match serde_yaml_ng::from_str::<NoDuplicateKeys>(text) {
        Ok(_) => Ok(()),
        Err(e) => Err(parse_error(path, text, &e, what)),
    }
}

/// The [`InputError`] for a parser error on `text` from `path`: an alias bomb names its first
/// alias, a duplicate key its second occurrence, anything else the parser's position.
pub fn parse_error(path: &Path, text: &str, err: &serde_yaml_ng::Error, what: &str) -> InputError {
    let message = err.to_string();
    if message.contains("repetition limit exceeded") {
        return InputError::in_file(
            path,
            first_alias_line(text),
            None,
            format!("{what}: its aliases (`*name`) expand to more than the parser allows (an alias bomb)"),
            "write the values out instead of nesting aliases of aliases",
        );
    }
    let loc = err.location();
    let duplicate = duplicate_key_of(&message);
    let (line, column) = match (&loc, &duplicate) {
        // The parser reports where the mapping ends; the second occurrence is more useful.
        (_, Some(key)) => (
            second_key_line(text, key).or(loc.as_ref().map(|l| l.line())),
            None,
        ),
        (Some(l), None) => (Some(l.line()), Some(l.column())),
        (None, None) => (None, None),
    };
    let fix = if duplicate.is_some() {
        "remove one of the two: Helm keeps the last silently"
    } else {
        "fix the YAML syntax at that line (indentation, a missing ':' or an unclosed quote)"
    };
    InputError::in_file(path, line, column, format!("{what}: {message}"), fix)
}

/// The checks that need no parser: control characters (reported at their own line, which the
/// parser gets wrong) and flow nesting deep enough to make parsing slow.
///
/// # Errors
/// An [`InputError`] naming the line of the first problem.
pub fn precheck(path: &Path, text: &str) -> Result<(), InputError> {
    if let Some((line, column, c)) = text.lines().enumerate().find_map(|(i, l)| {
        l.chars()
            .position(|c| c.is_control() && c != '\t' && c != '\r')
            .map(|col| (i + 1, col + 1, l.chars().nth(col).unwrap_or('\0')))
    }) {
        return Err(InputError::in_file(
            path,
            Some(line),
            Some(column),
            format!(
                "invalid YAML: control character U+{:04X} (YAML allows none outside escapes)",
                c as u32
            ),
            "remove it, or write it as an escape inside a double-quoted string (\"\\u0000\")",
        ));
    }
    let (mut depth, mut quote, mut comment) = (0usize, None::<char>, false);
    let mut line = 1;
    let mut prev = '\n';
    for c in text.chars() {
        match (c, quote) {
            ('\n', _) => {
                line += 1;
                comment = false;
                // Plain scalars end at a line break; quoted ones may go on.
            }
            (_, _) if comment => {}
            ('\\', Some('"')) if prev == '\\' => {
                prev = ' ';
                continue;
            }
            ('"', Some('"')) if prev != '\\' => quote = None,
            ('\'', Some('\'')) => quote = None,
            (_, Some(_)) => {}
            ('"' | '\'', None) if matches!(prev, ' ' | '\t' | '\n' | '[' | '{' | ',' | ':') => {
                quote = Some(c)
            }
            ('#', None) if matches!(prev, ' ' | '\t' | '\n') => comment = true,
            ('[' | '{', None) => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(InputError::in_file(
                        path,
                        Some(line),
                        None,
                        format!("invalid YAML: `[`/`{{` nest more than {MAX_FLOW_DEPTH} deep"),
                        "flatten the structure; no chart reads values nested this deep",
                    ));
                }
            }
            (']' | '}', None) => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    Ok(())
}

/// The key named by a duplicate-key error of [`NoDuplicateKeys`].
fn duplicate_key_of(message: &str) -> Option<String> {
    let rest = message.split_once("duplicate key `")?.1;
    Some(rest.split_once('`')?.0.to_string())
}

/// The line of the second line that starts with `key:` (block style), if any.
fn second_key_line(text: &str, key: &str) -> Option<usize> {
    let starts = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ");
        [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ]
        .iter()
        .any(|p| t.starts_with(p.as_str()))
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| starts(l))
        .nth(1)
        .map(|(i, _)| i + 1)
}

/// The line of the first alias (`*name`).
fn first_alias_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.char_indices().any(|(i, c)| {
                c == '*'
                    && l[..i]
                        .chars()
                        .last()
                        .is_none_or(|p| matches!(p, ' ' | '[' | '{' | ',' | ':' | '-'))
                    && l[i + 1..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_alphanumeric() || n == '_')
            })
        })
        .map(|i| i + 1)
}

/// Any YAML document, refused when a mapping repeats a key.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        NoDuplicateKeys::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            let shown = match &key {
                serde_yaml_ng::Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            if !seen.insert(shown.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (NoDuplicateKeys, v) = data.variant::<NoDuplicateKeys>()?;
        de::VariantAccess::newtype_variant::<NoDuplicateKeys>(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> InputError {
        check(Path::new("v.yaml"), text, "invalid YAML").expect_err("refused")
    }

    #[test]
    fn a_control_character_is_reported_at_its_own_line_and_column() {
        let e = err("a: 1\nb: 2\nc: \"x\0y\"\n");
        assert_eq!(e.location.line(), Some(3), "{e}");
        assert!(e.to_string().contains("U+0000"), "{e}");
    }

    #[test]
    fn a_duplicate_key_is_reported_at_its_second_line() {
        let e = err("compactor:\n  a: 1\n  b: 2\n  a: 3\n");
        assert_eq!(e.location.line(), Some(4), "{e}");
        assert!(e.to_string().contains("duplicate key `a`"), "{e}");
        // The same key in two different maps is fine, and so is a list of maps.
        check(
            Path::new("v.yaml"),
            "x:\n  a: 1\ny:\n  a: 2\nl:\n- a: 1\n- a: 2\n",
            "invalid YAML",
        )
        .expect("no duplicates");
        // Flow style too.
        assert!(err("m: {a: 1, a: 2}\n")
            .to_string()
            .contains("duplicate key"));
    }

    #[test]
    fn an_alias_bomb_names_the_first_alias() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in [
            ("b", "a"),
            ("c", "b"),
            ("d", "c"),
            ("e", "d"),
            ("f", "e"),
            ("g", "f"),
        ] {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let e = err(&text);
        assert_eq!(e.location.line(), Some(2), "{e}");
        assert!(e.to_string().contains("alias bomb"), "{e}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing_and_quotes_do_not_count() {
        let deep = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        let start = std::time::Instant::now();
        let e = err(&deep);
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(e.location.line(), Some(1), "{e}");
        let quoted = format!(
            "a: \"{}\"\nb: '{}'\n# {}\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        check(Path::new("v.yaml"), &quoted, "invalid YAML")
            .expect("brackets in strings and comments are text");
    }
}
