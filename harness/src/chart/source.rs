//! Opens a chart (directory or .tgz) for rendering without network access: a chart whose
//! declared dependencies are missing from `charts/` is copied to a temporary directory and
//! given empty stand-ins, so the user's chart directory is never modified.

use crate::cleanup::TempDir;
use crate::error::InputError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The `kind` a stand-in dependency renders, so we can tell which dependencies were enabled.
pub const STUB_MARKER_KIND: &str = "KedaConformanceOfflineStub";
const STUB_VERSION: &str = "0.0.0-keda-conformance-offline";

/// A chart ready for `helm template`.
#[derive(Debug)]
pub struct PreparedChart {
    /// The directory Helm renders (the user's, or a temporary copy).
    pub dir: PathBuf,
    /// What the user named.
    pub origin: PathBuf,
    /// Chart name from Chart.yaml.
    pub name: String,
    /// Chart version from Chart.yaml.
    pub version: String,
    /// The chart's own values.yaml (with subcharts' defaults under their names).
    pub default_values: Value,
    /// values.schema.json, when the chart has one.
    pub schema: Option<Value>,
    /// Dependencies that were absent and replaced by empty stand-ins.
    pub stubbed_dependencies: Vec<String>,
    _temp: Option<TempDir>,
}

impl PreparedChart {
    /// Hands over the temporary copy (if `dir` is one), to be removed by the caller once
    /// nothing reads `dir` any more: a render drops it while the checks run.
    pub fn take_copy(&mut self) -> Option<TempDir> {
        self._temp.take()
    }
}

fn not_a_chart(path: &Path, why: impl Into<String>) -> InputError {
    InputError::in_file(
        path,
        None,
        None,
        why,
        "pass --chart a chart directory (with Chart.yaml) or a packaged chart (.tgz)",
    )
}

