//! Which node holds a user's mailbox, from the user entry's extra fields as
//! Dovecot's passdb means them (`host`, `port`, `proxy`, `proxy_maybe`;
//! bare or `userdb_`-prefixed) and our own `tempfail`, read against
//! `[proxy]`. A pure decision on values: must not connect, resolve names
//! or log.

use crate::config::ProxyConfig;
use crate::users::User;

/// Where one recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Delivered here, as without a proxy.
    Local,
    /// Forwarded to the mailstow on another node.
    Remote(Backend),
    /// `proxy` to a host that is this node (without `proxy_maybe`).
    Loop,
    /// The mailbox is moving between nodes: 451 4.2.1 until it is done.
    Moving,
    /// The routing fields cannot be used (a bad port): a temporary failure.
    Invalid(String),
}

/// A backend node's LMTP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    pub host: String,
    pub port: u16,
}

impl Backend {
    /// `host:port` (`[v6]:port`): what is connected to, the pool's key and
    /// the metrics' label.
    pub fn key(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The route of `user` under `cfg`. Maintenance holds a user back even
/// with the proxy off (a move between disks of one node).
pub fn route(user: &User, cfg: &ProxyConfig) -> Route {
    let name = user.name.to_ascii_lowercase();
    if flag(user, "tempfail") || cfg.maintenance.contains(&name) {
        return Route::Moving;
    }
    let (Some(host), true) = (field(user, "host"), cfg.enabled) else {
        return Route::Local;
    };
    let maybe = flag(user, "proxy_maybe");
    if !(maybe || flag(user, "proxy")) || host.is_empty() {
        return Route::Local;
    }
    let is_self = cfg.self_hosts.contains(&host.to_ascii_lowercase());
    match (is_self, maybe) {
        (true, true) => return Route::Local,
        (true, false) => return Route::Loop,
        _ => {}
    }
    let port = match field(user, "port") {
        None | Some("") => cfg.port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Route::Invalid(format!("port={p} is not a TCP port")),
        },
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Route::Remote(Backend { host, port })
}

/// The value of `key` or `userdb_key`, the first that is there.
fn field<'a>(user: &'a User, key: &str) -> Option<&'a str> {
    user.extra.iter().find_map(|(k, v)| {
        let bare = k.strip_prefix("userdb_").unwrap_or(k);
        bare.eq_ignore_ascii_case(key).then_some(v.trim())
    })
}

/// A yes/no field: there, and not `n`, `no`, `0` or `false`.
fn flag(user: &User, key: &str) -> bool {
    field(user, key).is_some_and(|v| {
        !["n", "no", "0", "false"]
            .iter()
            .any(|no| v.eq_ignore_ascii_case(no))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> ProxyConfig {
        ProxyConfig {
            enabled: true,
            self_hosts: vec!["10.0.0.1".into(), "node1".into()],
            port: 24,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_idle: 4,
            maintenance: vec!["moving@example.org".into()],
        }
    }

    fn user(name: &str, extra: &str) -> User {
        User {
            name: name.into(),
            local: name.split('@').next().unwrap_or(name).into(),
            domain: "example.org".into(),
            detail: None,
            uid: None,
            gid: None,
            home: "/h".into(),
            maildir: "/h/Maildir".into(),
            extra: extra
                .split_whitespace()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.into(), v.into()),
                    None => (kv.into(), String::new()),
                })
                .collect(),
        }
    }

    fn remote(host: &str, port: u16) -> Route {
        Route::Remote(Backend {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn host_with_proxy_goes_to_that_node_bare_or_userdb_prefixed() {
        let c = cfg();
        assert_eq!(
            route(&user("a@example.org", "proxy=y host=10.0.0.2"), &c),
            remote("10.0.0.2", 24)
        );
        assert_eq!(
            route(
                &user(
                    "a@example.org",
                    "userdb_proxy=y userdb_host=b2 userdb_port=2424"
                ),
                &c
            ),
            remote("b2", 2424)
        );
        assert_eq!(
            route(&user("a@example.org", "proxy host=[::1] port=25"), &c),
            remote("::1", 25)
        );
        assert_eq!(remote("::1", 25), remote("::1", 25));
    }

    #[test]
    fn without_proxy_flag_or_with_proxy_off_it_is_local() {
        let c = cfg();
        assert_eq!(
            route(&user("a@example.org", "host=10.0.0.2"), &c),
            Route::Local
        );
        assert_eq!(
            route(&user("a@example.org", "proxy=n host=10.0.0.2"), &c),
            Route::Local
        );
        let off = ProxyConfig {
            enabled: false,
            ..cfg()
        };
        assert_eq!(
            route(&user("a@example.org", "proxy=y host=10.0.0.2"), &off),
            Route::Local
        );
    }

    #[test]
    fn self_is_local_with_proxy_maybe_and_a_loop_with_proxy() {
        let c = cfg();
        assert_eq!(
            route(&user("a@example.org", "proxy_maybe=y host=Node1"), &c),
            Route::Local
        );
        assert_eq!(
            route(&user("a@example.org", "proxy=y host=10.0.0.1"), &c),
            Route::Loop
        );
        assert_eq!(
            route(&user("a@example.org", "proxy_maybe=y host=10.0.0.9"), &c),
            remote("10.0.0.9", 24)
        );
    }

    #[test]
    fn tempfail_or_maintenance_holds_the_user_back_even_with_proxy_off() {
        let off = ProxyConfig {
            enabled: false,
            ..cfg()
        };
        assert_eq!(
            route(&user("a@example.org", "tempfail=y"), &off),
            Route::Moving
        );
        assert_eq!(route(&user("Moving@example.org", ""), &off), Route::Moving);
        assert_eq!(
            route(&user("a@example.org", "tempfail=no"), &off),
            Route::Local
        );
    }

    #[test]
    fn a_bad_port_is_invalid_not_a_guess() {
        let r = route(&user("a@example.org", "proxy=y host=h port=99999"), &cfg());
        assert!(matches!(r, Route::Invalid(_)), "{r:?}");
    }
}
