//! `--web-config FILE`: TLS and basic auth for `/metrics`, in the web configuration file that
//! Prometheus exporters take (exporter-toolkit's, node_exporter's `--web.config.file`), so one
//! file serves both:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: serve.crt        # relative paths are relative to this file
//!   key_file: serve.key
//!   # client_auth_type: RequireAndVerifyClientCert
//!   # client_ca_file: clients.crt
//!   # min_version: TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...      # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! The file is read by a small strict reader, not a YAML library: these files are two levels of
//! `key: value`, and a library would add its parser (libyaml, transpiled) to the binary for that.
//! Anything else (lists, flow style, anchors, multi-line values) is refused with its line, and so
//! is every exporter-toolkit setting mcprobe does not implement: a security setting is never
//! silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What `serve`'s HTTP side needs from the file.
#[derive(Clone, Default)]
pub(crate) struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name → bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig").field("tls", &self.tls.is_some()).field("users", &self.users.len()).finish()
    }
}

/// One section of the file: its keys with their values and lines.
type Section = BTreeMap<String, (String, usize)>;

/// Reads the two-level `key: value` document; `Err` names the line.
fn parse(text: &str) -> Result<BTreeMap<String, Section>, String> {
    let mut doc: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let at = |e: &str| format!("line {n}: {e}");
        let line = strip_comment(raw).trim_end();
        if line.trim().is_empty() || (line == "---" && doc.is_empty()) {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        if line[indent..].starts_with('\t') {
            return Err(at("tabs cannot indent YAML"));
        }
        let body = &line[indent..];
        if body.starts_with("- ") || body == "-" {
            return Err(at("lists are not supported here"));
        }
        let (key, rest) = body.split_once(':').ok_or_else(|| at("expected `key: value`"))?;
        if !rest.is_empty() && !rest.starts_with(' ') {
            return Err(at("expected `key: value` (a space after the colon)"));
        }
        let (key, value) = (unquote(key.trim()).map_err(|e| at(&e))?, rest.trim());
        if value.starts_with(['{', '[', '&', '*', '|', '>', '!']) && value != "{}" {
            return Err(at("flow style, anchors, tags and multi-line values are not supported"));
        }
        if indent == 0 {
            if doc.contains_key(&key) {
                return Err(at(&format!("'{key}' appears twice")));
            }
            if !value.is_empty() && value != "{}" {
                return Err(at(&format!("'{key}' is a section: its settings go on the lines below, indented")));
            }
            doc.insert(key.clone(), Section::new());
            current = (value.is_empty()).then_some(key);
        } else {
            let Some(section) = current.as_ref().and_then(|c| doc.get_mut(c)) else {
                return Err(at("an indented line outside a section"));
            };
            if value.is_empty() {
                return Err(at(&format!("'{key}' has no value (lists and nested sections are not supported)")));
            }
            if section.insert(key.clone(), (unquote(value).map_err(|e| at(&e))?, n)).is_some() {
                return Err(at(&format!("'{key}' appears twice")));
            }
        }
    }
    Ok(doc)
}

/// Everything before a `#` that starts a comment (at the start, or after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') if prev == ' ' || prev == '\t' => return &line[..i],
            (None, '\'' | '"') if prev == ' ' || prev == ':' || i == 0 => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        prev = c;
    }
    line
}

/// A scalar: plain, 'single-quoted' ('' for a quote) or "double-quoted" (\\ and \" only).
fn unquote(v: &str) -> Result<String, String> {
    if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return Ok(inner.replace("''", "'"));
    }
    if let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match (c, c == '\\') {
                (_, true) => match chars.next() {
                    Some(e @ ('\\' | '"')) => out.push(e),
                    _ => return Err("only \\\\ and \\\" escapes are supported".into()),
                },
                (c, false) => out.push(c),
            }
        }
        return Ok(out);
    }
    if v.starts_with(['\'', '"']) {
        return Err("an unterminated quote".into());
    }
    Ok(v.to_string())
}

/// Settings of exporter-toolkit that mcprobe does not implement: refused, never ignored.
const UNSUPPORTED: [&str; 7] = [
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
    "cert",
    "key",
    "client_ca",
];

