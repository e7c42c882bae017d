//! Names the harness hands to Helm and Kubernetes (release names, namespaces): checked before
//! any child process sees them, so a value such as `--post-renderer=x` is a clear input error,
//! never a flag.

/// Why `name` is not a Helm release name (DNS-1123 subdomain, at most 53 characters), if it
/// is not one.
pub fn release_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 53 {
        return Some(format!(
            "release name {name:?} must be 1 to 53 characters long"
        ));
    }
    let ok = name.split('.').all(is_dns1123_label_text);
    (!ok).then(|| {
        format!(
            "release name {name:?} must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        )
    })
}

/// Why `name` is not a Kubernetes namespace (DNS-1123 label, at most 63 characters), if it is
/// not one.
pub fn namespace_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 63 || !is_dns1123_label_text(name) {
        return Some(format!(
            "namespace {name:?} must be 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    None
}

fn is_dns1123_label_text(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_paths_are_not_names() {
        for bad in [
            "--post-renderer=./evil.sh",
            "-x",
            "",
            "Tempo",
            "a/b",
            "a b",
            "x-",
            &"a".repeat(54),
        ] {
            assert!(release_problem(bad).is_some(), "{bad}");
        }
        for good in ["tempo", "tempo-1", "my.release", "a"] {
            assert_eq!(release_problem(good), None, "{good}");
        }
        assert!(namespace_problem("--namespace=x").is_some());
        assert!(namespace_problem("a.b").is_some());
        assert_eq!(namespace_problem("tempo"), None);
    }
}
