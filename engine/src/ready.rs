//! The ready file: one JSON object naming the service, its pid and every bound address,
//! written atomically (temp file + rename) once every listener accepts.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The ready line for `service` with `addrs` in the order given.
pub fn ready_line(service: &str, addrs: &[(String, SocketAddr)]) -> String {
    let addrs: Map<String, Value> = addrs
        .iter()
        .map(|(k, a)| (k.clone(), Value::String(a.to_string())))
        .collect();
    json!({ "service": service, "pid": std::process::id(), "addrs": addrs }).to_string()
}

/// Writes `line` to `path` atomically.
pub fn write_ready_file(path: &Path, line: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp: PathBuf = dir.join(name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(line.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_file_is_one_json_object_with_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let addrs = vec![
            ("worker".to_owned(), "127.0.0.1:1".parse().unwrap()),
            ("http".to_owned(), "127.0.0.1:2".parse().unwrap()),
        ];
        write_ready_file(&path, &ready_line("iii-engine", &addrs)).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["service"], "iii-engine");
        assert_eq!(v["addrs"]["worker"], "127.0.0.1:1");
        assert_eq!(v["addrs"]["http"], "127.0.0.1:2");
        assert!(v["pid"].as_u64().is_some());
    }
}
