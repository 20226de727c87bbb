//! The Redis the cached server and redis-benchmark use, and cleaning up the bench's keys.

use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct Redis {
    pub url: String,
    pub host: String,
    pub port: u16,
    /// CACHE_PREFIX for the cached server: the service names its keys `<prefix>:...`, and so
    /// does the bench (see `key`), so `<prefix>:*` is everything the run wrote.
    pub prefix: String,
}

impl Redis {
    pub fn from_url(url: &str) -> Result<Redis, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("BENCH_REDIS_URL must start with redis://, got {url:?}"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse().map_err(|_| format!("bad port in {url:?}"))?,
            ),
            None => (authority.to_owned(), 6379),
        };
        Ok(Redis {
            url: url.to_owned(),
            host: if host.is_empty() {
                "127.0.0.1".into()
            } else {
                host
            },
            port,
            prefix: format!("seatbook-bench-{}", std::process::id()),
        })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Deletes every key under the bench's prefix. Best effort: needs redis-cli (redis-tools).
    pub fn clean_up(&self) {
        let scan = Command::new("redis-cli")
            .args(["-h", &self.host, "-p", &self.port.to_string(), "--scan"])
            .args(["--pattern", &self.key("*")])
            .stderr(Stdio::null())
            .output();
        let Ok(scan) = scan else {
            eprintln!(
                "note: redis-cli not found; keys {} were left in Redis",
                self.key("*")
            );
            return;
        };
        let keys: Vec<String> = String::from_utf8_lossy(&scan.stdout)
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        for chunk in keys.chunks(500) {
            let _ = Command::new("redis-cli")
                .args(["-h", &self.host, "-p", &self.port.to_string(), "DEL"])
                .args(chunk)
                .stdout(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        let r = Redis::from_url("redis://127.0.0.1:6379").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", 6379));
        let r = Redis::from_url("redis://:secret@cache.local/2").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("cache.local", 6379));
        assert!(Redis::from_url("http://x").is_err());
    }
}
