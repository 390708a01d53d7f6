//! Billing routes: payment methods (merchant and portal), invoices, payments, refunds.

use actix_web::{HttpResponse, delete, get, post, web};
use tenure_app::dto::InMode;
use tenure_domain::access::Mode;
use tenure_domain::billing::invoice::{Invoice, InvoiceStatus, Payment};
use tenure_domain::ids::{
    CustomerId, CustomerTag, InvoiceTag, PaymentMethodTag, PaymentTag, SubscriptionTag,
};
use tenure_store::repo::invoices::InvoiceFilter;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::billing::{invoices, payment_methods};
use tenure_app::dto::billing::{
    AttachPaymentMethod, InvoiceDto, InvoiceFilterParams, PaymentActionDto, PaymentDto,
    PaymentFilterParams, PaymentMethodDto, PaymentMethodList, PortalInvoiceFilterParams, RefundDto,
    RefundInvoice, RefundResult,
};
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::{ListParams, ListResponse};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(attach_payment_method)
        .service(list_payment_methods)
        .service(set_default_payment_method)
        .service(detach_payment_method)
        .service(list_invoices)
        .service(get_invoice)
        .service(refund_invoice)
        .service(pay_invoice)
        .service(void_invoice)
        .service(mark_invoice_uncollectible)
        .service(list_payments);
}

/// The routes of the `/v1/portal` scope (customer session tokens).
pub fn configure_portal(cfg: &mut ServiceConfig) {
    cfg.service(portal_attach_payment_method)
        .service(portal_list_payment_methods)
        .service(portal_set_default_payment_method)
        .service(portal_detach_payment_method)
        .service(portal_list_invoices)
        .service(portal_get_invoice)
        .service(portal_pay_invoice)
        .service(portal_list_payments);
}

fn render_list(
    state: &AppState,
    methods: &[tenure_domain::billing::payment_method::PaymentMethod],
) -> PaymentMethodList {
    let now = state.now();
    PaymentMethodList {
        data: methods
            .iter()
            .map(|pm| PaymentMethodDto::render(pm, now))
            .collect(),
    }
}

// ---- payment methods, merchant ----

/// Attach a payment method (a gateway token) to a customer.
#[utoipa::path(tag = "Payment methods", request_body = AttachPaymentMethod,
    params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 201, description = "The attached payment method", body = PaymentMethodDto)))]
#[post("/customers/{id}/payment_methods")]
async fn attach_payment_method(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<AttachPaymentMethod>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&id, "customer")?;
    let pm = payment_methods::attach(&state.app, auth.0, customer, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(
        auth.mode(),
        PaymentMethodDto::render(&pm, state.now()),
    )))
}

/// List a customer's payment methods, newest first.
#[utoipa::path(tag = "Payment methods",
    params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The customer's payment methods", body = PaymentMethodList)))]
#[get("/customers/{id}/payment_methods")]
async fn list_payment_methods(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&id, "customer")?;
    let methods = payment_methods::list(&state.app, auth.0, customer).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), render_list(&state, &methods))))
}

/// Make a payment method the customer's default.
#[utoipa::path(tag = "Payment methods",
    params(("id" = String, Path, description = "Customer id (cus_…)"),
           ("pm" = String, Path, description = "Payment method id (pm_…)")),
    responses((status = 200, description = "The new default payment method", body = PaymentMethodDto)))]
#[post("/customers/{id}/payment_methods/{pm}/set_default")]
async fn set_default_payment_method(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&path.0, "customer")?;
    let pm = parse_id::<PaymentMethodTag>(&path.1, "payment_method")?;
    let pm = payment_methods::set_default(&state.app, auth.0, customer, pm).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        PaymentMethodDto::render(&pm, state.now()),
    )))
}

/// Remove a payment method. The last one cannot be removed while the customer has an
/// active, trialing or past-due subscription (409 `last_payment_method`).
#[utoipa::path(tag = "Payment methods",
    params(("id" = String, Path, description = "Customer id (cus_…)"),
           ("pm" = String, Path, description = "Payment method id (pm_…)")),
    responses((status = 200, description = "The removed payment method", body = PaymentMethodDto),
        (status = 409, description = "The last payment method of a customer whose subscription renews (`last_payment_method`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/customers/{id}/payment_methods/{pm}")]
