//! What the proxy logs in with: the developer's access token (the CLI's login, renewed before it runs out) and
//! their personal role on this database (from their active grant, looked up again after a refused login).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::CliError;
use crate::access::AccessApi;
use crate::login::{LoginConfig, Token, login};

/// The login shared by every connection: one renewal at a time, the others wait for it.
pub struct Tokens {
    agent: ureq::Agent,
    config: Arc<LoginConfig>,
    current: Mutex<Option<Token>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tokens {
    pub fn new(agent: ureq::Agent, config: LoginConfig) -> Tokens {
        Tokens {
            agent,
            config: Arc::new(config),
            current: Mutex::new(None),
        }
    }

    /// A token good for a while yet; renewing it may print a device-flow prompt on stdout.
    pub async fn get(&self) -> Result<Token, CliError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.fresh_at(now())) {
            return Ok(token.clone());
        }
        let (agent, config) = (self.agent.clone(), self.config.clone());
        let token =
            tokio::task::spawn_blocking(move || login(&agent, &config, &mut std::io::stdout()))
                .await
                .map_err(|e| CliError::Login(format!("the login stopped: {e}")))??;
        *current = Some(token.clone());
        Ok(token)
    }
}

/// Where the role comes from.
pub enum Roles {
    /// Given on the command line.
    Fixed(String),
    /// The caller's active grant on `namespace/postgres`, from the access API.
    FromGrant {
        api_base: String,
        namespace: String,
        postgres: String,
        known: Mutex<Option<String>>,
    },
}

impl Roles {
    /// The role to log in as.
    pub async fn get(&self, tokens: &Tokens, agent: &ureq::Agent) -> Result<String, CliError> {
        let (api_base, namespace, postgres, known) = match self {
            Roles::Fixed(role) => return Ok(role.clone()),
            Roles::FromGrant {
                api_base,
                namespace,
                postgres,
                known,
            } => (api_base, namespace, postgres, known),
        };
        let mut known = known.lock().await;
        if let Some(role) = known.as_ref() {
            return Ok(role.clone());
        }
        let token = tokens.get().await?.access_token;
        let api = AccessApi {
            base: api_base.clone(),
            agent: agent.clone(),
            token,
        };
        let list = tokio::task::spawn_blocking(move || api.mine())
            .await
            .map_err(|e| CliError::Unavailable(format!("listing grants stopped: {e}")))??;
        let role = active_role(&list, namespace, postgres).ok_or_else(|| {
            CliError::Refused(format!(
                "you have no active access to {namespace}/{postgres}: ask for it with \
                 `pgrator postgres access {postgres} -n {namespace} --reason ...`"
            ))
        })?;
        *known = Some(role.clone());
        Ok(role)
    }

    /// Forgets the role after a refused login: the grant may have ended and a new one named another role.
    pub async fn forget(&self) {
        if let Roles::FromGrant { known, .. } = self {
            *known.lock().await = None;
        }
    }
}

/// Of the caller's grants (the access API's list), the active one on `namespace/postgres` with the most time left.
pub fn active_role(list: &Value, namespace: &str, postgres: &str) -> Option<String> {
    list["items"]
        .as_array()?
        .iter()
        .filter(|g| {
            g["namespace"] == namespace && g["postgres"] == postgres && g["phase"] == "Active"
        })
        .max_by_key(|g| g["secondsLeft"].as_i64().unwrap_or(0))
        .and_then(|g| g["role"].as_str())
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::active_role;
    use serde_json::json;

    #[test]
    fn the_active_grant_with_the_most_time_left_names_the_role() {
        let list = json!({"items": [
            {"namespace": "team", "postgres": "orders", "phase": "Active", "role": "p_alice_read_1", "secondsLeft": 100},
            {"namespace": "team", "postgres": "orders", "phase": "Active", "role": "p_alice_readwrite_2", "secondsLeft": 900},
            {"namespace": "team", "postgres": "orders", "phase": "Expired", "role": "p_alice_admin_3", "secondsLeft": 5000},
            {"namespace": "team", "postgres": "billing", "phase": "Active", "role": "p_alice_admin_4", "secondsLeft": 5000},
            {"namespace": "other", "postgres": "orders", "phase": "Active", "role": "p_alice_admin_5", "secondsLeft": 5000},
        ]});
        assert_eq!(
            active_role(&list, "team", "orders").as_deref(),
            Some("p_alice_readwrite_2")
        );
        assert_eq!(active_role(&list, "team", "payments"), None);
        assert_eq!(active_role(&json!({}), "team", "orders"), None);
    }
}
