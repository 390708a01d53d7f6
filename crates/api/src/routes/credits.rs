//! Customer credit balances, credit notes, one-off invoice items, goodwill discounts and
//! agents' overrides (docs/billing.md).

use actix_web::{HttpResponse, delete, get, post, web};
use tenure_domain::ids::{
    BalanceTransactionTag, CreditNoteTag, CustomerTag, InvoiceItemTag, InvoiceTag, OverrideTag,
    SubscriptionTag,
};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::billing::{credits as svc, invoice_items};
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::credits::{
    AdjustBalance, BalanceTransactionDto, CreateCreditNote, CreateInvoiceItem, CreditNoteDto,
    CreditNoteFilterParams, CustomerBalancesDto, GrantDiscount, InvoiceItemDto, OverrideDto,
    OverrideMetricsDto, OverrideMetricsParams,
};
use tenure_app::dto::subscriptions::SubscriptionDiscountDto;
use tenure_app::dto::{InMode, ListParams, ListResponse};
use tenure_app::overrides;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_balances)
        .service(list_balance_transactions)
        .service(adjust_balance)
        .service(list_customer_overrides)
        .service(create_credit_note)
        .service(list_invoice_credit_notes)
        .service(list_credit_notes)
        .service(get_credit_note)
        .service(create_invoice_item)
        .service(list_invoice_items)
        .service(delete_invoice_item)
        .service(grant_discount)
        .service(override_metrics);
}

/// The customer's credit balances, one per currency: what the next invoices in each
/// currency use before charging.
#[utoipa::path(tag = "Credits", params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The balances", body = CustomerBalancesDto)))]
#[get("/customers/{id}/balances")]
async fn get_balances(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::balances(&state.app, auth.0, id).await?,
    )))
}

/// The customer's balance ledger, newest first: grants, debits, credit notes and what
/// invoices used.
#[utoipa::path(tag = "Credits", params(("id" = String, Path, description = "Customer id (cus_…)"), ListParams),
    responses((status = 200, description = "A page of the ledger", body = ListResponse<BalanceTransactionDto>)))]
#[get("/customers/{id}/balance_transactions")]
async fn list_balance_transactions(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let page = page.page::<BalanceTransactionTag>()?;
    let rows = svc::transactions(&state.app, auth.0, id, page).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(rows, |t| t, |t| t.id.clone()).in_mode(auth.mode())))
}

/// Grant (positive) or debit (negative) the customer's credit balance, with a reason
/// (`customer.balance_changed`). A grant is a goodwill credit and is recorded as an
/// override of kind `credit` (`override.created`). A debit beyond the balance: 409
/// `balance_insufficient`; a currency no plan is priced in: 422.
#[utoipa::path(tag = "Credits", request_body = AdjustBalance,
    params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 201, description = "The ledger row", body = BalanceTransactionDto)))]
#[post("/customers/{id}/balance_transactions")]
async fn adjust_balance(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<AdjustBalance>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let row = svc::adjust(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), row)))
}

/// What agents granted the customer beyond the default policy, newest first.
#[utoipa::path(tag = "Credits", params(("id" = String, Path, description = "Customer id (cus_…)"), ListParams),
    responses((status = 200, description = "A page of overrides", body = ListResponse<OverrideDto>)))]
#[get("/customers/{id}/overrides")]
async fn list_customer_overrides(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let page = page.page::<OverrideTag>()?;
    let rows = overrides::of_customer(&state.app, auth.0, id, page).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(rows, |o| o, |o| o.id.clone()).in_mode(auth.mode())))
}

/// Credit part (or all) of a paid invoice: `refund` sends it back through the gateway
/// (a refund of the invoice, `invoice.refunded`), `balance` credits the customer's
/// balance (`customer.balance_changed`). At most what remains uncredited (paid − refunded
/// − credited): 409 `credit_note_exceeds_invoice` beyond it. Records
/// `credit_note.created`.
#[utoipa::path(tag = "Credits", request_body = CreateCreditNote,
    params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 201, description = "The credit note", body = CreditNoteDto)))]
#[post("/invoices/{id}/credit_notes")]
async fn create_credit_note(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<CreateCreditNote>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    let note = svc::create_credit_note(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), note)))
}

/// The invoice's credit notes, oldest first.
#[utoipa::path(tag = "Credits", params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 200, description = "The credit notes", body = Vec<CreditNoteDto>)))]
#[get("/invoices/{id}/credit_notes")]
async fn list_invoice_credit_notes(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    Ok(HttpResponse::Ok().json(InMode::each(
        auth.mode(),
        svc::credit_notes_of_invoice(&state.app, auth.0, id).await?,
    )))
}