/// Opens the chart at `path`; `version`, when given, must match (or selects `<name>-<version>.tgz`
/// from a directory of packaged charts).
///
/// # Errors
/// An [`InputError`] when the path is missing, not a chart, a corrupt archive, or the
/// version does not match.
pub fn prepare(path: &Path, version: Option<&str>) -> Result<PreparedChart, InputError> {
    if !path.exists() {
        return Err(not_a_chart(path, "chart path does not exist"));
    }
    let mut temp: Option<TempDir> = None;
    let chart_dir: PathBuf = if path.is_dir() && path.join("Chart.yaml").is_file() {
        path.to_path_buf()
    } else if path.is_dir() {
        let Some(v) = version else {
            return Err(not_a_chart(path, "directory has no Chart.yaml"));
        };
        let mut matching: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| not_a_chart(path, format!("cannot read directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().ends_with(&format!("-{v}.tgz")))
                    .unwrap_or(false)
            })
            .collect();
        matching.sort();
        // Several charts of that version (`tempo-1.0.0.tgz`, `tempo-distributed-1.0.0.tgz`):
        // picking one silently could judge the wrong chart.
        if matching.len() > 1 {
            return Err(InputError::in_flag(
                "--version",
                format!(
                    "several packaged charts in {} end in -{v}.tgz: {}",
                    path.display(),
                    matching
                        .iter()
                        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "point --chart at the one to use",
            ));
        }
        let found = matching.pop().ok_or_else(|| {
            InputError::in_flag(
                "--version",
                format!("no packaged chart ending in -{v}.tgz in {}", path.display()),
                "pass a version that is present, or point --chart at the chart itself",
            )
        })?;
        let t = extract(&found)?;
        let dir = single_chart_dir(t.path(), &found)?;
        temp = Some(t);
        dir
    } else {
        let t = extract(path)?;
        let dir = single_chart_dir(t.path(), path)?;
        temp = Some(t);
        dir
    };
    let chart_yaml_path = chart_dir.join("Chart.yaml");
    let chart_yaml = read_yaml(&chart_yaml_path)?;
    let name = chart_yaml["name"].as_str().unwrap_or_default().to_string();
    let chart_version = chart_yaml["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(InputError::in_file(
            &chart_yaml_path,
            None,
            None,
            "Chart.yaml has no name",
            "add `name: <chart>` to Chart.yaml",
        ));
    }
    // Names become directory names of the temporary copy: never a path.
    if !is_plain_name(&name) {
        return Err(InputError::in_file(
            &chart_yaml_path,
            None,
            None,
            format!("chart name {name:?} is not a plain name (it would be used as a path)"),
            "name the chart with letters, digits, '-', '_' and '.' only",
        ));
    }
    if let Some(v) = version {
        if v != chart_version {
            return Err(InputError::in_flag(
                "--version",
                format!("{} is {name} {chart_version}, not {v}", path.display()),
                format!("pass --version {chart_version} or the chart of version {v}"),
            ));
        }
    }
    let mut default_values = read_optional_yaml(&chart_dir.join("values.yaml"))?;
    let schema = match std::fs::read_to_string(chart_dir.join("values.schema.json")) {
        Ok(text) => serde_json::from_str(&text).ok(),
        Err(_) => None,
    };

    let deps: Vec<(String, Option<String>)> = chart_yaml["dependencies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| {
                    let n = d["name"].as_str()?.to_string();
                    Some((n, d["alias"].as_str().map(str::to_string)))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some((bad, _)) = deps.iter().find(|(n, _)| !is_plain_name(n)) {
        return Err(InputError::in_file(
            &chart_yaml_path,
            None,
            None,
            format!("dependency name {bad:?} is not a plain name (it would be used as a path)"),
            "name dependencies with letters, digits, '-', '_' and '.' only",
        ));
    }
    let missing: Vec<String> = deps
        .iter()
        .filter(|(n, _)| !dependency_present(&chart_dir, n))
        .map(|(n, _)| n.clone())
        .collect();
    // Subchart defaults count as keys the chart reads (under the alias or name).
    for (n, alias) in &deps {
        let key = alias.clone().unwrap_or_else(|| n.clone());
        if let Value::Object(map) = &mut default_values {
            let sub = chart_dir.join("charts").join(n).join("values.yaml");
            let sub_values = read_optional_yaml(&sub).unwrap_or(Value::Null);
            let entry = map.entry(key).or_insert(Value::Object(Default::default()));
            if let (Value::Object(e), Value::Object(s)) = (entry, sub_values) {
                for (k, v) in s {
                    e.entry(k).or_insert(v);
                }
            }
        }
    }

    let dir = if missing.is_empty() {
        chart_dir
    } else {
        let t = match temp.take() {
            Some(t) => t,
            None => working_copy(&chart_dir, &name)
                .map_err(|e| not_a_chart(path, format!("cannot make a temporary copy: {e}")))?,
        };
        let dir = if chart_dir.starts_with(t.path()) {
            chart_dir
        } else {
            t.path().join(&name)
        };
        write_stubs(&dir, &chart_yaml, &missing)
            .map_err(|e| not_a_chart(path, format!("cannot write offline stand-ins: {e}")))?;
        temp = Some(t);
        dir
    };
    Ok(PreparedChart {
        dir,
        origin: path.to_path_buf(),
        name,
        version: chart_version,
        default_values,
        schema,
        stubbed_dependencies: missing,
        _temp: temp,
    })
}

/// The most of a chart's files that go to memory: a chart is a few hundred KiB; anything
/// beyond this is copied to disk instead of holding the machine's memory.
const MEMORY_COPY_BYTES: u64 = 16 * 1024 * 1024;

/// A private copy of `chart_dir` as `<temp>/<name>`: in memory when the system has a
/// memory-backed scratch directory (a render creates and removes it) and the chart's files
/// total at most [`MEMORY_COPY_BYTES`], on disk otherwise or when the copy does not fit.
fn working_copy(chart_dir: &Path, name: &str) -> std::io::Result<TempDir> {
    const PREFIX: &str = "keda-conformance-chart-";
    if let Some(root) = crate::cleanup::memory_scratch_root() {
        if let Ok(t) = TempDir::new_in(&root, PREFIX) {
            let mut budget = MEMORY_COPY_BYTES;
            if copy_dir_within(chart_dir, &t.path().join(name), &mut budget).is_ok() {
                return Ok(t);
            }
        }
    }
    let t = TempDir::new(PREFIX)?;
    copy_dir(chart_dir, &t.path().join(name))?;
    Ok(t)
}

fn dependency_present(chart_dir: &Path, name: &str) -> bool {
    let charts = chart_dir.join("charts");
    if charts.join(name).join("Chart.yaml").is_file() {
        return true;
    }
    std::fs::read_dir(&charts)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                let f = e.file_name().to_string_lossy().to_string();
                f.starts_with(&format!("{name}-")) && f.ends_with(".tgz")
            })
        })
        .unwrap_or(false)
}

