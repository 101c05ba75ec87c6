//! Image references as docker understands them: parsing, normalisation (`busybox` →
//! `docker.io/library/busybox:latest`) and the familiar short form used in listings.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;
use super::error::ImageError;

/// The registry assumed for names without a domain, as in docker.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag assumed for names without a tag or digest.
pub const DEFAULT_TAG: &str = "latest";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference: `domain/path[:tag][@digest]`. Always has a tag or a digest (a bare
/// name gets `latest`), so two spellings of one image (`busybox`, `docker.io/library/busybox:latest`)
/// compare equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference, with docker's rules and error wording.
    pub fn parse(input: &str) -> Result<Reference, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("the name is empty"));
        }
        let (name_tag, digest) =
            match input.split_once('@') {
                Some((n, d)) => (
                    n,
                    Some(Digest::from_str(d).map_err(|_| {
                        bad("the digest must be sha256: and 64 lowercase hex digits")
                    })?),
                ),
                None => (input, None),
            };
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&name_tag[..colon], Some(&name_tag[colon + 1..]))
            }
            _ => (name_tag, None),
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad("the repository name is longer than 255 characters"));
        }
        let (domain, remainder) = split_domain(name);
        let defaulted = domain.is_none();
        let mut domain = domain.unwrap_or(DEFAULT_DOMAIN).to_string();
        if domain == "index.docker.io" {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if !valid_domain(&domain) {
            return Err(bad("invalid registry host"));
        }
        if remainder.is_empty() {
            return Err(bad("the repository path is empty"));
        }
        for component in remainder.split('/') {
            if !valid_component(component) {
                if component.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(bad("repository name must be lowercase"));
                }
                return Err(bad(
                    "each path component must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
                ));
            }
        }
        if defaulted && remainder.len() == 64 && remainder.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("cannot specify 64-byte hexadecimal strings"));
        }
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(bad(
                    "a tag is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
                ));
            }
        }
        let path = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            format!("{OFFICIAL_PREFIX}{remainder}")
        } else {
            remainder.to_string()
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry host (and port), e.g. `docker.io`, `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any (every reference without a digest has one).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest digest of a `name@sha256:…` reference.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name, `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as docker shows it in the REPOSITORY column: `busybox`, `user/app`,
    /// `localhost:5000/x/y`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        }
    }

    /// The canonical form stored in the index: `docker.io/library/busybox:latest`.
    pub fn canonical(&self) -> String {
        let mut s = self.repository();
        self.push_suffix(&mut s);
        s
    }

    /// This repository with another tag (and no digest), e.g. for `berth tag`.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ImageError> {
        if !valid_tag(tag) {
            return Err(ImageError::InvalidReference {
                input: format!("{}:{tag}", self.familiar_repository()),
                reason:
                    "a tag is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
                        .into(),
            });
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

/// The familiar short form: `busybox:latest`, `localhost:5000/x/y:tag`, `name@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.familiar_repository();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Docker's rule: the first component is a domain when it contains `.` or `:`, is `localhost`, or has
/// an uppercase letter.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // [IPv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
                None => return false,
            },
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == b.len() {
            return false;
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Reference::parse(s).unwrap().canonical()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(canon("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(canon("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(canon("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            canon("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canon("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(canon("localhost:5000/x/y:tag"), "localhost:5000/x/y:tag");
        assert_eq!(canon("localhost/x"), "localhost/x:latest");
        assert_eq!(canon("quay.io/a/b-c__d.e"), "quay.io/a/b-c__d.e:latest");
        assert_eq!(canon("[::1]:5000/img:v1"), "[::1]:5000/img:v1");
        let d = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), d);
        assert_eq!(r.to_string(), format!("busybox@{d}"));
        let r = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
    }

    #[test]
    fn familiar_display() {
        assert_eq!(
            Reference::parse("busybox").unwrap().to_string(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("user/app:v2").unwrap().to_string(),
            "user/app:v2"
        );
        assert_eq!(
            Reference::parse("localhost:5000/x/y:tag")
                .unwrap()
                .to_string(),
            "localhost:5000/x/y:tag"
        );
        assert_eq!(
            Reference::parse("docker.io/library/a/b")
                .unwrap()
                .to_string(),
            "library/a/b:latest"
        );
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar_repository(),
            "busybox"
        );
    }

    #[test]
    fn rejects_invalid_names_with_a_reason() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "a/",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "busybox:",
            "busybox:.x",
            "busybox@sha256:abc",
            "busybox:tag with space",
            "bad_host_/x",
            ":tag",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid reference format"), "{bad}: {err}");
        }
        let long = "a".repeat(256);
        assert!(Reference::parse(&long).is_err());
        assert!(Reference::parse(&format!("x:{}", "t".repeat(129))).is_err());
        assert!(Reference::parse("Busybox")
            .unwrap_err()
            .to_string()
            .contains("must be lowercase"));
    }
}