async fn detach_payment_method(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&path.0, "customer")?;
    let pm = parse_id::<PaymentMethodTag>(&path.1, "payment_method")?;
    let pm = payment_methods::detach(&state.app, auth.0, customer, pm).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        PaymentMethodDto::render(&pm, state.now()),
    )))
}

// ---- payment methods, portal ----

/// Add a payment method (a gateway token from the merchant's checkout form).
#[utoipa::path(tag = "Portal", request_body = AttachPaymentMethod,
    responses((status = 201, description = "The attached payment method", body = PaymentMethodDto)))]
#[post("/payment_methods")]
async fn portal_attach_payment_method(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    body: Json<AttachPaymentMethod>,
) -> ApiResult<HttpResponse> {
    let pm = payment_methods::attach(&state.app, auth.merchant, auth.customer, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(
        auth.mode(),
        PaymentMethodDto::render(&pm, state.now()),
    )))
}

/// The signed-in customer's payment methods, newest first.
#[utoipa::path(tag = "Portal",
    responses((status = 200, description = "Payment methods", body = PaymentMethodList)))]
#[get("/payment_methods")]
async fn portal_list_payment_methods(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
) -> ApiResult<HttpResponse> {
    let methods = payment_methods::list(&state.app, auth.merchant, auth.customer).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), render_list(&state, &methods))))
}

/// Make one of the customer's payment methods the default.
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Payment method id (pm_…)")),
    responses((status = 200, description = "The new default payment method", body = PaymentMethodDto)))]
#[post("/payment_methods/{id}/set_default")]
async fn portal_set_default_payment_method(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let pm = parse_id::<PaymentMethodTag>(&id, "payment_method")?;
    let pm = payment_methods::set_default(&state.app, auth.merchant, auth.customer, pm).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        PaymentMethodDto::render(&pm, state.now()),
    )))
}

/// Remove one of the customer's payment methods (not the last one while a subscription
/// renews).
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Payment method id (pm_…)")),
    responses((status = 200, description = "The removed payment method", body = PaymentMethodDto),
        (status = 409, description = "The last payment method while a subscription renews (`last_payment_method`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/payment_methods/{id}")]
async fn portal_detach_payment_method(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let pm = parse_id::<PaymentMethodTag>(&id, "payment_method")?;
    let pm = payment_methods::detach(&state.app, auth.merchant, auth.customer, pm).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        PaymentMethodDto::render(&pm, state.now()),
    )))
}

// ---- invoices and payments, merchant ----

fn invoice_filter(params: InvoiceFilterParams) -> ApiResult<InvoiceFilter> {
    let customer = params
        .customer_id
        .as_deref()
        .map(|c| parse_field_id::<CustomerTag>(c, "customer_id"))
        .transpose()?;
    let subscription = params
        .subscription_id
        .as_deref()
        .map(|s| parse_field_id::<SubscriptionTag>(s, "subscription_id"))
        .transpose()?;
    let status = params
        .status
        .as_deref()
        .map(str::parse::<InvoiceStatus>)
        .transpose()?;
    if let (Some(from), Some(to)) = (params.created_from, params.created_to)
        && from > to
    {
        return Err(ApiError::field(
            "created_to",
            "must not be before created_from",
        ));
    }
    Ok(InvoiceFilter {
        customer,
        subscription,
        status,
        created_from: params.created_from,
        created_to: params.created_to,
    })
}

fn invoice_page(
    page: tenure_store::Page<tenure_domain::billing::invoice::Invoice>,
) -> ListResponse<InvoiceDto> {
    ListResponse::from_page(page, |i| InvoiceDto::from(&i), |i| i.id.to_string())
}

/// List invoices, newest first (by `created_at`, then id), optionally filtered. A
/// `starting_after` that names no invoice of this merchant (of this customer, with
/// `customer_id`) is 422 on `starting_after`.
#[utoipa::path(tag = "Invoices", params(ListParams, InvoiceFilterParams),
    responses((status = 200, description = "A page of invoices", body = ListResponse<InvoiceDto>)))]
