//! Customer sessions and merchant-registered identity providers.

pub mod tokens;

use tenure_domain::access::Mode;
use tenure_domain::ids::{CustomerId, IdentityProviderId, MerchantId};
use tenure_domain::text;
use tenure_store::StoreError;
use tenure_store::repo::customers;
use tenure_store::repo::identity_providers::{
    self as idp, IdentityProviderRow, NewIdentityProvider,
};

use self::tokens::Session;
use crate::App;
use crate::dto::sessions::CreateIdentityProvider;
use crate::error::Validator;
use crate::error::{AppError, AppResult};

/// Issues a portal token for one of the merchant's customers, in the mode of the key that
/// asks (the tenant's): the token says it, and reaches that tenant only.
pub async fn create_customer_session(
    state: &App,
    merchant: MerchantId,
    mode: Mode,
    customer: CustomerId,
) -> AppResult<(String, chrono::DateTime<chrono::Utc>)> {
    let mut conn = state.db.conn().await?;
    let found = customers::get(&mut conn, merchant, customer, false)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::field("customer_id", "no such customer"),
            other => other.into(),
        })?;
    found.ensure_not_erased()?;
    state
        .sessions
        .issue(
            Session {
                merchant,
                customer,
                mode,
            },
            state.now(),
        )
        .map_err(AppError::internal)
}

pub async fn create_identity_provider(
    state: &App,
    merchant: MerchantId,
    input: CreateIdentityProvider,
) -> AppResult<IdentityProviderRow> {
    let mut v = Validator::default();
    let issuer = v.check(text::clean("issuer", &input.issuer, 500, false));
    let audience = v.check(text::clean("audience", &input.audience, 500, false));
    let claim = v.check(text::clean(
        "customer_claim",
        input.customer_claim.as_deref().unwrap_or("sub"),
        100,
        false,
    ));
    if issuer.as_deref() == Some(tokens::ISSUER) {
        v.fail("issuer", "is reserved for Tenure's own tokens");
    }
    if input.verification_key.contains('\0') || input.verification_key.len() > 16 * 1024 {
        v.fail(
            "verification_key",
            "must be at most 16 KiB and must not contain the NUL character",
        );
    } else if let Err(message) = tokens::provider_key(&input.algorithm, &input.verification_key) {
        let field = if tokens::ALLOWED_PROVIDER_ALGORITHMS.contains(&input.algorithm.as_str()) {
            "verification_key"
        } else {
            "algorithm"
        };
        v.fail(field, message);
    }
    v.finish()?;
    let (Some(issuer), Some(audience), Some(claim)) = (issuer, audience, claim) else {
        return Err(AppError::internal("validated value missing"));
    };
    let mut conn = state.db.conn().await?;
    idp::insert(
        &mut conn,
        merchant,
        NewIdentityProvider {
            issuer: &issuer,
            audience: &audience,
            algorithm: &input.algorithm,
            verification_key: &input.verification_key,
            customer_claim: &claim,
        },
    )
    .await
    .map_err(|e| match e {
        // Only this merchant's own registrations can collide (the pair is unique per
        // merchant), so saying so tells it nothing about anyone else.
        StoreError::Conflict { .. } => AppError::conflict(
            "identity_provider_exists",
            "you have already registered an identity provider with this issuer and audience",
        ),
        other => other.into(),
    })
}

pub async fn list_identity_providers(
    state: &App,
    merchant: MerchantId,
) -> AppResult<Vec<IdentityProviderRow>> {
    let mut conn = state.db.conn().await?;
    Ok(idp::list(&mut conn, merchant).await?)
}

pub async fn delete_identity_provider(
    state: &App,
    merchant: MerchantId,
    id: IdentityProviderId,
) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    if idp::delete(&mut conn, merchant, id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("identity_provider"))
    }
}
