//! One conversation with one registry for one repository: the HTTP agent (timeouts, TLS trust),
//! the authorization learned from the first 401 (basic, or a bearer token for the repository's
//! scopes), and the registry's error bodies turned into one-line errors.

use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{self, header, Response, StatusCode};
use ureq::{AsSendBody, Body};

use super::auth::{Challenge, Credentials, TokenAnswer};
use super::endpoint::{Endpoint, RegistryConfig};
use super::error::{RegistryError, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A registry that stops sending for this long mid-transfer is given up on.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Token and error answers are small.
const SMALL_BODY_LIMIT: u64 = 1 << 20;
/// What Go's TLS servers (the registry) answer to plain HTTP.
const PLAIN_TO_TLS: &[u8] = b"Client sent an HTTP request to an HTTPS server";
const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

/// A registry conversation. Shared by the transfer threads of one pull or push.
pub(crate) struct Session {
    endpoint: Endpoint,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    /// "pull access", "push access", "login": how a refusal is worded.
    action: &'static str,
    /// What a refusal names: `127.0.0.1:5000/repo`.
    subject: String,
    /// Token scopes, e.g. `repository:repo:pull`.
    scopes: Vec<String>,
    authorization: Mutex<Option<String>>,
}

impl Session {
    pub(crate) fn new(
        config: &RegistryConfig,
        domain: &str,
        credentials: Option<Credentials>,
        action: &'static str,
        subject: String,
        scopes: Vec<String>,
    ) -> Result<Session> {
        let endpoint = config.endpoint(domain)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(IO_TIMEOUT))
            .timeout_per_write(Some(IO_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .tls_config(endpoint.tls.clone())
            .user_agent(USER_AGENT)
            .max_redirects(5)
            .build()
            .new_agent();
        Ok(Session {
            endpoint,
            agent,
            credentials,
            action,
            subject,
            scopes,
            authorization: Mutex::new(None),
        })
    }

    /// `http(s)://host` + `path`; an absolute URL (an upload `Location`) is kept as it is.
    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.endpoint.base)
        }
    }

    /// Sends the request `make` builds (called again with credentials after a 401).
    pub(crate) fn send<B: AsSendBody>(
        &self,
        mut make: impl FnMut(Option<&str>) -> Result<http::Request<B>>,
    ) -> Result<Response<Body>> {
        let current = self.current_authorization();
        let resp = self.run(make(current.as_deref())?)?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let authorization = self.authenticate(&resp)?;
        let resp = self.run(make(Some(&authorization))?)?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(true));
        }
        Ok(resp)
    }

    /// A request without a body.
    pub(crate) fn get_like(
        &self,
        method: http::Method,
        path: &str,
        accept: Option<&str>,
    ) -> Result<Response<Body>> {
        let url = self.url(path);
        self.send(|auth| {
            let mut b = http::Request::builder().method(method.clone()).uri(&url);
            if let Some(a) = accept {
                b = b.header(header::ACCEPT, a);
            }
            if let Some(a) = auth {
                b = b.header(header::AUTHORIZATION, a);
            }
            b.body(()).map_err(|e| RegistryError::protocol(&url, e))
        })
    }

    /// Learns the registry's authentication up front (`GET /v2/`), so parallel transfers all start
    /// authorized (push, login).
    pub(crate) fn ping(&self) -> Result<()> {
        let mut resp = self.get_like(http::Method::GET, "/v2/", None)?;
        if resp.status().is_success() {
            // Read to the end so the connection goes back to the pool for the next request.
            small_body(&mut resp, "GET /v2/")?;
            return Ok(());
        }
        Err(self.status_error(format!("registry {}", self.endpoint.registry), resp))
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    fn run<B: AsSendBody>(&self, req: http::Request<B>) -> Result<Response<Body>> {
        self.agent.run(req).map_err(|e| RegistryError::Unreachable {
            registry: self.endpoint.registry.clone(),
            problem: e.to_string(),
        })
    }

    fn authenticate(&self, resp: &Response<Body>) -> Result<String> {
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        let authorization = match challenge {
            Some(Challenge::Basic) => match &self.credentials {
                Some(c) => c.basic(),
                None => return Err(self.unauthorized(false)),
            },
            Some(Challenge::Bearer { realm, service }) => {
                format!("Bearer {}", self.token(&realm, service.as_deref())?)
            }
            None => return Err(self.unauthorized(self.credentials.is_some())),
        };
        if let Ok(mut a) = self.authorization.lock() {
            *a = Some(authorization.clone());
        }
        Ok(authorization)
    }

    fn token(&self, realm: &str, service: Option<&str>) -> Result<String> {
        let mut req = self.agent.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in &self.scopes {
            req = req.query("scope", s);
        }
        if let Some(c) = &self.credentials {
            req = req.header(header::AUTHORIZATION, c.basic());
        }
        let mut resp = req.call().map_err(|e| RegistryError::Unreachable {
            registry: realm.to_string(),
            problem: e.to_string(),
        })?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(self.unauthorized(self.credentials.is_some()));
        }
        if !resp.status().is_success() {
            return Err(self.status_error(format!("token from {realm}"), resp));
        }
        let body = small_body(&mut resp, realm)?;
        serde_json::from_slice::<TokenAnswer>(&body)
            .ok()
            .and_then(TokenAnswer::into_token)
            .ok_or_else(|| {
                RegistryError::protocol(format!("token from {realm}"), "no token in the answer")
            })
    }

    fn unauthorized(&self, had_credentials: bool) -> RegistryError {
        let hint = if had_credentials {
            "incorrect username or password".to_string()
        } else {
            format!(
                "authentication required (log in with: berth login {})",
                self.endpoint.registry
            )
        };
        RegistryError::Unauthorized {
            action: self.action,
            repository: self.subject.clone(),
            hint,
        }
    }

    /// A non-success answer as one line, with the registry's own message when it sent one.
    pub(crate) fn status_error(&self, what: String, mut resp: Response<Body>) -> RegistryError {
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return self.unauthorized(self.credentials.is_some());
        }
        let body = small_body(&mut resp, &what).unwrap_or_default();
        if status == 400 && body.starts_with(PLAIN_TO_TLS) {
            return RegistryError::Unreachable {
                registry: self.endpoint.registry.clone(),
                problem: format!(
                    "it speaks HTTPS: give the daemon its CA as certs.d/{}/ca.crt",
                    self.endpoint.registry
                ),
            };
        }
        let message = registry_message(&body).unwrap_or_else(|| {
            resp.status()
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
        });
        RegistryError::Status {
            what,
            status,
            message,
        }
    }
}