fn write_stubs(dir: &Path, chart_yaml: &Value, missing: &[String]) -> std::io::Result<()> {
    let mut chart_yaml = chart_yaml.clone();
    if let Some(deps) = chart_yaml["dependencies"].as_array_mut() {
        for d in deps {
            if d["name"].as_str().map(|n| missing.iter().any(|m| m == n)) == Some(true) {
                d["version"] = Value::String(STUB_VERSION.into());
            }
        }
    }
    let text = serde_yaml_ng::to_string(&chart_yaml).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("Chart.yaml"), text)?;
    for name in missing {
        let stub = dir.join("charts").join(name);
        std::fs::create_dir_all(stub.join("templates"))?;
        std::fs::write(
            stub.join("Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {STUB_VERSION}\ndescription: offline stand-in written by keda-conformance\n"),
        )?;
        std::fs::write(
            stub.join("templates").join("marker.yaml"),
            format!("apiVersion: keda-conformance.local/v1\nkind: {STUB_MARKER_KIND}\nmetadata:\n  name: {name}\n"),
        )?;
    }
    Ok(())
}

/// Helm's own limit on what a packaged chart may expand to (100 MiB).
const MAX_EXPANDED_BYTES: u64 = 100 * 1024 * 1024;

/// Unpacks a packaged chart into a temporary directory. Only regular files and directories are
/// written: links are skipped (Helm's own loader reads a link entry as an empty file, so it can
/// never reach a host file), paths that leave the directory are refused, and so is an archive
/// that expands beyond Helm's limit.
fn extract(archive: &Path) -> Result<TempDir, InputError> {
    use std::io::Read;
    let t = TempDir::new("keda-conformance-chart-")
        .map_err(|e| not_a_chart(archive, format!("cannot create a temporary directory: {e}")))?;
    let file = std::fs::File::open(archive)
        .map_err(|e| not_a_chart(archive, format!("cannot open: {e}")))?;
    let unreadable = |e: std::io::Error| {
        not_a_chart(
            archive,
            format!("not a readable packaged chart (gzip-compressed tar): {e}"),
        )
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut total: u64 = 0;
    for entry in tar.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let kind = entry.header().entry_type();
        let rel = entry.path().map_err(unreadable)?.into_owned();
        if rel.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        }) {
            return Err(not_a_chart(
                archive,
                format!(
                    "archive entry {} leaves the chart's directory",
                    rel.display()
                ),
            ));
        }
        let dest = t.path().join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(unreadable)?;
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(unreadable)?;
        }
        let room = MAX_EXPANDED_BYTES.saturating_sub(total);
        let mut out = std::fs::File::create(&dest).map_err(unreadable)?;
        let written =
            std::io::copy(&mut (&mut entry).take(room + 1), &mut out).map_err(unreadable)?;
        total += written;
        if total > MAX_EXPANDED_BYTES {
            return Err(not_a_chart(
                archive,
                format!(
                    "archive expands beyond {} MiB (Helm's limit for a chart)",
                    MAX_EXPANDED_BYTES / (1024 * 1024)
                ),
            ));
        }
    }
    Ok(t)
}

/// Whether a name from Chart.yaml can be used as one directory name.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn single_chart_dir(root: &Path, archive: &Path) -> Result<PathBuf, InputError> {
    std::fs::read_dir(root)
        .ok()
        .and_then(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.join("Chart.yaml").is_file())
        })
        .ok_or_else(|| {
            not_a_chart(
                archive,
                "archive holds no chart (no <name>/Chart.yaml inside)",
            )
        })
}

/// Copies the directory `from` to `to` (created), skipping `.git`, symlinks and special files;
/// the copy is owner-only (directories 0700, files 0600): charts may hold values from Secrets.
///
/// # Errors
/// The first I/O error.
pub(crate) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut unlimited = u64::MAX;
    copy_dir_within(from, to, &mut unlimited)
}

