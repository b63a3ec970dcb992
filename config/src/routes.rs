//! `routes:`: plain reverse-proxy routes for whatever else sits behind the same front door (a
//! dashboard, a metrics endpoint, an inference server's own API), matched by path, host or
//! header and proxied as they are. The schema types (as written) and their resolution (URLs
//! parsed, provider ids checked, every problem placed at file:line:col); the proxy matches and
//! forwards.

use crate::replicas::MAX_REPLICAS;
use crate::resolve::parse_base;
use crate::schema::{HealthCheckKindName, HealthCheckSection};
use crate::spans::Seg;
use crate::validate::Diagnostics;
use crate::{HealthCheck, HealthCheckKind, Origin, Provider, ReplicaStrategy, Timeouts};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One reverse-proxy route: requests that match go to `upstream` as they are (no model
/// routing, no translation, bodies streamed both ways, websockets upgraded). The LLM surfaces
/// and the router's own endpoints always win over a route; routes are tried in order and the
/// first that matches is used.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// A name for logs and the `route` label of the route metrics (default `route<N>`, N
    /// counting from 0 in file order).
    #[serde(default)]
    pub name: Option<String>,
    /// What a request must look like; every key given must hold.
    #[serde(rename = "match")]
    pub matcher: MatchSection,
    /// Where matching requests go: a URL (`http://127.0.0.1:3000`, its path is put before the
    /// request's), a list of URLs (a replica pool: `replica_strategy`, in-flight counts and
    /// the health of `upstream.health`, as a provider's `api_base` list), or the id of a
    /// provider (its `ca_file` and timeouts, and its replica pool when its `api_base` is a
    /// list, else its origin).
    pub upstream: RouteUpstreamSection,
    /// How requests spread over a list of URLs, as a provider's `replica_strategy` (default
    /// `least_requests`; `affinity` is keyed by the `x-session-id` header only: a route never
    /// reads the body). Not for a provider id upstream: the provider's own strategy applies.
    #[serde(default)]
    pub replica_strategy: Option<ReplicaStrategy>,
    /// An active check of each URL of the list, run in the background as a provider's
    /// `health_check` (`path` defaults to `/`): a URL that fails it takes no request until it
    /// passes again. Not for a provider id upstream: the provider's `health_check` applies.
    #[serde(default)]
    pub health_check: Option<HealthCheckSection>,
    /// Remove the matched `path_prefix` from the path before forwarding (nginx's
    /// `proxy_pass http://up/;` under `location /prefix/`). The query string is kept.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Headers set on the forwarded request, replacing the client's (`host` included).
    #[serde(default)]
    pub set_headers: IndexMap<String, String>,
    /// Require the gateway key or a virtual key, as LLM calls do (unless `server.skip_auth`);
    /// the credential is removed before forwarding. Default false: the client's own headers
    /// go through and no provider credential is ever added.
    #[serde(default)]
    pub auth: bool,
    /// Position in the `routes:` list (for problems placed in the file).
    #[serde(skip)]
    #[schemars(skip)]
    pub index: usize,
}

/// `routes[].match`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchSection {
    /// The path starts with this prefix, at a segment boundary (`/grafana` matches
    /// `/grafana` and `/grafana/x`, not `/grafanax`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// The path is exactly this (the query string is not part of it).
    #[serde(default)]
    pub path: Option<String>,
    /// The request's host (the `Host` header or the HTTP/2 authority, without its port),
    /// case-insensitive; `*.example.com` matches any subdomain.
    #[serde(default)]
    pub host: Option<String>,
    /// A request header has exactly this value.
    #[serde(default)]
    pub header: Option<HeaderMatchSection>,
}

/// `routes[].match.header`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchSection {
    pub name: String,
    pub value: String,
}

/// `routes[].upstream`: one URL or provider id, or a list of URLs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a URL, a list of URLs or a provider id")]
pub enum RouteUpstreamSection {
    One(String),
    Many(Vec<String>),
}

impl Default for RouteUpstreamSection {
    fn default() -> Self {
        RouteUpstreamSection::Many(Vec::new())
    }
}

