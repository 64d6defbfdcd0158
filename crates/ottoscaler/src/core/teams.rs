//! Teams: who a bearer token belongs to, what the team may see and use. Read from
//! `--teams-file` (YAML, usually a mounted Secret); the file holds SHA-256 hashes of
//! the tokens, never the tokens, as an htpasswd file does.
//!
//! ```yaml
//! teams:
//!   web:
//!     token_sha256: 5e88489…   # printf %s "$TOKEN" | sha256sum
//!     quota: { workers: 3, cpu: "3", memory: 6Gi }
//!   platform:
//!     token_sha256: 9f86d08…
//!     admin: true             # sees and acts on every team's runs and workers
//! ```
//!
//! A team sees and acts only on its own runs, tasks and workers; an admin team on
//! every team's. A quota bounds the workers a team holds at once (Pending or
//! Running), and the sum of their cpu and memory requests.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::core::config::parse_quantity;

/// The team of the single `--token` (when no teams file is given, or beside one):
/// an admin, as the one token was before teams existed.
pub const DEFAULT_TEAM: &str = "default";

/// What a team may hold at once; `None` = no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Workers.
    pub workers: Option<u32>,
    /// Sum of cpu requests, millicores.
    pub cpu_milli: Option<u64>,
    /// Sum of memory requests, bytes.
    pub memory_bytes: Option<u64>,
}

/// What one worker costs against its team's quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// cpu request, millicores.
    pub cpu_milli: u64,
    /// memory request, bytes.
    pub memory_bytes: u64,
}

impl Cost {
    /// The cost of a worker with these requests (`cpu`, `memory` quantities).
    pub fn of(requests: &BTreeMap<String, String>) -> Self {
        let q = |k: &str| {
            requests
                .get(k)
                .and_then(|v| parse_quantity(v))
                .unwrap_or(0.0)
        };
        // Quantities were checked when the class and the request were resolved;
        // rounding up keeps a fraction of a millicore or byte from escaping a quota.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Self {
            cpu_milli: (q("cpu") * 1000.0).ceil() as u64,
            memory_bytes: q("memory").ceil() as u64,
        }
    }
}

/// Who called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The team's name (a label value on its workers and records).
    pub team: String,
    /// Sees and acts on every team's runs and workers.
    pub admin: bool,
}

impl Caller {
    /// Whether this caller may see and act on what `owner` owns.
    pub fn may(&self, owner: &str) -> bool {
        self.admin || self.team == owner
    }
}

/// One team as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Name.
    pub name: String,
    /// SHA-256 of its token.
    pub token_sha256: [u8; 32],
    /// Admin.
    pub admin: bool,
    /// Quota.
    pub quota: Quota,
}

/// Every team, and the single `--token`'s hash when one is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teams {
    teams: Vec<Team>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    teams: BTreeMap<String, TeamEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamEntry {
    token_sha256: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    quota: QuotaEntry,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaEntry {
    workers: Option<u32>,
    cpu: Option<String>,
    memory: Option<String>,
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A team name is a label value and a DNS label (it is a label of pods and records
/// and appears in Event notes), at most 63 characters.
fn check_team_name(name: &str) -> Result<(), String> {
    crate::core::spec::check_name(&format!("teams.{name}"), name, 63).map_err(|e| e.to_string())
}

impl Teams {
    /// Only the single token, as team [`DEFAULT_TEAM`] (admin, no quota).
    pub fn single(token: &str) -> Self {
        Self {
            teams: vec![Team {
                name: DEFAULT_TEAM.into(),
                token_sha256: sha256(token),
                admin: true,
                quota: Quota::default(),
            }],
        }
    }

    /// Parses a teams file's text; errors name the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: File = steward_runtime::yaml::from_str(text)?;
        if f.teams.is_empty() {
            return Err("teams: no team is defined".into());
        }
        let mut teams = Vec::with_capacity(f.teams.len());
        for (name, e) in f.teams {
            check_team_name(&name)?;
            let field = |k: &str| format!("teams.{name}.{k}");
            let mut hash = [0u8; 32];
            hex::decode_to_slice(e.token_sha256.trim(), &mut hash).map_err(|_| {
                format!(
                    "{}: 64 hex digits are needed (printf %s \"$TOKEN\" | sha256sum)",
                    field("token_sha256")
                )
            })?;
            let amount = |k: &str, v: &Option<String>, scale: f64| -> Result<Option<u64>, String> {
                v.as_deref()
                    .map(|s| {
                        parse_quantity(s)
                            .filter(|q| *q >= 0.0)
                            .map(|q| {
                                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                                let n = (q * scale).floor() as u64;
                                n
                            })
                            .ok_or_else(|| format!("{}: \"{s}\" is not a quantity", field(k)))
                    })
                    .transpose()
            };
            let quota = Quota {
                workers: e.quota.workers,
                cpu_milli: amount("quota.cpu", &e.quota.cpu, 1000.0)?,
                memory_bytes: amount("quota.memory", &e.quota.memory, 1.0)?,
            };
            if teams.iter().any(|t: &Team| t.token_sha256 == hash) {
                return Err(format!(
                    "{}: another team has the same token",
                    field("token_sha256")
                ));
            }
            teams.push(Team {
                name,
                token_sha256: hash,
                admin: e.admin,
                quota,
            });
        }
        Ok(Self { teams })
    }

    /// Adds the single `--token` as team [`DEFAULT_TEAM`], refusing a clash.
    pub fn with_token(mut self, token: &str) -> Result<Self, String> {
        let single = Self::single(token).teams.remove(0);
        if self.teams.iter().any(|t| t.name == DEFAULT_TEAM) {
            return Err(format!(
                "teams.{DEFAULT_TEAM}: the name is taken by --token; rename the team"
            ));
        }
        if self
            .teams
            .iter()
            .any(|t| t.token_sha256 == single.token_sha256)
        {
            return Err("--token: a team in --teams-file has the same token".into());
        }
        self.teams.push(single);
        Ok(self)
    }

    /// The caller a token belongs to. Every team's hash is compared, in constant
    /// time, so the time taken says nothing about which team or how close.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        use subtle::ConstantTimeEq;
        let h = sha256(token);
        let mut found = None;
        for t in &self.teams {
            if bool::from(t.token_sha256.ct_eq(&h)) {
                found = Some(Caller {
                    team: t.name.clone(),
                    admin: t.admin,
                });
            }
        }
        found
    }

    /// Every team's quota by name.
    pub fn quotas(&self) -> BTreeMap<String, Quota> {
        self.teams
            .iter()
            .map(|t| (t.name.clone(), t.quota))
            .collect()
    }
}

#[cfg(test)]
#[path = "teams_tests.rs"]
mod tests;
