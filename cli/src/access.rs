//! The access API, from the client's side.

use serde_json::{Value, json};

use super::http::json as read_json;
use crate::CliError;

pub struct AccessApi {
    pub base: String,
    pub agent: ureq::Agent,
    pub token: String,
}

impl AccessApi {
    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        what: &str,
    ) -> Result<Value, CliError> {
        let (status, body) = read_json(result, what)?;
        match status {
            200..=299 => Ok(body),
            400..=499 => Err(CliError::Refused(
                body["message"]
                    .as_str()
                    .unwrap_or("refused without a reason")
                    .to_owned(),
            )),
            _ => Err(CliError::Unavailable(format!(
                "{what}: HTTP {status}: {}",
                body["message"].as_str().unwrap_or_default()
            ))),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    pub fn request(
        &self,
        namespace: &str,
        postgres: &str,
        level: &str,
        ttl: &str,
        reason: &str,
    ) -> Result<Value, CliError> {
        let url = self.url(&format!(
            "/api/v1/namespaces/{namespace}/postgres/{postgres}/access"
        ));
        self.answer(
            self.agent
                .post(&url)
                .header("Authorization", &format!("Bearer {}", self.token))
                .header("Content-Type", "application/json")
                .send(json!({"level": level, "ttl": ttl, "reason": reason}).to_string()),
            "requesting access",
        )
    }

    pub fn get(&self, namespace: &str, name: &str) -> Result<Value, CliError> {
        let url = self.url(&format!(
            "/api/v1/namespaces/{namespace}/postgresaccesses/{name}"
        ));
        self.answer(
            self.agent
                .get(&url)
                .header("Authorization", &format!("Bearer {}", self.token))
                .call(),
            "reading the grant",
        )
    }

    pub fn mine(&self) -> Result<Value, CliError> {
        let url = self.url("/api/v1/postgresaccesses");
        self.answer(
            self.agent
                .get(&url)
                .header("Authorization", &format!("Bearer {}", self.token))
                .call(),
            "listing grants",
        )
    }
}