/// A resolved route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `name`, or `route<N>`.
    pub name: String,
    pub matcher: RouteMatch,
    pub upstream: RouteUpstream,
    pub strip_prefix: bool,
    /// Lower-cased names, checked values.
    pub set_headers: Vec<(String, String)>,
    pub auth: bool,
    /// `health_check` (a route with URLs only).
    pub health_check: Option<HealthCheck>,
}

/// What a request must look like (at least one field is set).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch {
    /// Without a trailing `/` (`/` itself becomes the empty string: every path).
    pub path_prefix: Option<String>,
    pub path: Option<String>,
    /// Lower-cased; a leading `*.` matches any subdomain.
    pub host: Option<String>,
    /// Lower-cased name, exact value.
    pub header: Option<(String, String)>,
}

impl RouteMatch {
    /// Whether a request with this path, host (without port) and header lookup matches.
    pub fn matches<'a>(
        &self,
        path: &str,
        host: Option<&str>,
        header: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> bool {
        if let Some(prefix) = &self.path_prefix {
            if !has_prefix(path, prefix) {
                return false;
            }
        }
        if let Some(exact) = &self.path {
            if path != exact {
                return false;
            }
        }
        if let Some(want) = &self.host {
            let Some(host) = host else { return false };
            let ok = match want.strip_prefix("*.") {
                Some(domain) => host.len().checked_sub(domain.len() + 1).is_some_and(|at| {
                    host.as_bytes()[at] == b'.' && host[at + 1..].eq_ignore_ascii_case(domain)
                }),
                None => host.eq_ignore_ascii_case(want),
            };
            if !ok {
                return false;
            }
        }
        if let Some((name, value)) = &self.header {
            if header(name) != Some(value.as_bytes()) {
                return false;
            }
        }
        true
    }
}

/// `path` starts with `prefix` (stored without a trailing `/`) at a segment boundary.
pub fn has_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.is_empty())
}

/// Where a route's requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteUpstream {
    /// At least one, at most [`MAX_REPLICAS`]. For a provider whose `api_base` is a list: its
    /// replicas' origins in the provider's order (the indexes of its replica pool).
    pub urls: Vec<RouteUrl>,
    /// The provider id when `upstream` named one.
    pub provider: Option<String>,
    /// How requests spread over `urls`: the route's `replica_strategy`, or the provider's.
    pub strategy: ReplicaStrategy,
    /// The provider's `ca_file` (URLs use the system roots).
    pub ca_file: Option<PathBuf>,
    /// The provider's timeouts, or `upstream.timeouts`.
    pub timeouts: Timeouts,
}

/// One upstream URL of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    /// As written, without a trailing `/`.
    pub url: String,
    pub origin: Origin,
    /// Put before the request's path (empty for a bare origin and for a provider).
    pub base_path: String,
}

impl RouteUrl {
    /// `host` or `host:port` (when the port is not the scheme's default), as nginx's
    /// `$proxy_host`: the `Host` header a route sends upstream unless `set_headers` says.
    pub fn authority(&self) -> String {
        let o = &self.origin;
        let host = if o.host.contains(':') {
            format!("[{}]", o.host)
        } else {
            o.host.clone()
        };
        let default = if o.tls { 443 } else { 80 };
        if o.port == default {
            host
        } else {
            format!("{host}:{}", o.port)
        }
    }
}