#[get("/invoices")]
async fn list_invoices(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<InvoiceFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<InvoiceTag>()?;
    let filter = invoice_filter(filter.into_inner())?;
    let invoices = invoices::list_invoices(&state.app, auth.0, filter, page).await?;
    Ok(HttpResponse::Ok().json(invoice_page(invoices).in_mode(auth.mode())))
}

/// Get an invoice with its lines, payments and refunds.
#[utoipa::path(tag = "Invoices", params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 200, description = "The invoice", body = InvoiceDto)))]
#[get("/invoices/{id}")]
async fn get_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    let (invoice, payments, refunds) = invoices::get_invoice(&state.app, auth.0, id, None).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        InvoiceDto::detailed(&invoice, &payments, &refunds),
    )))
}

/// Refund a paid invoice in full (`{}`) or in part (`{"amount": 500}`), through the
/// gateway. Never more than what was paid minus what was already refunded. Records the
/// event `invoice.refunded`. While another refund of the invoice is in flight: 409
/// `refund_in_progress`.
#[utoipa::path(tag = "Invoices", request_body = RefundInvoice,
    params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 201, description = "The refund and the invoice after it", body = RefundResult)))]
#[post("/invoices/{id}/refund")]
async fn refund_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<RefundInvoice>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    let (refund, invoice) = invoices::refund(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(
        auth.mode(),
        RefundResult {
            refund: RefundDto::from(&refund),
            invoice: InvoiceDto::from(&invoice),
        },
    )))
}

/// Charge an open (or uncollectible) invoice now with the customer's default payment
/// method, also when dunning stopped (its subscription was canceled). A success answers
/// the paid invoice (`invoice.paid`; a past-due or unpaid subscription recovers). A
/// decline is recorded like any attempt (`invoice.payment_failed`) and answers 402
/// `payment_declined`; the dunning schedule is not changed. 409 `no_payment_method`
/// when the customer has no default, `invoice_not_payable` for a paid or void invoice,
/// `payment_in_progress` while a charge of it is in flight.
#[utoipa::path(tag = "Invoices", params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 200, description = "The invoice, paid", body = InvoiceDto),
        (status = 402, description = "The charge was declined; the invoice shows the attempt",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[post("/invoices/{id}/pay")]
async fn pay_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    let (invoice, payment) = invoices::pay_invoice(&state.app, auth.0, id, None).await?;
    paid_or_declined(auth.mode(), &invoice, payment)
}

/// The answer to a charge asked for: the paid invoice, or 402 with the decline.
fn paid_or_declined(
    mode: Mode,
    invoice: &Invoice,
    payment: Option<Payment>,
) -> ApiResult<HttpResponse> {
    if invoice.status == InvoiceStatus::Paid {
        return Ok(HttpResponse::Ok().json(InMode::new(mode, InvoiceDto::from(invoice))));
    }
    let (code, message) = payment
        .map(|p| (p.failure_code, p.failure_message))
        .unwrap_or_default();
    Err(ApiError::PaymentDeclined(format!(
        "the charge of invoice {} was declined ({}): {}",
        invoice.id,
        code.as_deref().unwrap_or("declined"),
        message.as_deref().unwrap_or("no reason given"),
    )))
}

/// Void an open or uncollectible invoice: it owes nothing and is never charged again.
/// Records `invoice.voided`. Its subscription is not changed. 409
/// `invalid_invoice_transition` for a paid or void invoice, `payment_in_progress` while a
/// charge of it is in flight.
#[utoipa::path(tag = "Invoices", params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 200, description = "The invoice, void", body = InvoiceDto)))]
#[post("/invoices/{id}/void")]
async fn void_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    let invoice = invoices::void_invoice(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), InvoiceDto::from(&invoice))))
}

/// Stop collecting an open invoice: it becomes `uncollectible` and dunning stops, but it
/// may still be paid (`POST /v1/invoices/{id}/pay`) or voided. Records
/// `invoice.marked_uncollectible`. 409 `invalid_invoice_transition` unless it is open,
/// `payment_in_progress` while a charge of it is in flight.
#[utoipa::path(tag = "Invoices", params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 200, description = "The invoice, uncollectible", body = InvoiceDto)))]
#[post("/invoices/{id}/mark_uncollectible")]
async fn mark_invoice_uncollectible(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    let invoice = invoices::mark_invoice_uncollectible(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), InvoiceDto::from(&invoice))))
}

