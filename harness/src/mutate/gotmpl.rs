//! Just enough of Go's template syntax, line by line, for the mutation operators: the actions
//! on a line, `if`/`with` guards alone on their line, control-only lines, and the field
//! chains (`.Values.a.b`, `$as.keda.x`) an action reads, outside string literals.

use regex::Regex;
use std::sync::OnceLock;

/// An `{{ if COND }}` or `{{ with VALUE }}` action alone on its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard<'a> {
    /// The whitespace before the action.
    pub indent: &'a str,
    /// `{{-` (trims the whitespace before it).
    pub left_trim: bool,
    /// `if` or `with`.
    pub keyword: &'a str,
    /// The condition or value.
    pub condition: &'a str,
    /// `-}}` (trims the whitespace after it).
    pub right_trim: bool,
}

impl Guard<'_> {
    /// The same guard with another keyword and condition, trim markers and indentation kept.
    pub fn rewrite(&self, keyword: &str, condition: &str) -> String {
        format!(
            "{}{{{{{} {keyword} {condition} {}}}}}",
            self.indent,
            if self.left_trim { "-" } else { "" },
            if self.right_trim { "-" } else { "" },
        )
    }
}

fn guard_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(\s*)\{\{(-?)\s*(if|with)\s+(.+?)\s*(-?)\}\}\s*$").expect("valid regex")
    })
}

/// The `if`/`with` guard that is the only thing on `line`, if it is one.
pub fn guard(line: &str) -> Option<Guard<'_>> {
    let c = guard_re().captures(line)?;
    let condition = c.get(4)?.as_str();
    // Two actions on one line (`{{ if a }}x{{ end }}`) are not a guard of the lines below.
    if condition.contains("}}") || condition.contains("{{") {
        return None;
    }
    Some(Guard {
        indent: c.get(1)?.as_str(),
        left_trim: !c.get(2)?.as_str().is_empty(),
        keyword: c.get(3)?.as_str(),
        condition,
        right_trim: !c.get(5)?.as_str().is_empty(),
    })
}

/// Byte ranges of the actions (`{{ ... }}`, delimiters included) on a line; an action left
/// open at the end of the line runs to the end.
pub fn actions(line: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = line[at..].find("{{") {
        let start = at + open;
        let end = line[start + 2..]
            .find("}}")
            .map_or(line.len(), |close| start + 2 + close + 2);
        out.push((start, end));
        at = end;
    }
    out
}

/// Whether an action (its text, delimiters included) is a comment.
fn is_comment(action: &str) -> bool {
    let inner = action.trim_start_matches("{{").trim_start_matches('-');
    inner.trim_start().starts_with("/*")
}

/// The keyword an action starts with (`if`, `end`, `include`, ...), if any.
pub fn keyword(action: &str) -> Option<&str> {
    let inner = action
        .trim_start_matches("{{")
        .trim_start_matches('-')
        .trim_start();
    let word: &str = inner
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    (!word.is_empty()).then_some(word)
}

/// Whether the line holds nothing but actions that shape the template (`if`, `with`,
/// `range`, `else`, `end`, `define`, `block`) or comments: deleting such a line breaks
/// the template rather than modelling a regression.
pub fn is_control_only(line: &str) -> bool {
    let spans = actions(line);
    if spans.is_empty() {
        return false;
    }
    let mut rest = line.to_string();
    for &(s, e) in spans.iter().rev() {
        rest.replace_range(s..e, "");
    }
    rest.trim().is_empty()
        && spans.iter().all(|&(s, e)| {
            let a = &line[s..e];
            is_comment(a)
                || matches!(
                    keyword(a),
                    Some("if" | "with" | "range" | "else" | "end" | "define" | "block")
                )
        })
}

/// Whether the line is only template comments (nothing it says reaches the output).
pub fn is_comment_only(line: &str) -> bool {
    let spans = actions(line);
    !spans.is_empty() && spans.iter().all(|&(s, e)| is_comment(&line[s..e])) && {
        let mut rest = line.to_string();
        for &(s, e) in spans.iter().rev() {
            rest.replace_range(s..e, "");
        }
        rest.trim().is_empty()
    }
}

/// How a line changes the nesting of `if`/`with`/`range`/`define`/`block` ... `end`.
pub fn depth_delta(line: &str) -> i32 {
    actions(line)
        .iter()
        .map(|&(s, e)| match keyword(&line[s..e]) {
            Some("if" | "with" | "range" | "define" | "block") => 1,
            Some("end") => -1,
            _ => 0,
        })
        .sum()
}

/// The action text with the contents of string and character literals blanked out (same
/// length), so that `"fixture.name"` is not read as a field chain.
fn mask_literals(action: &str) -> String {
    let mut out = String::with_capacity(action.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in action.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                    out.push_str(&" ".repeat(c.len_utf8()));
                } else if c == '\\' && q != '`' {
                    escaped = true;
                    out.push(' ');
                } else if c == q {
                    quote = None;
                    out.push(c);
                } else {
                    out.push_str(&" ".repeat(c.len_utf8()));
                }
            }
            None => {
                if matches!(c, '"' | '`' | '\'') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// A field chain an action reads: `$.Values.a.b`, `.metadata.query`, `$as.keda.x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Byte offset of the chain in the line.
    pub start: usize,
    /// Byte offset just past the chain.
    pub end: usize,
    /// The variable it starts from (`$`, `$as`), if any.
    pub variable: Option<String>,
    /// The field names, in order.
    pub fields: Vec<String>,
}

