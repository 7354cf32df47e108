//! Agent Runtime Identities: who an agent is, what key it holds, and how its process is known.
//!
//! An agent is registered with *selectors* (uid, and optionally gid, executable digest and
//! cgroup prefix). A caller on the agent socket is that agent exactly when its measured process
//! facts match the selectors of one and only one non-retired agent; zero or several matches are
//! both refusals, so two registrations can never make a caller ambiguous in its favour. The
//! [`Registry`] is the in-memory view the request path reads; it is only changed after the store
//! has committed the same change, so it never runs ahead of durable state.

pub mod certificate;

use crate::backend::KeyInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// The lifecycle of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Serves requests.
    Active,
    /// Refused from the next request on, until unfrozen.
    Frozen,
    /// Key destroyed; the id stays reserved so evidence never names two agents alike.
    Retired,
}

impl AgentStatus {
    /// Every status.
    pub const ALL: [Self; 3] = [Self::Active, Self::Frozen, Self::Retired];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Frozen => "frozen",
            Self::Retired => "retired",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "frozen" => Some(Self::Frozen),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// How an agent's process is recognized. Absent selectors match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    /// The process's uid (required: an agent is never "any user").
    pub uid: u32,
    /// The process's gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// SHA-256 of the process's executable, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_sha256: Option<String>,
    /// A prefix of the process's cgroup path (cgroup v2), e.g. `/system.slice/agent.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

/// What the daemon measured about a calling process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerFacts {
    /// From SO_PEERCRED.
    pub pid: i32,
    /// From SO_PEERCRED.
    pub uid: u32,
    /// From SO_PEERCRED.
    pub gid: u32,
    /// Process start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    /// SHA-256 of the executable, lowercase hex; `None` when it could not be read.
    pub exe_sha256: Option<String>,
    /// The cgroup v2 path; `None` when unknown.
    pub cgroup: Option<String>,
}

impl Selectors {
    /// Checks the selector values themselves.
    pub fn validate(&self) -> Result<(), &'static str> {
        let hex_digit = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if let Some(d) = &self.exe_sha256
            && (d.len() != 64 || !d.bytes().all(hex_digit))
        {
            return Err("exe_sha256 must be 64 lowercase hex digits");
        }
        if let Some(c) = &self.cgroup
            && (!c.starts_with('/') || c.len() > 4096)
        {
            return Err(
                "cgroup must be an absolute cgroup path such as /system.slice/agent.service",
            );
        }
        Ok(())
    }

    /// Whether a caller's facts satisfy every selector.
    pub fn matches(&self, facts: &CallerFacts) -> bool {
        self.uid == facts.uid
            && self.gid.is_none_or(|g| g == facts.gid)
            && self
                .exe_sha256
                .as_ref()
                .is_none_or(|want| facts.exe_sha256.as_ref() == Some(want))
            && self.cgroup.as_ref().is_none_or(|prefix| {
                facts.cgroup.as_ref().is_some_and(|c| {
                    c == prefix
                        || (c.starts_with(prefix.as_str())
                            && c.as_bytes().get(prefix.len()) == Some(&b'/'))
                })
            })
    }
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Operator-chosen id, `[A-Za-z0-9._-]{1,64}`.
    pub id: String,
    /// This instance's id (random), so a re-provisioned id is told apart in evidence.
    pub instance: String,
    /// The user the agent acts for.
    pub user: String,
    /// The ARI key.
    pub key: KeyInfo,
    /// How its process is recognized.
    pub selectors: Selectors,
    /// Lifecycle state.
    pub status: AgentStatus,
    /// Certificate for the key, PEM, if one was imported.
    pub certificate: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Checks an agent id.
pub fn validate_agent_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err("an agent id is 1 to 64 characters from A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// Checks a user id.
pub fn validate_user(user: &str) -> Result<(), &'static str> {
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err("a user id is 1 to 256 printable characters");
    }
    Ok(())
}