/// List payment attempts, newest first.
#[utoipa::path(tag = "Invoices", params(ListParams, PaymentFilterParams),
    responses((status = 200, description = "A page of payments", body = ListResponse<PaymentDto>)))]
#[get("/payments")]
async fn list_payments(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<PaymentFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<PaymentTag>()?;
    let customer = filter
        .customer_id
        .as_deref()
        .map(|c| parse_field_id::<CustomerTag>(c, "customer_id"))
        .transpose()?;
    let payments = invoices::list_payments(&state.app, auth.0, customer, page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(payments, |p| PaymentDto::from(&p), |p| p.id.to_string())
            .in_mode(auth.mode()),
    ))
}

// ---- invoices and payments, portal ----

/// The signed-in customer's invoices, newest first (by `created_at`, then id),
/// optionally filtered. A `starting_after` that is not one of their invoices is 422 on
/// `starting_after`.
#[utoipa::path(tag = "Portal", params(ListParams, PortalInvoiceFilterParams),
    responses((status = 200, description = "A page of invoices", body = ListResponse<InvoiceDto>)))]
#[get("/invoices")]
async fn portal_list_invoices(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    page: Query<ListParams>,
    filter: Query<PortalInvoiceFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<InvoiceTag>()?;
    let filter = InvoiceFilter {
        customer: Some(auth.customer),
        ..invoice_filter(filter.into_inner().into())?
    };
    let invoices = invoices::list_invoices(&state.app, auth.merchant, filter, page).await?;
    Ok(HttpResponse::Ok().json(invoice_page(invoices).in_mode(auth.mode())))
}

/// One of the signed-in customer's invoices, with payments and refunds.
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 200, description = "The invoice", body = InvoiceDto)))]
#[get("/invoices/{id}")]
async fn portal_get_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    let own: Option<CustomerId> = Some(auth.customer);
    let (invoice, payments, refunds) =
        invoices::get_invoice(&state.app, auth.merchant, id, own).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        InvoiceDto::detailed(&invoice, &payments, &refunds),
    )))
}

/// Pay one of the signed-in customer's open (or uncollectible) invoices now with their
/// default payment method: the "pay now" of a customer whose subscription is past due or
/// unpaid and whose card works again. The same rules and answers as the merchant's
/// `POST /v1/invoices/{id}/pay`; another customer's invoice is a 404. With Stripe, a card
/// that asks for the customer's authentication (3-D Secure) answers 202 with what the
/// frontend confirms the payment with; the invoice is settled when Stripe reports it.
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Invoice id (inv_…)")),
    responses((status = 200, description = "The invoice, paid", body = InvoiceDto),
        (status = 202, description = "The payment waits for the customer's authentication", body = PaymentActionDto),
        (status = 402, description = "The charge was declined; the invoice shows the attempt",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[post("/invoices/{id}/pay")]
async fn portal_pay_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<InvoiceTag>(&id, "invoice")?;
    match invoices::pay_invoice(&state.app, auth.merchant, id, Some(auth.customer)).await {
        Ok((invoice, payment)) => paid_or_declined(auth.mode(), &invoice, payment),
        Err(tenure_app::AppError::PaymentActionRequired {
            invoice_id,
            provider,
            client_secret,
            publishable_key,
        }) => Ok(HttpResponse::Accepted().json(InMode::new(
            auth.mode(),
            PaymentActionDto {
                object: "payment_action".to_owned(),
                invoice_id,
                provider: provider
                    .parse::<tenure_domain::billing::gateway_settings::GatewayProvider>()?
                    .into(),
                action_type: "authenticate".to_owned(),
                client_secret,
                publishable_key,
            },
        ))),
        Err(err) => Err(err.into()),
    }
}

/// The signed-in customer's payments, newest first.
#[utoipa::path(tag = "Portal", params(ListParams),
    responses((status = 200, description = "A page of payments", body = ListResponse<PaymentDto>)))]
#[get("/payments")]
async fn portal_list_payments(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<PaymentTag>()?;
    let payments =
        invoices::list_payments(&state.app, auth.merchant, Some(auth.customer), page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(payments, |p| PaymentDto::from(&p), |p| p.id.to_string())
            .in_mode(auth.mode()),
    ))
}
