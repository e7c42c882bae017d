//! Go parsing rules KEDA relies on, reproduced with Go's own error texts: JSON numbers
//! (`json.Unmarshal` into float64), `strconv.ParseBool`, `time.ParseDuration`, `url.QueryEscape`
//! and `textproto.CanonicalMIMEHeaderKey`.

use std::time::Duration;

/// Parses a float the way KEDA's `json.Unmarshal([]byte(s), &float64)` does, with Go's error
/// text. Input that ends inside a number reports the space Go's scanner feeds at the end.
/// `null` panics inside KEDA v2.20's typed-config reflection (recovered into an error).
pub fn json_float(s: &str) -> Result<f64, String> {
    if s == "null" {
        return Err("failed to parse typed config *reflect.ValueError resulted in panic".into());
    }
    let b = s.as_bytes();
    if b.is_empty() {
        return Err("unexpected end of JSON input".into());
    }
    let mut i = 0;
    let ch = |i: usize| b[i] as char;
    if b[i] == b'-' {
        i += 1;
        if i == b.len() {
            return Err("invalid character ' ' in numeric literal".into());
        }
        if !b[i].is_ascii_digit() {
            return Err(format!(
                "invalid character {} in numeric literal",
                quote_char(ch(i))
            ));
        }
    } else if !b[i].is_ascii_digit() {
        return Err(format!(
            "invalid character {} looking for beginning of value",
            quote_char(ch(i))
        ));
    }
    if b[i] == b'0' {
        i += 1;
    } else {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if i == b.len() {
            return Err("invalid character ' ' after decimal point in numeric literal".into());
        }
        if !b[i].is_ascii_digit() {
            return Err(format!(
                "invalid character {} after decimal point in numeric literal",
                quote_char(ch(i))
            ));
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if i == b.len() {
            return Err("invalid character ' ' in exponent of numeric literal".into());
        }
        if !b[i].is_ascii_digit() {
            return Err(format!(
                "invalid character {} in exponent of numeric literal",
                quote_char(ch(i))
            ));
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() {
        let rest = &s[i..];
        let c = rest.chars().next().unwrap_or(' ');
        return Err(format!(
            "invalid character {} after top-level value",
            quote_char(c)
        ));
    }
    s[..i]
        .parse::<f64>()
        .map_err(|e| format!("cannot parse {s:?}: {e}"))
        .and_then(|v| {
            if v.is_infinite() {
                Err(format!(
                    "json: cannot unmarshal number {s} into Go value of type float64"
                ))
            } else {
                Ok(v)
            }
        })
}

fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        c if c.is_control() => format!("'\\x{:02x}'", c as u32),
        c => format!("'{c}'"),
    }
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// Parses a duration the way Go's `time.ParseDuration` does (units ns, us, µs, ms, s, m, h).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        total += number * nanos_per;
    }
    if negative && total > 0.0 {
        return Err("negative".into());
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Escapes a query component the way Go's `url.QueryEscape` does (space becomes '+').
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &byte in s.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// True when every byte is a valid HTTP token character (RFC 7230), as Go checks header names.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Canonicalises a header name the way Go's `textproto.CanonicalMIMEHeaderKey` does; names
/// with characters outside the token set are returned unchanged.
pub fn canonical_header_key(name: &str) -> String {
    if !is_token(name) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// True when Go's HTTP client accepts the header value (no control characters but tab).
pub fn is_valid_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_float_accepts_json_numbers_only() {
        assert_eq!(json_float("250"), Ok(250.0));
        assert_eq!(json_float("2.5e2"), Ok(250.0));
        assert_eq!(json_float("-0.5"), Ok(-0.5));
        assert!(json_float("null").is_err());
        assert_eq!(
            json_float("abc").unwrap_err(),
            "invalid character 'a' looking for beginning of value"
        );
        assert_eq!(
            json_float("250m").unwrap_err(),
            "invalid character 'm' after top-level value"
        );
        assert_eq!(
            json_float("+5").unwrap_err(),
            "invalid character '+' looking for beginning of value"
        );
        assert_eq!(
            json_float(".5").unwrap_err(),
            "invalid character '.' looking for beginning of value"
        );
        assert_eq!(
            json_float("1.").unwrap_err(),
            "invalid character ' ' after decimal point in numeric literal"
        );
        assert_eq!(
            json_float("01").unwrap_err(),
            "invalid character '1' after top-level value"
        );
        assert_eq!(
            json_float("\"5\"").unwrap_err(),
            "invalid character '\"' looking for beginning of value"
        );
    }

    #[test]
    fn parse_bool_matches_strconv() {
        assert_eq!(parse_bool("T"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("tRUE").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_go_duration("500").is_err());
        assert!(parse_go_duration("5 s").is_err());
    }

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(
            query_escape("sum(x{a=\"b\"}) / 2"),
            "sum%28x%7Ba%3D%22b%22%7D%29+%2F+2"
        );
    }

    #[test]
    fn header_keys_are_canonicalised_like_go() {
        assert_eq!(canonical_header_key("x-scope-orgid"), "X-Scope-Orgid");
        assert_eq!(canonical_header_key("X-Scope-OrgID"), "X-Scope-Orgid");
        assert_eq!(canonical_header_key("bad header"), "bad header");
    }
}