/// Why a caller is not served as an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// No agent's selectors match.
    #[error("the calling process matches no registered agent")]
    NoMatch,
    /// Several agents' selectors match; the operator must make them distinct.
    #[error("the calling process matches {0} agents; selectors must single out one")]
    Ambiguous(usize),
    /// The one matching agent is frozen.
    #[error("agent {0} is frozen")]
    Frozen(String),
}

/// The in-memory view of all agents.
#[derive(Debug, Default)]
pub struct Registry {
    agents: RwLock<BTreeMap<String, Agent>>,
}

impl Registry {
    /// A registry holding these agents.
    pub fn new(agents: Vec<Agent>) -> Self {
        Self {
            agents: RwLock::new(agents.into_iter().map(|a| (a.id.clone(), a)).collect()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Agent>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The one non-retired agent whose selectors match the caller.
    pub fn match_caller(&self, facts: &CallerFacts) -> Result<Agent, MatchError> {
        let agents = self.read();
        let mut found = agents
            .values()
            .filter(|a| a.status != AgentStatus::Retired && a.selectors.matches(facts));
        let Some(first) = found.next() else {
            return Err(MatchError::NoMatch);
        };
        let others = found.count();
        if others > 0 {
            return Err(MatchError::Ambiguous(others + 1));
        }
        if first.status == AgentStatus::Frozen {
            return Err(MatchError::Frozen(first.id.clone()));
        }
        Ok(first.clone())
    }

    /// An agent by id.
    pub fn get(&self, id: &str) -> Option<Agent> {
        self.read().get(id).cloned()
    }

    /// Every agent, by id.
    pub fn all(&self) -> Vec<Agent> {
        self.read().values().cloned().collect()
    }

    /// The non-retired agent with exactly these selectors, if any.
    pub fn with_selectors(&self, selectors: &Selectors) -> Option<String> {
        self.read()
            .values()
            .find(|a| a.status != AgentStatus::Retired && &a.selectors == selectors)
            .map(|a| a.id.clone())
    }

    /// Inserts or replaces an agent (after the store has committed it).
    pub fn put(&self, agent: Agent) {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        agents.insert(agent.id.clone(), agent);
    }

    /// Counts agents by status.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for a in self.read().values() {
            *counts.entry(a.status.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// The runtime claim of an attestation is the caller as measured.
impl From<&CallerFacts> for crate::attest::RuntimeClaim {
    fn from(f: &CallerFacts) -> Self {
        Self {
            uid: f.uid,
            gid: f.gid,
            pid: f.pid,
            start_time: f.start_time,
            exe_sha256: f.exe_sha256.clone(),
            cgroup: f.cgroup.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CallerFacts {
        CallerFacts {
            pid: 10,
            uid: 1000,
            gid: 1000,
            start_time: 5,
            exe_sha256: Some("ab".repeat(32)),
            cgroup: Some("/user.slice/agent.scope".into()),
        }
    }

    #[test]
    fn selectors_match_on_every_given_fact() {
        let mut s = Selectors {
            uid: 1000,
            gid: None,
            exe_sha256: None,
            cgroup: None,
        };
        assert!(s.matches(&facts()));
        s.exe_sha256 = Some("ab".repeat(32));
        s.cgroup = Some("/user.slice".into());
        assert!(s.matches(&facts()));
        s.cgroup = Some("/user.sl".into());
        assert!(
            !s.matches(&facts()),
            "a cgroup prefix must end at a path boundary"
        );
        s.cgroup = None;
        s.gid = Some(0);
        assert!(!s.matches(&facts()));
        let unknown_exe = CallerFacts {
            exe_sha256: None,
            ..facts()
        };
        let s = Selectors {
            uid: 1000,
            gid: None,
            exe_sha256: Some("ab".repeat(32)),
            cgroup: None,
        };
        assert!(!s.matches(&unknown_exe));
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_agent_id("shop-bot.1").is_ok());
        assert!(validate_agent_id("").is_err());
        assert!(validate_agent_id("a/b").is_err());
        assert!(validate_user("alice@example.com").is_ok());
        assert!(validate_user("a\nb").is_err());
    }
}