/// Reads a small answer body (JSON errors, tokens, manifests up to `limit`).
pub(crate) fn read_limited(resp: &mut Response<Body>, what: &str, limit: u64) -> Result<Vec<u8>> {
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| RegistryError::protocol(what, format!("reading the answer: {e}")))
}

fn small_body(resp: &mut Response<Body>, what: &str) -> Result<Vec<u8>> {
    read_limited(resp, what, SMALL_BODY_LIMIT)
}

/// The distribution spec's `{"errors":[{"code":…,"message":…}]}` as `manifest unknown; …`.
pub(crate) fn registry_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let e: Errors = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = e
        .errors
        .into_iter()
        .map(|x| {
            if x.message.is_empty() {
                x.code.to_lowercase().replace('_', " ")
            } else {
                x.message
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `berth login`: checks the credentials against the registry (`GET /v2/`, answering its
/// challenge), so that wrong ones are refused now rather than at the next pull.
pub fn login(config: &RegistryConfig, registry: &str, credentials: Credentials) -> Result<()> {
    let session = Session::new(
        config,
        registry,
        Some(credentials),
        "login",
        registry.to_string(),
        Vec::new(),
    )?;
    session.ping()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_become_one_line() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(registry_message(body).as_deref(), Some("manifest unknown"));
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN"},{"code":"DENIED","message":"no"}]}"#;
        assert_eq!(registry_message(body).as_deref(), Some("blob unknown; no"));
        assert_eq!(registry_message(b"<html>"), None);
    }
}
