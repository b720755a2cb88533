//! The OAuth 2.0 client (RFC 6749 + PKCE, RFC 9700 practices) on top of the `oauth2` crate,
//! with every request sent through the guarded outbound client and no redirects.

use super::catalogue::{Provider, TokenAuthMethod};
use super::http::{Outbound, OutboundError, Purpose};
use oauth2::basic::BasicErrorResponseType;
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The tenant's (or the sandbox's) client registration.
#[derive(Clone)]
pub struct ClientCredentials {
    /// Client id.
    pub client_id: String,
    /// Client secret (public clients have none).
    pub client_secret: Option<SecretString>,
    /// Values of the app's own fields (e.g. a custom token endpoint); they win over any
    /// connection value when authorization-server URLs are built.
    pub endpoint_values: BTreeMap<String, String>,
}

impl ClientCredentials {
    /// Connection values with the app's endpoint values laid over them.
    pub fn values_over(&self, values: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut merged = values.clone();
        merged.extend(self.endpoint_values.clone());
        merged
    }
}

/// Tokens from a token endpoint.
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when issued (rotating servers issue a new one each time).
    pub refresh_token: Option<SecretString>,
    /// Lifetime of the access token.
    pub expires_in: Option<Duration>,
    /// Granted scopes, when the server says.
    pub scopes: Option<Vec<String>>,
    /// The response's other fields (e.g. Salesforce's `instance_url`). May hold
    /// secrets (`id_token`): only the provider's declared `token_values` are kept.
    pub extra: serde_json::Value,
}

impl TokenSet {
    /// The provider's `token_values`, read from the response: name → text.
    pub fn values(&self, provider: &Provider) -> BTreeMap<String, String> {
        provider
            .auth
            .token_values
            .iter()
            .filter_map(|(name, path)| {
                let found = serde_json_path::JsonPath::parse(path)
                    .ok()?
                    .query(&self.extra)
                    .first()
                    .cloned()?;
                let text = match found {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some((name.clone(), text))
            })
            .collect()
    }
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The grant (code or refresh token) is invalid, expired or revoked: the user must
    /// connect again.
    #[error("the provider rejected the grant (invalid_grant): reconnect required")]
    InvalidGrant,
    /// The provider refused our client (wrong id or secret).
    #[error("the provider rejected the client credentials (invalid_client)")]
    InvalidClient,
    /// Any other error the provider reported.
    #[error("the provider answered with an error: {0}")]
    Provider(String),
    /// The call was not made or did not complete.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// The provider's answer was not a valid token response.
    #[error("the provider's token response could not be read")]
    Malformed,
    /// The provider definition or app is incomplete.
    #[error("configuration: {0}")]
    Config(String),
}

impl OAuthError {
    /// Whether retrying later may help (network trouble, provider 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuthError::Outbound(OutboundError::Transport(_)))
    }
}

/// Adapts our outbound client to the `oauth2` crate.
struct Adapter<'a>(&'a Outbound);

impl<'c> AsyncHttpClient<'c> for Adapter<'_> {
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request: reqwest::Request = request
                .try_into()
                .map_err(|e: reqwest::Error| OutboundError::InvalidUrl(e.to_string()))?;
            let fetched = self.0.send(request, Purpose::OAuth).await?;
            let mut builder = oauth2::http::Response::builder().status(fetched.status.as_u16());
            for (name, value) in &fetched.headers {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            builder
                .body(fetched.body)
                .map_err(|e| OutboundError::Transport(e.to_string()))
        })
    }
}

/// Everything needed to talk to one provider's authorization server.
pub struct OAuthTarget<'a> {
    /// The provider definition.
    pub provider: &'a Provider,
    /// URL placeholder values (connection fields, `{sluice}`).
    pub values: &'a BTreeMap<String, String>,
    /// The client registration.
    pub credentials: &'a ClientCredentials,
    /// Our callback URL for this provider.
    pub redirect_uri: &'a str,
}

/// A client before its endpoints are set.
type NewClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    LenientTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
>;

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    LenientTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointMaybeSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointMaybeSet,
>;

/// A token response read the way vendors send them rather than the way RFC 6749 says:
/// `token_type` may be missing (Shopify), `expires_in` may be a string, scopes may be
/// separated by commas, and fields beyond the standard ones are kept (Salesforce's
/// `instance_url`), for the provider's `token_values` to read.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(from = "RawTokenResponse")]
struct LenientTokenResponse {
    access_token: oauth2::AccessToken,
    refresh_token: Option<RefreshToken>,
    expires_in: Option<u64>,
    scopes: Option<Vec<Scope>>,
    extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    kind: oauth2::basic::BasicTokenType,
}