/// Credit notes, newest first, optionally of one customer.
#[utoipa::path(tag = "Credits", params(ListParams, CreditNoteFilterParams),
    responses((status = 200, description = "A page of credit notes", body = ListResponse<CreditNoteDto>)))]
#[get("/credit_notes")]
async fn list_credit_notes(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<CreditNoteFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<CreditNoteTag>()?;
    let customer = filter
        .customer_id
        .as_deref()
        .map(|c| parse_field_id::<CustomerTag>(c, "customer_id"))
        .transpose()?;
    let rows = svc::list_credit_notes(&state.app, auth.0, customer, page).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(rows, |n| n, |n| n.id.clone()).in_mode(auth.mode())))
}

/// Get a credit note.
#[utoipa::path(tag = "Credits", params(("id" = String, Path, description = "Credit note id (cn_…)")),
    responses((status = 200, description = "The credit note", body = CreditNoteDto)))]
#[get("/credit_notes/{id}")]
async fn get_credit_note(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CreditNoteTag>(&id, "credit_note")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::get_credit_note(&state.app, auth.0, id).await?,
    )))
}

/// Add a one-off charge (positive) or credit (negative) to the subscription's next
/// invoice, in its currency (`invoice_item.created`); with `invoice_now`, invoice the
/// charge alone and charge it at once (the answer carries the invoice after the charge; a
/// declined one stays open in dunning). A canceled subscription: 409
/// `subscription_canceled`.
#[utoipa::path(tag = "Credits", request_body = CreateInvoiceItem,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 201, description = "The item", body = InvoiceItemDto)))]
#[post("/subscriptions/{id}/invoice_items")]
async fn create_invoice_item(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<CreateInvoiceItem>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let item = invoice_items::create(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), item)))
}

/// The subscription's one-off items, invoiced or not, newest first.
#[utoipa::path(tag = "Credits", params(("id" = String, Path, description = "Subscription id (sub_…)"), ListParams),
    responses((status = 200, description = "A page of items", body = ListResponse<InvoiceItemDto>)))]
#[get("/subscriptions/{id}/invoice_items")]
async fn list_invoice_items(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let page = page.page::<InvoiceItemTag>()?;
    let rows = invoice_items::list(&state.app, auth.0, id, page).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(rows, |i| i, |i| i.id.clone()).in_mode(auth.mode())))
}

/// Delete a one-off item no invoice took yet (`invoice_item.deleted`); once invoiced: 409
/// `invoice_item_invoiced` (credit the invoice instead).
#[utoipa::path(tag = "Credits",
    params(("id" = String, Path, description = "Subscription id (sub_…)"),
        ("item_id" = String, Path, description = "Invoice item id (ii_…)")),
    responses((status = 200, description = "The deleted item", body = InvoiceItemDto),
        (status = 409, description = "An invoice took the item (`invoice_item_invoiced`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/subscriptions/{id}/invoice_items/{item_id}")]
async fn delete_invoice_item(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, item) = path.into_inner();
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let item = parse_id::<InvoiceItemTag>(&item, "invoice_item")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        invoice_items::delete(&state.app, auth.0, id, item).await?,
    )))
}

/// Grant the subscription a goodwill discount (a percent or an amount in its currency)
/// on its next `cycles` invoices, with a reason: an override of kind `discount`
/// (`override.created`).
#[utoipa::path(tag = "Credits", request_body = GrantDiscount,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 201, description = "The discount", body = SubscriptionDiscountDto)))]
#[post("/subscriptions/{id}/discount_grants")]
async fn grant_discount(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<GrantDiscount>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let discount = svc::grant_discount(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), discount)))
}

/// What agents granted in a period `[from, to)` (the period rules of `GET /v1/metrics`):
/// per agent, kind and currency, the count and the exact amount.
#[utoipa::path(tag = "Metrics", params(OverrideMetricsParams),
    responses((status = 200, description = "What agents granted", body = OverrideMetricsDto)))]
#[get("/metrics/overrides")]
async fn override_metrics(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    params: Query<OverrideMetricsParams>,
) -> ApiResult<HttpResponse> {
    let metrics = overrides::metrics(
        &state.app,
        auth.0,
        params.from.as_deref(),
        params.to.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), metrics)))
}
