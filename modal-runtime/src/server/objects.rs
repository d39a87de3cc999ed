//! Named objects of the control plane: secrets (sealed at rest, opened only for the containers
//! that ask for them), API tokens, and the record of uploaded binaries.

use std::collections::BTreeMap;

use tonic::Status;

use super::auth::{Auth, Principal};
use super::state::{State, environment};
use super::store::{BinaryRow, Op, SecretRow, TokenRow};
use crate::app::rules;
use crate::model::{FunctionDef, FunctionOptions, NamedSecret, SealedValues, SecretSummary};

/// A secret to create.
pub(crate) struct NewSecret {
    pub(crate) name: String,
    pub(crate) environment: String,
    pub(crate) values: BTreeMap<String, String>,
    /// Replace an existing secret of that name.
    pub(crate) overwrite: bool,
}

/// The environment a named secret lives in: its own, else the app's.
fn secret_env(s: &NamedSecret, app_env: &str) -> String {
    if s.environment.is_empty() {
        app_env.to_owned()
    } else {
        s.environment.clone()
    }
}

fn check_env_key(key: &str) -> Result<(), Status> {
    let mut chars = key.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "secret key `{key}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        )))
    }
}

impl State {
    pub(crate) fn secret_create(&mut self, req: NewSecret) -> Result<(), Status> {
        rules::check_app_name(&req.name)
            .map_err(|e| Status::invalid_argument(e.replace("app name", "secret name")))?;
        if req.values.is_empty() {
            return Err(Status::invalid_argument("a secret needs at least one key"));
        }
        for k in req.values.keys() {
            check_env_key(k)?;
        }
        let env = environment(&req.environment);
        let key = (env.clone(), req.name.clone());
        let existing = self.secrets.get(&key).map(|s| s.created_at);
        if existing.is_some() && !req.overwrite {
            return Err(Status::already_exists(format!(
                "secret `{}` already exists in environment `{env}` (overwrite it with --force)",
                req.name
            )));
        }
        let values = req.values;
        let keys: Vec<&String> = values.keys().collect();
        let (nonce, ciphertext) = self.secret_key.seal(&values).map_err(Status::internal)?;
        let now = self.clock.unix_ms;
        let row = SecretRow {
            environment: env,
            name: req.name,
            keys_json: serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into()),
            nonce,
            ciphertext,
            created_at: existing.unwrap_or(now),
            updated_at: now,
        };
        self.secrets.insert(key, row.clone());
        self.record(Op::UpsertSecret(row));
        Ok(())
    }

    /// Secrets of an environment (every one for `""`), with key names, never values.
    pub(crate) fn secret_list(&self, environment_name: &str) -> Vec<SecretSummary> {
        let mut secrets: Vec<SecretSummary> = self
            .secrets
            .values()
            .filter(|s| environment_name.is_empty() || s.environment == environment_name)
            .map(|s| SecretSummary {
                name: s.name.clone(),
                environment: s.environment.clone(),
                keys: serde_json::from_str(&s.keys_json).unwrap_or_default(),
                created_at_ms: s.created_at,
                updated_at_ms: s.updated_at,
            })
            .collect();
        secrets.sort_by(|a, b| (&a.environment, &a.name).cmp(&(&b.environment, &b.name)));
        secrets
    }

    pub(crate) fn secret_delete(
        &mut self,
        name: &str,
        environment_name: &str,
    ) -> Result<(), Status> {
        let env = environment(environment_name);
        if self
            .secrets
            .remove(&(env.clone(), name.to_owned()))
            .is_none()
        {
            return Err(Status::not_found(format!(
                "no secret named `{name}` in environment `{env}`"
            )));
        }
        self.record(Op::DeleteSecret {
            environment: env,
            name: name.to_owned(),
        });
        Ok(())
    }

    /// A definition's image must be one this control plane built: its layers named by digest,
    /// in its own store (a worker mounts them as they are named).
    pub(crate) fn check_image(&self, def: &FunctionDef) -> Result<(), Status> {
        let Some(image) = &def.image else {
            return Ok(());
        };
        let digests =
            !image.layers.is_empty() && image.layers.iter().all(|d| crate::binhash::is_digest(d));
        if !digests || self.image_store.as_deref() != Some(image.store.as_str()) {
            return Err(Status::invalid_argument(format!(
                "function `{}`: image {} was not built by this control plane (run or deploy the app against it, which builds it)",
                def.tag, image.image_id
            )));
        }
        Ok(())
    }

    /// Fails a registration whose named secrets are missing or lack required keys.
    pub(crate) fn check_named_secrets(
        &self,
        def: &FunctionDef,
        app_env: &str,
    ) -> Result<(), Status> {
        for s in &def.named_secrets {
            let env = secret_env(s, app_env);
            let row = self.secrets.get(&(env.clone(), s.name.clone())).ok_or_else(|| {
                Status::failed_precondition(format!(
                    "function `{}` uses secret `{}`, which does not exist in environment `{env}` (create it with `modal secret create {} KEY=VALUE`)",
                    def.tag, s.name, s.name
                ))
            })?;
            let keys: Vec<String> = serde_json::from_str(&row.keys_json).unwrap_or_default();
            let missing: Vec<&String> = s
                .required_keys
                .iter()
                .filter(|k| !keys.contains(k))
                .collect();
            if !missing.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "secret `{}` lacks the required keys {missing:?} (it has {keys:?})",
                    s.name
                )));
            }
        }
        Ok(())
    }

    /// Seals secret values a client sent (`Secret::from_dict`, `from_dotenv`,
    /// `from_local_environ`) into `sealed`; sealed values a client sent are never trusted.
    fn seal_secret_env(
        &self,
        env: &mut BTreeMap<String, String>,
        sealed: &mut Option<SealedValues>,
    ) -> Result<(), Status> {
        *sealed = None;
        if !env.is_empty() {
            let values = std::mem::take(env);
            *sealed = Some(
                self.secret_key
                    .seal_values(&values)
                    .map_err(Status::internal)?,
            );
        }
        Ok(())
    }

    /// A definition as the control plane keeps it: its secret values sealed.
    pub(crate) fn seal_definition(&self, mut def: FunctionDef) -> Result<FunctionDef, Status> {
        self.seal_secret_env(&mut def.secret_env, &mut def.sealed_secret_env)?;
        Ok(def)
    }

    /// Overrides as the control plane keeps them: their secret values sealed.
    pub(crate) fn seal_options(&self, mut o: FunctionOptions) -> Result<FunctionOptions, Status> {
        self.seal_secret_env(&mut o.secret_env, &mut o.sealed_secret_env)?;
        Ok(o)
    }

    /// The function's secret variables, opened for a container about to start: its own sealed
    /// values, then its named secrets (a named secret's key wins).
    pub(crate) fn open_secrets(
        &self,
        def: &FunctionDef,
        app_env: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = match &def.sealed_secret_env {
            Some(sealed) => self.secret_key.open_values(sealed)?,
            None => BTreeMap::new(),
        };
        for s in &def.named_secrets {
            let env = secret_env(s, app_env);
            let row = self
                .secrets
                .get(&(env.clone(), s.name.clone()))
                .ok_or_else(|| {
                    format!(
                        "secret `{}` no longer exists in environment `{env}`",
                        s.name
                    )
                })?;
            out.extend(self.secret_key.open(&row.nonce, &row.ciphertext)?);
        }
        Ok(out)
    }

    /// A new token, a user's or (`worker`) one that may only register a worker and serve its
    /// containers: its id and its secret (shown once, stored hashed). The bootstrap secret
    /// creates one user token, the first.
    pub(crate) fn token_create(
        &mut self,
        label: String,
        worker: bool,
        principal: &Principal,
    ) -> Result<(String, String), Status> {
        if *principal == Principal::Bootstrap {
            if worker {
                return Err(Status::permission_denied(
                    "the bootstrap secret creates the first user token only: create that, then worker tokens with it",
                ));
            }
            if !self.auth.consume_bootstrap_secret() {
                return Err(Status::unauthenticated(
                    "the bootstrap secret was used already: create more tokens with the one it made",
                ));
            }
        }
        let (token_id, token_secret, secret_hash) = if worker {
            Auth::mint_worker_token()
        } else {
            Auth::mint_user_token()
        };
        self.record(Op::InsertToken(TokenRow {
            id: token_id.clone(),
            secret_hash: secret_hash.clone(),
            label,
            created_at: self.clock.unix_ms,
        }));
        let auth = self.auth.clone();
        let id = token_id.clone();
        self.after_commit(move |err| {
            if err.is_none() {
                auth.add_token(id, secret_hash);
            }
        });
        tracing::info!(%token_id, "token created");
        Ok((token_id, token_secret))
    }

    pub(crate) fn binary_stored(&mut self, hash: String, size: u64) {
        let uploaded_at = self.clock.unix_ms;
        self.record(Op::InsertBinary(BinaryRow {
            hash,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            uploaded_at,
        }));
    }
}
