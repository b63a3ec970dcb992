//! Replica pools: a provider whose `api_base` is a list of URLs, the replicas of one inference
//! service (a vLLM or SGLang fleet). Every replica serves the same API under the same path with
//! the same keys, so only the scheme, host and port differ; the proxy spreads requests over them
//! by `replica_strategy` and keeps health per replica (`proxy/src/balance/replicas.rs`).

use crate::resolve::{parse_base, Base};
use crate::resolved::Origin;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `providers.<id>.api_base`: one URL (as always) or the URLs of a pool's replicas.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum ApiBase {
    /// One base URL.
    One(String),
    /// The replicas of one service, each a base URL with the same path part
    /// (`[http://10.0.0.1:8000/v1, http://10.0.0.2:8000/v1]`).
    Many(Vec<String>),
}

/// By hand rather than `#[serde(untagged)]`, whose error ("data did not match any variant")
/// does not say what is expected.
impl<'de> Deserialize<'de> for ApiBase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ApiBase;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL or a list of URLs (the replicas of one service)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ApiBase, E> {
                Ok(ApiBase::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ApiBase, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(url);
                }
                Ok(ApiBase::Many(urls))
            }
        }
        d.deserialize_any(V)
    }
}

/// `providers.<id>.replica_strategy`: how requests spread over the replicas of an `api_base`
/// list (ignored for a single URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaStrategy {
    /// The replica with the fewest requests in flight from this router (ties in turn): LLM
    /// requests differ a thousandfold in length, so counting requests beats taking turns.
    #[default]
    LeastRequests,
    /// Each replica in turn.
    RoundRobin,
    /// Requests of one session or prompt prefix go to the same replica (its KV cache stays
    /// warm): consistent hashing with bounded load.
    Affinity,
}

impl ReplicaStrategy {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaStrategy::LeastRequests => "least_requests",
            ReplicaStrategy::RoundRobin => "round_robin",
            ReplicaStrategy::Affinity => "affinity",
        }
    }
}

/// The most replicas one provider may list (the proxy tracks a request's tried replicas in a
/// 64-bit mask; a fleet larger than this is better split into providers behind a virtual model).
pub const MAX_REPLICAS: usize = 64;

/// One replica of a pool, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Replica {
    /// The URL as written, without a trailing slash.
    pub api_base: String,
    pub origin: Origin,
}

impl Replica {
    /// `host:port`: how logs, metrics and `/health/upstreams` name the replica.
    pub fn label(&self) -> String {
        if self.origin.host.contains(':') {
            format!("[{}]:{}", self.origin.host, self.origin.port)
        } else {
            format!("{}:{}", self.origin.host, self.origin.port)
        }
    }
}

/// Parses an `api_base`: the first replica's [`Base`] (what a provider's `api_base`, `origin`
/// and `base_path` hold) and, for a list of two or more URLs, every replica in order (empty for
/// one URL, so a single-URL provider is exactly what it always was).
pub(crate) fn parse(api_base: &ApiBase) -> Result<(Base, Vec<Replica>), String> {
    let urls: &[String] = match api_base {
        ApiBase::One(url) => return Ok((parse_base(url)?, Vec::new())),
        ApiBase::Many(urls) => urls,
    };
    if urls.len() > MAX_REPLICAS {
        return Err(format!(
            "{} replicas: a pool has at most {MAX_REPLICAS}",
            urls.len()
        ));
    }
    let mut bases = Vec::with_capacity(urls.len());
    for url in urls {
        bases.push(parse_base(url)?);
    }
    let mut bases = bases.into_iter();
    let Some(first) = bases.next() else {
        return Err("the list is empty: give at least one URL".to_string());
    };
    let mut replicas = vec![Replica {
        api_base: first.api_base.clone(),
        origin: first.origin.clone(),
    }];
    for b in bases {
        if b.base_path != first.base_path {
            return Err(format!(
                "the replicas of one provider share one path: `{}` has `{}`, `{}` has `{}` (declare another provider for another service)",
                first.api_base, first.base_path, b.api_base, b.base_path
            ));
        }
        if replicas.iter().any(|r| r.origin == b.origin) {
            return Err(format!("`{}` is listed twice", b.api_base));
        }
        replicas.push(Replica {
            api_base: b.api_base,
            origin: b.origin,
        });
    }
    if replicas.len() == 1 {
        replicas.clear();
    }
    Ok((first, replicas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn many(urls: &[&str]) -> ApiBase {
        ApiBase::Many(urls.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_list_is_a_pool_and_one_url_is_not() {
        let Ok((base, replicas)) = parse(&many(&[
            "http://10.0.0.1:8000/v1/",
            "http://10.0.0.2:8000/v1",
        ])) else {
            panic!("a valid list");
        };
        assert_eq!(base.api_base, "http://10.0.0.1:8000/v1");
        assert_eq!(base.base_path, "/v1");
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[1].label(), "10.0.0.2:8000");
        let one = parse(&ApiBase::One("http://h:1/v1".into())).map(|(_, r)| r);
        assert_eq!(one, Ok(Vec::new()));
        let single_list = parse(&many(&["http://h:1/v1"])).map(|(_, r)| r);
        assert_eq!(
            single_list,
            Ok(Vec::new()),
            "a list of one is a plain provider"
        );
        let e = err(&many(&["http://a:1/v1"; 65]));
        assert!(e.contains("at most 64"), "{e}");
    }

    fn err(api_base: &ApiBase) -> String {
        match parse(api_base) {
            Ok(_) => panic!("accepted {api_base:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn replicas_must_share_the_path_and_differ() {
        let e = err(&many(&["http://a:1/v1", "http://b:1/api"]));
        assert!(e.contains("share one path"), "{e}");
        let e = err(&many(&["http://a:1/v1", "http://a:1/v1/"]));
        assert!(e.contains("twice"), "{e}");
        assert!(parse(&many(&[])).is_err());
        assert!(parse(&many(&["http://a:1/v1", "ftp://b/v1"])).is_err());
    }
}