#[derive(serde::Deserialize)]
struct RawTokenResponse {
    access_token: oauth2::AccessToken,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    /// A string (space- or comma-separated) or an array.
    #[serde(default)]
    scope: Option<serde_json::Value>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

impl From<RawTokenResponse> for LenientTokenResponse {
    fn from(raw: RawTokenResponse) -> Self {
        let expires_in = match raw.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let scopes = match raw.scope {
            Some(serde_json::Value::String(s)) => Some(
                s.split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|p| !p.is_empty())
                    .map(|p| Scope::new(p.to_owned()))
                    .collect(),
            ),
            Some(serde_json::Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .map(|p| Scope::new(p.to_owned()))
                    .collect(),
            ),
            _ => None,
        };
        LenientTokenResponse {
            access_token: raw.access_token,
            refresh_token: raw.refresh_token.filter(|t| !t.secret().is_empty()),
            expires_in,
            scopes,
            extra: raw.extra,
            kind: oauth2::basic::BasicTokenType::Bearer,
        }
    }
}

impl TokenResponse for LenientTokenResponse {
    type TokenType = oauth2::basic::BasicTokenType;

    fn access_token(&self) -> &oauth2::AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &Self::TokenType {
        &self.kind
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

impl OAuthTarget<'_> {
    fn url(&self, template: Option<&String>) -> Option<String> {
        let values = self.credentials.values_over(self.values);
        template.map(|t| Provider::expand(t, &values))
    }

    /// Extra parameters, their values with the connection's values filled in.
    fn params(&self, declared: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let values = self.credentials.values_over(self.values);
        declared
            .iter()
            .map(|(k, v)| (k.clone(), Provider::expand(v, &values)))
            .collect()
    }

    fn client(&self) -> Result<Client, OAuthError> {
        let auth = &self.provider.auth;
        let bad = |what: &str| {
            OAuthError::Config(format!("{} has an invalid {what}", self.provider.name))
        };
        let auth_url = self
            .url(auth.authorize_url.as_ref())
            .map(AuthUrl::new)
            .transpose()
            .map_err(|_| bad("authorize URL"))?;
        let token_url = self
            .url(auth.token_url.as_ref())
            .map(TokenUrl::new)
            .transpose()
            .map_err(|_| bad("token URL"))?;
        let mut client = NewClient::new(ClientId::new(self.credentials.client_id.clone()))
            .set_auth_uri_option(auth_url)
            .set_token_uri_option(token_url)
            .set_redirect_uri(
                RedirectUrl::new(self.redirect_uri.to_owned()).map_err(|_| bad("redirect URI"))?,
            )
            .set_auth_type(match auth.token_auth_method {
                TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
                TokenAuthMethod::ClientSecretPost => AuthType::RequestBody,
            });
        if let Some(secret) = &self.credentials.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Ok(client)
    }

    /// The URL to send the user's browser to, and the PKCE verifier to keep (secret).
    pub fn authorize_url(
        &self,
        state: &str,
        scopes: &[String],
    ) -> Result<(String, Option<SecretString>), OAuthError> {
        let client = self.client()?;
        let state = state.to_owned();
        let mut request = client
            .authorize_url(|| CsrfToken::new(state))
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        let separator = &self.provider.auth.scope_separator;
        if !scopes.is_empty() {
            // One joined scope keeps the provider's separator (some use commas).
            request = request.add_scope(Scope::new(scopes.join(separator)));
        }
        for (key, value) in self.params(&self.provider.auth.authorize_params) {
            request = request.add_extra_param(key, value);
        }
        let verifier = if self.provider.auth.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            Some(SecretString::from(verifier.secret().to_owned()))
        } else {
            None
        };
        let (url, _) = request.url();
        Ok((url.to_string(), verifier))
    }

    /// Exchanges an authorization code (with the PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        outbound: &Outbound,
        code: &str,
        verifier: Option<&SecretString>,
    ) -> Result<TokenSet, OAuthError> {
        let client = self.client()?;
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        if let Some(v) = verifier {
            request =
                request.set_pkce_verifier(PkceCodeVerifier::new(v.expose_secret().to_owned()));
        }
        for (key, value) in self.params(&self.provider.auth.token_params) {
            request = request.add_extra_param(key, value);
        }
        let response = request
            .request_async(&Adapter(outbound))
            .await
            .map_err(map_error)?;
        Ok(token_set(&response))
    }

    /// Uses a refresh token.
    pub async fn refresh(
        &self,
        outbound: &Outbound,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, OAuthError> {
        let client = self.client()?;
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let mut request = client
            .exchange_refresh_token(&token)
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        for (key, value) in self.params(&self.provider.auth.refresh_params) {
            request = request.add_extra_param(key, value);
        }
        let response = request
            .request_async(&Adapter(outbound))
            .await
            .map_err(map_error)?;
        Ok(token_set(&response))
    }

    /// Client-credentials grant.
    pub async fn client_credentials(
        &self,
        outbound: &Outbound,
        scopes: &[String],
    ) -> Result<TokenSet, OAuthError> {
        let client = self.client()?;
        let mut request = client
            .exchange_client_credentials()
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        if !scopes.is_empty() {
            request =
                request.add_scope(Scope::new(scopes.join(&self.provider.auth.scope_separator)));
        }
        for (key, value) in self.params(&self.provider.auth.token_params) {
            request = request.add_extra_param(key, value);
        }
        let response = request
            .request_async(&Adapter(outbound))
            .await
            .map_err(map_error)?;
        Ok(token_set(&response))
    }

    /// Revokes a token at the provider (RFC 7009), if it has a revocation endpoint.
    /// Returns whether a revocation was sent and accepted.
    pub async fn revoke(
        &self,
        outbound: &Outbound,
        token: &SecretString,
    ) -> Result<bool, OAuthError> {
        let Some(url) = self.url(self.provider.auth.revoke_url.as_ref()) else {
            return Ok(false);
        };
        let client = outbound.client_for(&url, Purpose::OAuth)?;
        let mut form = vec![("token", token.expose_secret().to_owned())];
        let mut builder = client.post(&url);
        match (
            &self.credentials.client_secret,
            self.provider.auth.token_auth_method,
        ) {
            (Some(secret), TokenAuthMethod::ClientSecretBasic) => {
                builder =
                    builder.basic_auth(&self.credentials.client_id, Some(secret.expose_secret()));
            }
            (secret, _) => {
                form.push(("client_id", self.credentials.client_id.clone()));
                if let Some(secret) = secret {
                    form.push(("client_secret", secret.expose_secret().to_owned()));
                }
            }
        }
        let request = builder
            .form(&form)
            .build()
            .map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
        let fetched = outbound.send(request, Purpose::OAuth).await?;
        Ok(fetched.status.is_success())
    }
}