/// [`copy_dir`] of at most `budget` bytes of files (what is left is written back); more is an
/// error before the file that would exceed it is copied.
fn copy_dir_within(from: &Path, to: &Path, budget: &mut u64) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_dir_within(&entry.path(), &to.join(&name), budget)?;
        } else if ty.is_file() {
            let size = entry.metadata()?.len();
            *budget = budget.checked_sub(size).ok_or_else(|| {
                std::io::Error::other(format!(
                    "{} would exceed the copy's size limit",
                    entry.path().display()
                ))
            })?;
            let dest = to.join(&name);
            std::fs::copy(entry.path(), &dest)?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Reads a YAML file into JSON values; syntax errors carry the file, line and column.
///
/// # Errors
/// An [`InputError`] when the file is missing or not valid YAML.
pub fn read_yaml(path: &Path) -> Result<Value, InputError> {
    let text = read_text(path)?;
    parse_yaml(path, &text)
}

fn read_text(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| {
        InputError::in_file(
            path,
            None,
            None,
            format!("cannot read: {e}"),
            "check the path",
        )
    })
}

/// Reads a user's YAML file (a values file) with every check of [`crate::yaml_guard::check`],
/// duplicate keys included.
///
/// # Errors
/// An [`InputError`] naming the file, the line and the fix.
pub fn read_user_yaml(path: &Path) -> Result<Value, InputError> {
    let text = read_text(path)?;
    crate::yaml_guard::check(path, &text, "invalid YAML")?;
    parse_yaml(path, &text)
}

/// Parses YAML text into JSON values; syntax errors carry the file, line and column.
///
/// # Errors
/// An [`InputError`] when the text is not valid YAML.
pub fn parse_yaml(path: &Path, text: &str) -> Result<Value, InputError> {
    crate::yaml_guard::precheck(path, text)?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_yaml_ng::from_str::<Value>(text)
        .map_err(|e| crate::yaml_guard::parse_error(path, text, &e, "invalid YAML"))
}

fn read_optional_yaml(path: &Path) -> Result<Value, InputError> {
    if path.is_file() {
        read_yaml(path)
    } else {
        Ok(Value::Object(Default::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .tgz with `entries` (path, type, data or link target).
    fn archive(dir: &Path, entries: &[(&str, tar::EntryType, &[u8])]) -> PathBuf {
        let path = dir.join("c.tgz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if kind.is_symlink() {
                h.set_size(0);
                b.append_link(&mut h, name, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                // Written raw, so a path with `..` reaches the archive as an attacker's would.
                let raw = &mut h.as_old_mut().name;
                raw[..name.len()].copy_from_slice(name.as_bytes());
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    const CHART: &[u8] = b"apiVersion: v2\nname: c\nversion: 1.0.0\n";

    #[test]
    fn a_copy_stops_before_the_file_that_exceeds_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("templates")).unwrap();
        std::fs::write(from.join("Chart.yaml"), CHART).unwrap();
        std::fs::write(from.join("templates/big.yaml"), vec![b'x'; 4096]).unwrap();
        let mut small = 1024;
        let err = copy_dir_within(&from, &dir.path().join("small"), &mut small).unwrap_err();
        assert!(err.to_string().contains("size limit"), "{err}");
        let mut enough = 8192;
        copy_dir_within(&from, &dir.path().join("enough"), &mut enough).unwrap();
        assert_eq!(enough, 8192 - 4096 - CHART.len() as u64);
        assert_eq!(
            std::fs::read(dir.path().join("enough/templates/big.yaml"))
                .unwrap()
                .len(),
            4096
        );
    }

    #[test]
    fn links_in_an_archive_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let a = archive(
            dir.path(),
            &[
                ("c/Chart.yaml", tar::EntryType::Regular, CHART),
                ("c/files/leak", tar::EntryType::Symlink, b"/etc/hostname"),
            ],
        );
        let c = prepare(&a, None).unwrap();
        assert!(c.dir.join("Chart.yaml").is_file());
        assert!(std::fs::symlink_metadata(c.dir.join("files/leak")).is_err());
    }

    #[test]
    fn entries_leaving_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = archive(
            dir.path(),
            &[
                ("c/Chart.yaml", tar::EntryType::Regular, CHART),
                ("c/../../escaped", tar::EntryType::Regular, b"x"),
            ],
        );
        let e = prepare(&a, None).unwrap_err();
        assert!(e.problem.contains("leaves the chart's directory"), "{e}");
    }

    #[test]
    fn chart_names_that_are_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: ../evil\nversion: 1.0.0\n",
        )
        .unwrap();
        let e = prepare(dir.path(), None).unwrap_err();
        assert!(e.problem.contains("not a plain name"), "{e}");
    }
}
