//! The TLS identity of a standalone control plane: a certificate chain and key given as PEM
//! files, or a self-signed pair made once in its data directory (`tls/cert.pem`, `tls/key.pem`
//! with mode 0600, and `tls/names`: the names it was made for) and used again at later starts.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::TlsIdentity;

/// Where a standalone control plane's TLS identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A certificate chain and its private key, PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed pair in the data directory, made at the first start.
    SelfSigned,
}

/// The directory of the data directory that holds the self-signed pair.
pub(crate) const DIR: &str = "tls";
/// The self-signed certificate in [`DIR`] (what clients trust).
pub(crate) const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const NAMES_FILE: &str = "names";

/// The self-signed certificate's path in `data_dir`.
pub(crate) fn self_signed_cert(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR).join(CERT_FILE)
}

/// The names a self-signed certificate is made for: `localhost`, the loopback addresses, this
/// machine's host name and `hosts` (the advertise URL's host, a listen address), without
/// repeats.
pub(crate) fn names(hosts: &[&str]) -> Vec<String> {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok());
    let mut names: Vec<String> = Vec::new();
    let all = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .chain(hostname.as_deref())
        .chain(hosts.iter().copied());
    for name in all {
        let name = name.trim_matches(['[', ']']);
        let unspecified = name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if !name.is_empty() && !unspecified && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The identity `source` names; a self-signed pair is made in `data_dir` for `names` when it
/// has none.
pub(crate) fn load(
    source: &Source,
    data_dir: &Path,
    names: &[String],
) -> Result<TlsIdentity, String> {
    match source {
        Source::Files { cert, key } => {
            let read = |path: &Path, what: &str| {
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))
            };
            Ok(TlsIdentity {
                cert_pem: read(cert, "certificate (--tls-cert)")?,
                key_pem: read(key, "key (--tls-key)")?,
                source: format!("{} and {}", cert.display(), key.display()),
            })
        }
        Source::SelfSigned => self_signed(data_dir, names),
    }
}

/// The pair in `data_dir`'s [`DIR`], made for `names` when there is none.
fn self_signed(data_dir: &Path, names: &[String]) -> Result<TlsIdentity, String> {
    let dir = &data_dir.join(DIR);
    let (cert, key) = (self_signed_cert(data_dir), dir.join(KEY_FILE));
    let source = format!("the self-signed certificate {}", cert.display());
    match (cert.exists(), key.exists()) {
        (true, true) => {
            warn_of_missing_names(dir, names);
            let read =
                |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
            Ok(TlsIdentity {
                cert_pem: read(&cert)?,
                key_pem: read(&key)?,
                source,
            })
        }
        (false, false) => {
            let (cert_pem, key_pem) = generate(names)?;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            // The key first: a certificate on disk always has its key.
            write_new(&key, &key_pem, 0o600)?;
            write_new(&dir.join(NAMES_FILE), &(names.join("\n") + "\n"), 0o644)?;
            write_new(&cert, &cert_pem, 0o644)?;
            tracing::info!(
                "made a self-signed TLS certificate for {} in {}",
                names.join(", "),
                cert.display()
            );
            Ok(TlsIdentity {
                cert_pem,
                key_pem,
                source,
            })
        }
        _ => Err(format!(
            "{} holds only one of {CERT_FILE} and {KEY_FILE}: remove the directory to make a new self-signed pair (clients then need the new certificate)",
            dir.display()
        )),
    }
}

/// A new self-signed certificate for `names` and its key, PEM.
fn generate(names: &[String]) -> Result<(String, String), String> {
    let failed = |e: rcgen::Error| format!("cannot make a self-signed certificate: {e}");
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "modal-rs control plane");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `text` to the new file `path` with `mode`, through a temporary file renamed into
/// place.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Warns when a kept certificate was made without one of the names this start needs (clients
/// using that name would be refused).
fn warn_of_missing_names(dir: &Path, names: &[String]) {
    let Ok(made_for) = std::fs::read_to_string(dir.join(NAMES_FILE)) else {
        return;
    };
    let missing: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !made_for.lines().any(|m| m == *n))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            "the self-signed certificate in {} was made for {}, not for {}: clients connecting with those names will be refused; remove the directory to make a new one (clients then need the new certificate: `modal token new`)",
            dir.display(),
            made_for.lines().collect::<Vec<_>>().join(", "),
            missing.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_made_once_with_a_private_key() {
        use std::os::unix::fs::PermissionsExt;
        let data = std::env::temp_dir().join(format!("modal-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let names = names(&["modal.example", "0.0.0.0", "127.0.0.1"]);
        assert!(names.iter().any(|n| n == "localhost"));
        assert!(names.iter().any(|n| n == "modal.example"));
        assert!(!names.iter().any(|n| n == "0.0.0.0"), "{names:?}");
        assert_eq!(names.iter().filter(|n| *n == "127.0.0.1").count(), 1);
        let first = load(&Source::SelfSigned, &data, &names).unwrap();
        assert!(first.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(first.key_pem.contains("PRIVATE KEY"));
        let key_mode = std::fs::metadata(data.join(DIR).join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(self_signed_cert(&data)).unwrap(),
            first.cert_pem
        );
        // A later start uses the same pair.
        let again = load(&Source::SelfSigned, &data, &names).unwrap();
        assert_eq!(again.cert_pem, first.cert_pem);
        assert_eq!(again.key_pem, first.key_pem);
        // Half a pair is an error that says what to do.
        std::fs::remove_file(data.join(DIR).join(KEY_FILE)).unwrap();
        let e = load(&Source::SelfSigned, &data, &names).err().unwrap();
        assert!(e.contains("remove the directory"), "{e}");
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn given_files_that_cannot_be_read_are_named() {
        let source = Source::Files {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let e = load(&source, Path::new("/nonexistent"), &[]).err().unwrap();
        assert!(
            e.contains("--tls-cert") && e.contains("/nonexistent/cert.pem"),
            "{e}"
        );
    }
}