/// Reads and checks `--web-config FILE`; errors name the file, the line or setting, the value.
pub(crate) fn load(path: &Path) -> Result<WebConfig> {
    let p = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("--web-config {p}: cannot read"))?;
    let doc = parse(&text).map_err(|e| anyhow!("--web-config {p}: {e}"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut web = WebConfig::default();
    for (name, section) in &doc {
        let at = |key: &str| format!("--web-config {p}: {name}: {key}");
        match name.as_str() {
            "tls_server_config" => web.tls = Some(Arc::new(tls(section, dir, &at)?)),
            "basic_auth_users" => {
                for (user, (hash, line)) in section {
                    if user.is_empty() || user.contains(':') {
                        bail!("--web-config {p}: line {line}: a user name must be non-empty and without ':'");
                    }
                    hash.parse::<bcrypt::HashParts>()
                        .map_err(|_| anyhow!("{} (line {line}): not a bcrypt hash ($2y$...)", at(user)))?;
                    web.users.insert(user.clone(), hash.clone());
                }
            }
            "http_server_config" => {
                for (key, (value, line)) in section {
                    match key.as_str() {
                        // serve speaks HTTP/1.1 only, which every scraper speaks.
                        "http2" if value == "true" || value == "false" => {}
                        _ => bail!("{} (line {line}): not supported by mcprobe serve", at(key)),
                    }
                }
            }
            "rate_limit" => bail!("--web-config {p}: rate_limit: not supported by mcprobe serve"),
            _ => bail!(
                "--web-config {p}: '{name}': unknown section (tls_server_config, basic_auth_users, http_server_config)"
            ),
        }
    }
    Ok(web)
}

fn tls(s: &Section, dir: &Path, at: &dyn Fn(&str) -> String) -> Result<rustls::ServerConfig> {
    let get = |k: &str| s.get(k).map(|(v, _)| v.as_str());
    for (key, (_, line)) in s {
        if UNSUPPORTED.contains(&key.as_str()) {
            bail!("{} (line {line}): not supported by mcprobe serve", at(key));
        }
        if !["cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"]
            .contains(&key.as_str())
        {
            bail!("{} (line {line}): unknown setting", at(key));
        }
    }
    let file = |k: &str| -> Result<PathBuf> {
        let v = get(k).filter(|v| !v.is_empty()).ok_or_else(|| anyhow!("{}: missing", at(k)))?;
        Ok(dir.join(v))
    };
    let (cert_path, key_path) = (file("cert_file")?, file("key_file")?);
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{} {}: {e}", at("cert_file"), cert_path.display()))?;
    if certs.is_empty() {
        bail!("{} {}: no certificate in it", at("cert_file"), cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow!("{} {}: {e}", at("key_file"), key_path.display()))?;
    let version = |k: &str| -> Result<Option<u8>> {
        match get(k) {
            None => Ok(None),
            Some("TLS12") => Ok(Some(12)),
            Some("TLS13") => Ok(Some(13)),
            Some(v) => bail!("{} '{v}': TLS12 or TLS13 (older versions are not offered)", at(k)),
        }
    };
    let (min, max) = (version("min_version")?.unwrap_or(12), version("max_version")?.unwrap_or(13));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        bail!("{}: min_version is above max_version", at("min_version"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| anyhow!("{}: {e}", at("min_version")))?;
    let required = match get("client_auth_type").unwrap_or("NoClientCert") {
        "NoClientCert" => None,
        "VerifyClientCertIfGiven" => Some(false),
        "RequireAndVerifyClientCert" => Some(true),
        v => bail!(
            "{} '{v}': NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert (the others accept unverified certificates)",
            at("client_auth_type")
        ),
    };
    let builder = match required {
        None => builder.with_no_client_auth(),
        Some(required) => {
            let ca_path = file("client_ca_file")?;
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(&ca_path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow!("{} {}: {e}", at("client_ca_file"), ca_path.display()))?;
            let (added, _) = roots.add_parsable_certificates(cas);
            if added == 0 {
                bail!("{} {}: no usable CA certificate in it", at("client_ca_file"), ca_path.display());
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if required { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().map_err(|e| anyhow!("{}: {e}", at("client_ca_file")))?)
        }
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| anyhow!("{} and key_file: {e}", at("cert_file")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_exporter_toolkit_shape_and_refuses_the_rest_with_its_line() {
        let doc = parse(
            "---\n# comment\ntls_server_config:\n  cert_file: a.crt  # trailing\n  key_file: 'b #.key'\nbasic_auth_users:\n  alice: \"$2y$10$x\"\n",
        )
        .unwrap();
        assert_eq!(doc["tls_server_config"]["cert_file"].0, "a.crt");
        assert_eq!(doc["tls_server_config"]["key_file"].0, "b #.key");
        assert_eq!(doc["basic_auth_users"]["alice"], ("$2y$10$x".to_string(), 7));
        for (text, want) in [
            ("a:\n  - x\n", "line 2: lists"),
            ("a:\n  b: {c: d}\n", "line 2: flow style"),
            ("a:\n  b:\n    c: d\n", "line 2: 'b' has no value"),
            ("a: 1\n", "line 1: 'a' is a section"),
            ("a:\n  b: 1\n  b: 2\n", "line 3: 'b' appears twice"),
            ("  b: 1\n", "line 1: an indented line outside"),
            ("a:\n  b: 'x\n", "line 2: an unterminated quote"),
            ("a:\n\tb: 1\n", "line 2: tabs"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        assert!(parse("basic_auth_users: {}\n").unwrap()["basic_auth_users"].is_empty());
    }

    #[test]
    fn unknown_and_unsupported_settings_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        for (text, want) in [
            ("tls_server_config:\n  cipher_suites: x\n", "tls_server_config: cipher_suites (line 2): not supported"),
            ("tls_server_config:\n  cert_fil: x\n", "tls_server_config: cert_fil (line 2): unknown setting"),
            ("tls_server_config:\n  key_file: x\n", "tls_server_config: cert_file: missing"),
            ("basic_auth_users:\n  bob: secret\n", "basic_auth_users: bob (line 2): not a bcrypt hash"),
            ("http_server_config:\n  headers: x\n", "http_server_config: headers (line 2): not supported"),
            ("web:\n  x: y\n", "'web': unknown section"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = format!("{:#}", load(&path).unwrap_err());
            assert!(e.starts_with(&format!("--web-config {}: ", path.display())) && e.contains(want), "{text:?}: {e}");
        }
        let hash = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(&path, format!("basic_auth_users:\n  bob: {hash}\n")).unwrap();
        let web = load(&path).unwrap();
        assert!(web.tls.is_none() && web.users.contains_key("bob"));
    }
}