impl Chain {
    /// Byte offset of the last field name in the line.
    pub fn last_field_start(&self) -> usize {
        self.end - self.fields.last().map_or(0, String::len)
    }

    /// Whether the chain reads a values key (`.Values.x`, or a lower-case key of a map the
    /// template holds) rather than a built-in object such as `.Release.Name`.
    pub fn reads_values_key(&self) -> bool {
        let Some(last) = self.fields.last() else {
            return false;
        };
        let rest = match self.fields.first().map(String::as_str) {
            Some("Values") => &self.fields[1..],
            _ => &self.fields[..],
        };
        !rest.is_empty()
            && last.starts_with(|c: char| c.is_ascii_lowercase())
            && rest
                .iter()
                .all(|f| !f.starts_with(|c: char| c.is_ascii_uppercase()))
    }
}

fn chain_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(\$[A-Za-z_][A-Za-z0-9_]*|\$)?((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
            .expect("valid regex")
    })
}

/// The field chains read by the (non-comment) actions of a line, in order.
pub fn field_chains(line: &str) -> Vec<Chain> {
    let mut out = Vec::new();
    for (s, e) in actions(line) {
        let action = &line[s..e];
        if is_comment(action) {
            continue;
        }
        let masked = mask_literals(action);
        for c in chain_re().captures_iter(&masked) {
            let whole = c.get(0).expect("match");
            // `x.y` glued to a word is not a chain (there is none in Go templates, but a
            // number such as 1.5 must not count).
            let before = masked[..whole.start()].chars().next_back();
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_') {
                continue;
            }
            let fields: Vec<String> = c[2]
                .split('.')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
            out.push(Chain {
                start: s + whole.start(),
                end: s + whole.end(),
                variable: c.get(1).map(|v| v.as_str().to_string()),
                fields,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_alone_on_their_line() {
        let g = guard("  {{- with .metadata.customHeaders }}").unwrap();
        assert_eq!(
            (g.indent, g.left_trim, g.keyword, g.condition, g.right_trim),
            ("  ", true, "with", ".metadata.customHeaders", false)
        );
        assert_eq!(
            g.rewrite("if", "false"),
            "  {{- if false }}",
            "trim markers and indentation are kept"
        );
        assert!(guard("{{- if .a }}x{{- end }}").is_none());
        assert!(guard("{{- else if .a }}").is_none());
        assert!(guard("name: {{ .a }}").is_none());
        assert_eq!(
            guard("{{if .a -}}").unwrap().rewrite("if", "true"),
            "{{ if true -}}"
        );
    }

    #[test]
    fn control_and_comment_lines() {
        assert!(is_control_only("  {{- end }}"));
        assert!(is_control_only("{{- with .a }}{{/* c */}}"));
        assert!(!is_control_only("  customHeaders: {{ . }}"));
        assert!(!is_control_only("{{ include \"x\" . }}"));
        assert!(!is_control_only("plain: text"));
        assert!(is_comment_only(
            "{{- /* customHeaders rendered as given. */}}"
        ));
        assert!(!is_comment_only("{{- /* c */}} x: 1"));
        assert_eq!(depth_delta("{{- define \"a\" -}}"), 1);
        assert_eq!(depth_delta("{{- if .a }}{{ end }}"), 0);
        assert_eq!(depth_delta("{{- end -}}"), -1);
    }

    #[test]
    fn field_chains_outside_literals() {
        let line = r#"  name: {{ include "fixture.componentName" (dict "ctx" $ "component" .component) }} {{ $.Values.a.b }} {{ $as.keda.x }}"#;
        let chains = field_chains(line);
        let shown: Vec<(Option<String>, Vec<String>)> = chains
            .iter()
            .map(|c| (c.variable.clone(), c.fields.clone()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (None, vec!["component".to_string()]),
                (
                    Some("$".into()),
                    vec!["Values".into(), "a".into(), "b".into()]
                ),
                (Some("$as".into()), vec!["keda".into(), "x".into()]),
            ]
        );
        assert_eq!(&line[chains[1].last_field_start()..chains[1].end], "b");
        assert!(field_chains("{{/* .Values.a */}} {{ 1.5 }}").is_empty());
    }

    #[test]
    fn values_keys_but_not_built_ins() {
        let reads = |l: &str| {
            field_chains(l)
                .iter()
                .map(Chain::reads_values_key)
                .collect::<Vec<_>>()
        };
        assert_eq!(reads("{{ .Values.a.b }}"), vec![true]);
        assert_eq!(reads("{{ .Values }}"), vec![false]);
        assert_eq!(reads("{{ $.Release.Namespace }}"), vec![false]);
        assert_eq!(reads("{{ .ctx.Release.Name }}"), vec![false]);
        assert_eq!(reads("{{ .minReplicas }}"), vec![true]);
    }
}
