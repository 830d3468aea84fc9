//! The identity provider's side of sign-in ([`crate::sign_in`]), through the
//! `openidconnect` crate: discovery, the authorization URL (code flow with
//! PKCE, a nonce and a state), the code exchange, the ID token's checks
//! (signature against the provider's published keys, issuer, audience,
//! expiry, issue time, nonce) and the user-info endpoint for claims the token lacks.
//! Tokens are never logged or kept; only the claims leave this module.

use std::sync::Arc;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sign_in::SignInConfig;

/// Every claim a provider sends beyond the standard ones (groups among them).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OtherClaims(Map<String, Value>);

impl AdditionalClaims for OtherClaims {}

type Tokens = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// The provider's client as discovered: endpoints and signing keys.
pub type ProviderClient = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in begun: where to send the browser and what the callback needs.
pub struct Started {
    /// The provider's authorization URL.
    pub url: String,
    /// The state parameter, which comes back with the browser.
    pub state: String,
    /// The client as discovered now.
    pub client: Arc<ProviderClient>,
    /// The nonce the ID token must carry.
    pub nonce: Nonce,
    /// The PKCE verifier.
    pub verifier: PkceCodeVerifier,
}

/// Why a sign-in could not begin or finish at the identity provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The issuer, the redirect or the token endpoint is not a usable URL.
    #[error("{0}")]
    Url(String),
    /// The provider's discovery document could not be had.
    #[error("cannot discover the identity provider: {0}")]
    Discovery(String),
    /// The token endpoint refused the code.
    #[error("the identity provider refused the code: {0}")]
    CodeRefused(String),
    /// The token response held no ID token.
    #[error("the identity provider sent no ID token")]
    NoIdToken,
    /// The ID token did not verify (signature, issuer, audience, nonce, time).
    #[error("the ID token was refused: {0}")]
    TokenRefused(String),
    /// The ID token's claims are not a JSON object.
    #[error("the ID token's claims are not an object")]
    ClaimsNotAnObject,
    /// The user-info endpoint failed.
    #[error("the user-info endpoint failed: {0}")]
    UserInfo(String),
}

/// The household's identity provider.
pub struct Provider {
    config: SignInConfig,
    secret: ClientSecret,
    http: reqwest::Client,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Provider")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider client for `config`, whose secret is `secret`. It trusts
    /// the system's certificates and `config.ca_file`'s, and follows no
    /// redirects.
    pub fn new(
        config: SignInConfig,
        secret: zeroize::Zeroizing<String>,
    ) -> anyhow::Result<Provider> {
        use anyhow::Context;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .tls_built_in_root_certs(false);
        let mut roots = Vec::new();
        for certificate in rustls_native_certs::load_native_certs().certs {
            roots.push(certificate.to_vec());
        }
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read ca_file {}", path.display()))?;
            let mut found = 0;
            for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.push(
                    certificate
                        .with_context(|| format!("ca_file {} is not PEM", path.display()))?
                        .to_vec(),
                );
                found += 1;
            }
            anyhow::ensure!(found > 0, "ca_file {} holds no certificate", path.display());
        }
        for der in roots {
            if let Ok(certificate) = reqwest::Certificate::from_der(&der) {
                builder = builder.add_root_certificate(certificate);
            }
        }
        Ok(Provider {
            config,
            secret: ClientSecret::new(secret.as_str().to_owned()),
            http: builder
                .build()
                .context("cannot make the identity provider's client")?,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SignInConfig {
        &self.config
    }

    /// Begins a sign-in whose browser comes back to `redirect`: discovers
    /// the provider (its keys may have rotated since the last sign-in).
    pub async fn start(&self, redirect: &str) -> Result<Started, ProviderError> {
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|error| ProviderError::Url(error.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|error| ProviderError::Discovery(hearth_runtime::error_chain(&error)))?;
        let client = ProviderClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(self.secret.clone()),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect.to_owned())
                .map_err(|error| ProviderError::Url(error.to_string()))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            client: Arc::new(client),
            nonce,
            verifier,
        })
    }

    /// Finishes a sign-in: exchanges `code`, checks the ID token, and
    /// returns its claims, with the user-info endpoint's added for those
    /// the token lacks (the endpoint must name the same subject).
    pub async fn finish(
        &self,
        client: &ProviderClient,
        code: String,
        nonce: &Nonce,
        verifier: PkceCodeVerifier,
    ) -> Result<Map<String, Value>, ProviderError> {
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|error| ProviderError::Url(error.to_string()))?
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|error| ProviderError::CodeRefused(hearth_runtime::error_chain(&error)))?;
        let id_token = tokens
            .extra_fields()
            .id_token()
            .ok_or(ProviderError::NoIdToken)?;
        let now = hearth_runtime::clock::unix_seconds();
        let verifier = client
            .id_token_verifier()
            .set_issue_time_verifier_fn(move |issued| {
                crate::sign_in::issued_in_time(issued.timestamp(), now)
                    .map_err(|ahead| ahead.to_string())
            });
        let verified = id_token
            .claims(&verifier, nonce)
            .map_err(|error| ProviderError::TokenRefused(hearth_runtime::error_chain(&error)))?;
        let mut claims = match serde_json::to_value(verified) {
            Ok(Value::Object(claims)) => claims,
            _ => return Err(ProviderError::ClaimsNotAnObject),
        };
        let wanted = [
            Some(&self.config.user_claim),
            self.config.groups_claim.as_ref(),
        ];
        let lacking = wanted
            .into_iter()
            .flatten()
            .any(|claim| !claims.contains_key(claim));
        if lacking
            && let Ok(request) = client.user_info(
                tokens.access_token().clone(),
                Some(verified.subject().clone()),
            )
        {
            let info: openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim> = request
                .request_async(&self.http)
                .await
                .map_err(|error| ProviderError::UserInfo(hearth_runtime::error_chain(&error)))?;
            if let Ok(Value::Object(more)) = serde_json::to_value(&info) {
                for (name, value) in more {
                    if name != "iss" && name != "sub" && name != "aud" {
                        claims.entry(name).or_insert(value);
                    }
                }
            }
        }
        Ok(claims)
    }
}