fn token_set(response: &LenientTokenResponse) -> TokenSet {
    TokenSet {
        extra: serde_json::Value::Object(response.extra.clone()),
        access_token: SecretString::from(response.access_token().secret().to_owned()),
        refresh_token: response
            .refresh_token()
            .map(|t| SecretString::from(t.secret().to_owned())),
        expires_in: response.expires_in(),
        scopes: response
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect()),
    }
}

fn map_error(
    e: RequestTokenError<OutboundError, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(resp) => match resp.error() {
            BasicErrorResponseType::InvalidGrant => OAuthError::InvalidGrant,
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                OAuthError::InvalidClient
            }
            other => OAuthError::Provider(match resp.error_description() {
                Some(d) => format!("{other}: {}", d.chars().take(200).collect::<String>()),
                None => other.to_string(),
            }),
        },
        RequestTokenError::Request(e) => OAuthError::Outbound(e),
        // Some vendors answer errors with 200 and their own shape (GitHub's
        // `bad_verification_code`, Slack's `{"ok": false, "error": …}`): name the error.
        RequestTokenError::Parse(_, body) => {
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            match answer.get("error").and_then(|e| e.as_str()) {
                Some("invalid_grant") => OAuthError::InvalidGrant,
                Some(error) => OAuthError::Provider(
                    match answer.get("error_description").and_then(|d| d.as_str()) {
                        Some(d) => format!("{error}: {}", d.chars().take(200).collect::<String>()),
                        None => error.chars().take(200).collect(),
                    },
                ),
                None => OAuthError::Malformed,
            }
        }
        RequestTokenError::Other(m) => OAuthError::Provider(m.chars().take(200).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> LenientTokenResponse {
        serde_json::from_str(text).expect("a token response")
    }

    #[test]
    fn token_responses_are_read_as_vendors_send_them() {
        // Shopify: no token_type, scopes comma-separated.
        let shopify = read(r#"{"access_token":"shpat_x","scope":"read_products,write_orders"}"#);
        assert_eq!(shopify.access_token().secret(), "shpat_x");
        assert_eq!(shopify.scopes().map(Vec::len), Some(2));
        assert_eq!(shopify.expires_in(), None);
        // HubSpot: lower-case bearer, scopes as an array, extra fields.
        let hubspot = read(
            r#"{"token_type":"bearer","access_token":"a","refresh_token":"r","expires_in":1800,"hub_id":62515,"scopes":["oauth"]}"#,
        );
        assert_eq!(hubspot.expires_in(), Some(Duration::from_secs(1800)));
        assert!(hubspot.refresh_token().is_some());
        assert_eq!(hubspot.extra["hub_id"], 62515);
        // expires_in as a string; an empty refresh token is none.
        let odd = read(r#"{"access_token":"a","expires_in":"3600","refresh_token":""}"#);
        assert_eq!(odd.expires_in(), Some(Duration::from_secs(3600)));
        assert!(odd.refresh_token().is_none());
        assert!(
            serde_json::from_str::<LenientTokenResponse>(r#"{"token_type":"Bearer"}"#).is_err()
        );
    }

    #[test]
    fn declared_token_values_are_kept_and_nothing_else() {
        let provider = crate::connectors::catalogue::get("salesforce").unwrap();
        let tokens = token_set(&read(
            r#"{"access_token":"a","instance_url":"https://acme.my.salesforce.com","id_token":"secret"}"#,
        ));
        let values = tokens.values(provider);
        assert_eq!(values.len(), 1);
        assert_eq!(values["instance_url"], "https://acme.my.salesforce.com");
    }
}
