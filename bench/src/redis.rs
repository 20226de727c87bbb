//! The Redis the cached server and redis-benchmark use, and cleaning up the bench's keys.

use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct Redis {
    pub url: String,
    pub host: String,
    pub port: u16,
    /// CACHE_PREFIX for the cached server: the service names its keys `<prefix>:...`, and so does
    /// the bench (see `key`), so `<prefix>:*` is everything the run wrote.
    pub prefix: String,
}

impl Redis {
    pub fn from_url(url: &str) -> Result<Redis, String> {
        let rest = url.strip_prefix("redis://");
        let rest =
            rest.ok_or_else(|| format!("BENCH_REDIS_URL must start with redis://, got {url:?}"))?;
        let authority = rest
            .split('/')
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url:?}"))?),
            None => (authority, 6379),
        };
        let host = if host.is_empty() { "127.0.0.1" } else { host }.to_owned();
        let prefix = format!("seatbook-bench-{}", std::process::id());
        Ok(Redis {
            url: url.to_owned(),
            host,
            port,
            prefix,
        })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// `program` (redis-cli, redis-benchmark) pointed at this Redis.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.args(["-h", &self.host, "-p", &self.port.to_string()]);
        command
    }

    /// Deletes every key under the bench's prefix. Best effort: needs redis-cli (redis-tools).
    pub fn clean_up(&self) {
        let pattern = self.key("*");
        let scan = self
            .command("redis-cli")
            .args(["--scan", "--pattern", &pattern])
            .stderr(Stdio::null())
            .output();
        let Ok(scan) = scan else {
            return eprintln!("note: redis-cli not found; keys {pattern} were left in Redis");
        };
        let keys = String::from_utf8_lossy(&scan.stdout);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        for chunk in keys.chunks(500) {
            let _ = self
                .command("redis-cli")
                .arg("DEL")
                .args(chunk)
                .stdout(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_give_host_and_port() {
        let r = super::Redis::from_url("redis://127.0.0.1:6379").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", 6379));
        let r = super::Redis::from_url("redis://:secret@cache.local/2").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("cache.local", 6379));
        assert!(super::Redis::from_url("http://x").is_err());
    }
}