/// Decodes `routes:` entry by entry (one bad route does not hide another's problem); an entry
/// that does not decode is left out (its problems are reported).
pub(crate) fn parse(
    value: serde_yaml::Value,
    path: &[Seg],
    env: &dyn crate::EnvSource,
    diag: &mut Diagnostics,
) -> Vec<RouteSection> {
    let items = match value {
        serde_yaml::Value::Null => return Vec::new(),
        serde_yaml::Value::Sequence(items) => items,
        other => {
            diag.at_value(
                path,
                format!(
                    "`routes` must be a list of routes (`- match: ...`), found {}",
                    crate::parse::kind(&other)
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let entry = [path, &[Seg::Index(index)]].concat();
        if let Some(mut route) = crate::parse::decode::<RouteSection>(item, &entry, env, diag) {
            route.index = index;
            out.push(route);
        }
    }
    out
}

/// Resolves `routes:`. `broken` providers already had their problems reported: a route naming
/// one is dropped quietly.
pub(crate) fn resolve(
    sections: &[RouteSection],
    providers: &[Arc<Provider>],
    broken: &HashSet<String>,
    default_timeouts: &Timeouts,
    diag: &mut Diagnostics,
) -> Vec<Arc<Route>> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for s in sections {
        let path = [Seg::key("routes"), Seg::Index(s.index)];
        let at = |rest: &[&str]| -> Vec<Seg> {
            let mut p = path.to_vec();
            p.extend(rest.iter().map(|k| Seg::key(k)));
            p
        };
        let before = diag.problem_count();
        let name = s
            .name
            .clone()
            .unwrap_or_else(|| format!("route{}", s.index));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
            diag.at_value(
                &at(&["name"]),
                "a route name must be non-empty printable ASCII without spaces",
            );
        } else if !names.insert(name.clone()) {
            diag.at_value(&at(&["name"]), format!("duplicate route name `{name}`"));
        }
        let matcher = matcher(&s.matcher, &at(&["match"]), diag);
        if s.strip_prefix && matcher.path_prefix.is_none() {
            diag.at_value(
                &at(&["strip_prefix"]),
                "`strip_prefix` needs `match.path_prefix` (the part it removes)",
            );
        }
        let mut set_headers = Vec::new();
        for (k, v) in &s.set_headers {
            let p = at(&["set_headers", k]);
            if !valid_header_name(k) {
                diag.at_key(&p, format!("`{k}` is not a valid header name"));
            } else if http_value_bad(v) {
                diag.at_value(&p, "a header value cannot contain control characters");
            } else {
                set_headers.push((k.to_ascii_lowercase(), v.clone()));
            }
        }
        let upstream = upstream(
            s,
            providers,
            broken,
            default_timeouts,
            &at(&["upstream"]),
            diag,
        );
        let health_check = s.health_check.as_ref().map(|hc| {
            if upstream.as_ref().is_some_and(|u| u.provider.is_some()) {
                diag.at_key(
                    &at(&["health_check"]),
                    "`health_check` is for URLs: a route to a provider uses the provider's `health_check`",
                );
            }
            health_check(hc, &at(&["health_check"]), diag)
        });
        if diag.problem_count() != before {
            continue;
        }
        if let Some(upstream) = upstream {
            out.push(Arc::new(Route {
                name,
                matcher,
                upstream,
                strip_prefix: s.strip_prefix,
                set_headers,
                auth: s.auth,
                health_check,
            }));
        }
    }
    out
}

fn matcher(m: &MatchSection, path: &[Seg], diag: &mut Diagnostics) -> RouteMatch {
    let sub = |k: &str| [path, &[Seg::key(k)]].concat();
    if m.path_prefix.is_none() && m.path.is_none() && m.host.is_none() && m.header.is_none() {
        diag.at_key(
            path,
            "`match` is empty: give at least one of `path_prefix`, `path`, `host`, `header` (`path_prefix: /` matches every path)",
        );
    }
    let mut out = RouteMatch::default();
    if let Some(p) = &m.path_prefix {
        if !p.starts_with('/') {
            diag.at_value(&sub("path_prefix"), format!("`{p}` must start with `/`"));
        }
        out.path_prefix = Some(p.trim_end_matches('/').to_string());
    }
    if let Some(p) = &m.path {
        if !p.starts_with('/') {
            diag.at_value(&sub("path"), format!("`{p}` must start with `/`"));
        }
        out.path = Some(p.clone());
    }
    if let Some(h) = &m.host {
        let h = h.trim().to_ascii_lowercase();
        let bare = h.strip_prefix("*.").unwrap_or(&h);
        if bare.is_empty()
            || bare.contains(['/', ':', '*'])
            || !bare.chars().all(|c| c.is_ascii_graphic())
        {
            diag.at_value(
                &sub("host"),
                format!("`{h}` is not a host name (no scheme, port or path; `*.` only in front)"),
            );
        }
        out.host = Some(h);
    }
    if let Some(hm) = &m.header {
        if !valid_header_name(&hm.name) {
            diag.at_value(
                &[path, &[Seg::key("header"), Seg::key("name")]].concat(),
                format!("`{}` is not a valid header name", hm.name),
            );
        }
        out.header = Some((hm.name.to_ascii_lowercase(), hm.value.clone()));
    }
    out
}

fn upstream(
    s: &RouteSection,
    providers: &[Arc<Provider>],
    broken: &HashSet<String>,
    default_timeouts: &Timeouts,
    path: &[Seg],
    diag: &mut Diagnostics,
) -> Option<RouteUpstream> {
    let list: Vec<(Vec<Seg>, &String)> = match &s.upstream {
        RouteUpstreamSection::One(one) => {
            if !one.contains("://") {
                if s.replica_strategy.is_some() {
                    let mut at = path.to_vec();
                    at.pop();
                    at.push(Seg::key("replica_strategy"));
                    diag.at_value(
                        &at,
                        format!("`replica_strategy` is for a list of URLs: a route to provider `{one}` uses the provider's `replica_strategy`"),
                    );
                }
                return provider_upstream(one, providers, broken, path, diag);
            }
            vec![(path.to_vec(), one)]
        }
        RouteUpstreamSection::Many(many) => many
            .iter()
            .enumerate()
            .map(|(i, u)| ([path, &[Seg::Index(i)]].concat(), u))
            .collect(),
    };
    if list.is_empty() {
        diag.at_value(path, "`upstream` is an empty list: give at least one URL");
        return None;
    }
    if list.len() > MAX_REPLICAS {
        diag.at_value(
            path,
            format!(
                "{} upstream URLs: a route has at most {MAX_REPLICAS}",
                list.len()
            ),
        );
        return None;
    }
    let mut urls = Vec::new();
    for (p, raw) in list {
        match parse_base(raw) {
            Ok(base) => urls.push(RouteUrl {
                url: base.api_base,
                origin: base.origin,
                base_path: base.base_path,
            }),
            Err(e) => diag.at_value(&p, format!("invalid upstream URL: {e}")),
        }
    }
    Some(RouteUpstream {
        urls,
        provider: None,
        strategy: s.replica_strategy.unwrap_or_default(),
        ca_file: None,
        timeouts: *default_timeouts,
    })
}

fn provider_upstream(
    id: &str,
    providers: &[Arc<Provider>],
    broken: &HashSet<String>,
    path: &[Seg],
    diag: &mut Diagnostics,
) -> Option<RouteUpstream> {
    let Some(p) = providers.iter().find(|p| p.id == id) else {
        if !broken.contains(id) {
            let mut known: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
            known.sort_unstable();
            diag.at_value(
                path,
                format!(
                    "`{id}` is neither a URL (`http://...`, `https://...`) nor a provider id (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        return None;
    };
    let origin_url = |o: &Origin| RouteUrl {
        url: format!(
            "{}://{}:{}",
            if o.tls { "https" } else { "http" },
            o.host,
            o.port
        ),
        origin: o.clone(),
        base_path: String::new(),
    };
    // A pool's replicas in its order (the proxy shares the provider's pool by index).
    let urls = if p.replicas.is_empty() {
        vec![origin_url(&p.origin)]
    } else {
        p.replicas
            .iter()
            .take(MAX_REPLICAS)
            .map(|r| origin_url(&r.origin))
            .collect()
    };
    Some(RouteUpstream {
        urls,
        provider: Some(p.id.clone()),
        strategy: p.replica_strategy,
        ca_file: p.ca_file.clone(),
        timeouts: p.timeouts,
    })
}

/// `routes[].health_check`: as a provider's, with `/` as the default path.
fn health_check(s: &HealthCheckSection, path: &[Seg], diag: &mut Diagnostics) -> HealthCheck {
    let at = |key: &str| [path, &[Seg::key(key)]].concat();
    let check_path = s.path.clone().unwrap_or_else(|| "/".to_string());
    if !check_path.starts_with('/')
        || check_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        diag.at_value(
            &at("path"),
            format!(
                "`health_check.path` must be an absolute path such as `/healthz`, found `{}`",
                check_path.escape_debug()
            ),
        );
    }
    let mut secs = |key: &str, value: Option<f64>, default: u64| {
        value
            .and_then(|v| crate::resolve::seconds(diag, &at(key), v, true))
            .unwrap_or(Duration::from_secs(default))
    };
    HealthCheck {
        kind: match s.kind {
            Some(HealthCheckKindName::Tcp) => HealthCheckKind::Tcp,
            Some(HealthCheckKindName::Http) | None => HealthCheckKind::Http,
        },
        path: check_path,
        interval: secs("interval_secs", s.interval_secs, 10),
        timeout: secs("timeout_secs", s.timeout_secs, 2),
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn http_value_bad(v: &str) -> bool {
    v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use crate::{load_str, MapEnv, ReplicaStrategy};

    fn load(yaml: &str) -> Result<crate::Config, String> {
        load_str(yaml, "b.yaml", &MapEnv::default()).map_err(|e| e.to_string())
    }

    fn err(yaml: &str) -> String {
        match load(yaml) {
            Ok(_) => panic!("expected an error for:\n{yaml}"),
            Err(e) => e,
        }
    }

    #[test]
    fn routes_resolve_urls_lists_and_providers() {
        let c = load(
            "providers:\n  vllm:\n    api_base: https://gpu1.internal:8443/v1\nroutes:\n  - name: grafana\n    match: {path_prefix: /grafana/}\n    upstream: http://127.0.0.1:3000/base/\n    strip_prefix: true\n    set_headers: {X-From: bitrouter}\n  - match: {host: \"*.Example.com\", header: {name: X-Env, value: prod}}\n    upstream: [http://a:1, http://b:2]\n  - match: {path: /metrics-vllm}\n    upstream: vllm\n    auth: true\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = &c.routes;
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].name, "grafana");
        assert_eq!(r[0].matcher.path_prefix.as_deref(), Some("/grafana"));
        assert_eq!(r[0].upstream.urls[0].base_path, "/base");
        assert_eq!(r[0].upstream.urls[0].authority(), "127.0.0.1:3000");
        assert_eq!(
            r[0].set_headers,
            vec![("x-from".into(), "bitrouter".into())]
        );
        assert_eq!(r[1].name, "route1");
        assert_eq!(r[1].matcher.host.as_deref(), Some("*.example.com"));
        assert_eq!(r[1].upstream.urls.len(), 2);
        assert_eq!(r[2].upstream.provider.as_deref(), Some("vllm"));
        assert_eq!(r[2].upstream.urls[0].authority(), "gpu1.internal:8443");
        assert!(r[2].auth);
    }

    #[test]
    fn matching_by_prefix_host_and_header() {
        let m = super::RouteMatch {
            path_prefix: Some("/api".into()),
            host: Some("*.example.com".into()),
            header: Some(("x-env".into(), "prod".into())),
            path: None,
        };
        let prod = |n: &str| (n == "x-env").then_some(&b"prod"[..]);
        assert!(m.matches("/api/x", Some("a.EXAMPLE.com"), prod));
        assert!(m.matches("/api", Some("a.example.com"), prod));
        assert!(!m.matches("/apix", Some("a.example.com"), prod));
        assert!(!m.matches("/api", Some("example.com"), prod));
        assert!(!m.matches("/api", Some("aexample.com"), prod));
        assert!(!m.matches("/api", None, prod));
        assert!(!m.matches("/api", Some("a.example.com"), |_| None));
        assert!(super::has_prefix("/anything", ""));
    }

    #[test]
    fn bad_routes_are_placed_in_the_file() {
        let e = err("routes:\n  - match: {}\n    upstream: http://127.0.0.1:1\n");
        assert!(
            e.contains("b.yaml:2:") && e.contains("`match` is empty"),
            "{e}"
        );
        let e = err("routes:\n  - match: {path_prefix: /x}\n    upstream: nosuch\n");
        assert!(
            e.contains("b.yaml:3:15") && e.contains("`nosuch` is neither a URL"),
            "{e}"
        );
        let e =
            err("routes:\n  - match: {path_prefix: /x}\n    upstream: [http://ok:1, 'ftp://no']\n");
        assert!(
            e.contains("b.yaml:3:") && e.contains("invalid upstream URL"),
            "{e}"
        );
        let e = err(
            "routes:\n  - match: {path: x}\n    upstream: http://h:1\n    strip_prefix: true\n",
        );
        assert!(
            e.contains("must start with `/`") && e.contains("`strip_prefix` needs"),
            "{e}"
        );
        let e = err("routes:\n  - match: {path: /x}\n    upstream: []\n");
        assert!(e.contains("empty list"), "{e}");
        let e = err("routes:\n  - match: {path: /x}\n    upstream: http://h:1\n    bogus: 1\n");
        assert!(
            e.contains("b.yaml:4:5") && e.contains("unknown field `bogus`"),
            "{e}"
        );
        let e = err("routes:\n  - {name: a, match: {path: /x}, upstream: 'http://h:1'}\n  - {name: a, match: {path: /y}, upstream: 'http://h:1'}\n");
        assert!(e.contains("duplicate route name `a`"), "{e}");
        let e = err("providers:\n  p: {api_base: 'http://h:1/v1', models: [m]}\nroutes:\n  - match: {path: /x}\n    upstream: p\n    replica_strategy: affinity\n");
        assert!(
            e.contains("b.yaml:6:") && e.contains("uses the provider's `replica_strategy`"),
            "{e}"
        );
        let many: Vec<String> = (0..65).map(|i| format!("'http://h:{}'", i + 1)).collect();
        let e = err(&format!(
            "routes:\n  - match: {{path: /x}}\n    upstream: [{}]\n",
            many.join(", ")
        ));
        assert!(e.contains("65 upstream URLs"), "{e}");
        let e = err("providers:\n  p: {api_base: 'http://h:1/v1', models: [m]}\nroutes:\n  - match: {path: /x}\n    upstream: p\n    health_check: {kind: tcp}\n");
        assert!(
            e.contains("b.yaml:6:") && e.contains("uses the provider's `health_check`"),
            "{e}"
        );
        let e = err("routes:\n  - match: {path: /x}\n    upstream: [http://h:1]\n    health_check: {path: healthz, interval_secs: -1}\n");
        assert!(
            e.contains("must be an absolute path") && e.contains("interval_secs"),
            "{e}"
        );
    }

    #[test]
    fn a_list_or_a_provider_pool_gives_every_url_and_the_strategy() {
        let c = load(
            "providers:\n  pool:\n    api_base: [http://g1:8000/v1, http://g2:8000/v1]\n    replica_strategy: round_robin\n    models: [m]\nroutes:\n  - match: {path_prefix: /a}\n    upstream: pool\n  - match: {path_prefix: /b}\n    upstream: [http://a:1, http://b:2]\n    replica_strategy: affinity\n  - match: {path_prefix: /c}\n    upstream: [http://a:1, http://b:2]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = &c.routes;
        let urls: Vec<_> = r[0].upstream.urls.iter().map(|u| u.url.as_str()).collect();
        assert_eq!(urls, ["http://g1:8000", "http://g2:8000"]);
        assert!(r[0].upstream.urls.iter().all(|u| u.base_path.is_empty()));
        assert_eq!(r[0].upstream.strategy, ReplicaStrategy::RoundRobin);
        assert_eq!(r[1].upstream.strategy, ReplicaStrategy::Affinity);
        assert_eq!(r[2].upstream.strategy, ReplicaStrategy::LeastRequests);
        assert!(r[0].health_check.is_none());
        let c = load("routes:\n  - match: {path_prefix: /a}\n    upstream: [http://a:1, http://b:2]\n    health_check: {kind: tcp, interval_secs: 0.5}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let hc = c.routes[0]
            .health_check
            .as_ref()
            .unwrap_or_else(|| panic!("no check"));
        assert_eq!(hc.kind, crate::HealthCheckKind::Tcp);
        assert_eq!(hc.path, "/");
        assert_eq!(hc.interval, std::time::Duration::from_millis(500));
        assert_eq!(hc.timeout, std::time::Duration::from_secs(2));
    }
}
