//! Addresses, shipping addresses and orders (docs/orders.md), for merchants and in the
//! portal.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use tenure_app::dto::InMode;
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::orders::{
    AddressDto, CreateAddress, OrderDto, OrderFilterParams, SetShippingAddress, ShipOrder,
    ShippingAddressDto, UpcomingOrderDto, UpdateAddress,
};
use tenure_app::dto::webhooks::DeletedDto;
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::subscriptions::Scope;
use tenure_app::{addresses, orders};
use tenure_domain::access::Mode;
use tenure_domain::ids::{AddressId, AddressTag, CustomerTag, OrderTag, SubscriptionTag};
use tenure_domain::order::Order;
use tenure_store::repo::orders::OrderFilter;
use tenure_store::{Page, repo::addresses::StoredAddress};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::middleware::audit::names_agent;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_address)
        .service(list_addresses)
        .service(get_address)
        .service(update_address)
        .service(delete_address)
        .service(get_shipping_address)
        .service(set_shipping_address)
        .service(get_upcoming_order)
        .service(list_orders)
        .service(get_order)
        .service(fulfill_order)
        .service(ship_order)
        .service(deliver_order)
        .service(cancel_order);
}

/// The routes of the `/v1/portal` scope (customer session tokens).
pub fn configure_portal(cfg: &mut ServiceConfig) {
    cfg.service(portal_create_address)
        .service(portal_list_addresses)
        .service(portal_get_address)
        .service(portal_update_address)
        .service(portal_delete_address)
        .service(portal_get_shipping_address)
        .service(portal_set_shipping_address)
        .service(portal_get_upcoming_order)
        .service(portal_list_orders)
        .service(portal_get_order);
}

fn address_page(mode: Mode, page: Page<StoredAddress>) -> HttpResponse {
    HttpResponse::Ok().json(
        ListResponse::from_page(page, |a| AddressDto::from(&a), |a| a.id.to_string()).in_mode(mode),
    )
}

fn order_page(mode: Mode, page: Page<Order>) -> HttpResponse {
    HttpResponse::Ok().json(
        ListResponse::from_page(page, |o| OrderDto::from(&o), |o| o.id.to_string()).in_mode(mode),
    )
}

fn deleted(mode: Mode, id: AddressId) -> HttpResponse {
    HttpResponse::Ok().json(InMode::new(
        mode,
        DeletedDto {
            id: id.to_string(),
            object: "address".to_owned(),
            deleted: true,
        },
    ))
}

// ---- addresses, merchant ----

/// Add an address to a customer's address book (`address.created`). `name`, `line1`,
/// `city` and `country` (ISO 3166-1 alpha-2) are required; every invalid field is listed
/// in one 422. 409 `address_limit_reached` beyond 50 addresses, `customer_erased` for an
/// erased customer.
#[utoipa::path(tag = "Addresses", request_body = CreateAddress,
    params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 201, description = "The new address", body = AddressDto)))]
#[post("/customers/{id}/addresses")]
async fn create_address(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<CreateAddress>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&id, "customer")?;
    let a = addresses::create(&state.app, auth.0, customer, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), AddressDto::from(&a))))
}

/// A customer's addresses, newest first.
#[utoipa::path(tag = "Addresses", params(("id" = String, Path, description = "Customer id (cus_…)"), ListParams),
    responses((status = 200, description = "A page of addresses", body = ListResponse<AddressDto>)))]
#[get("/customers/{id}/addresses")]
async fn list_addresses(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&id, "customer")?;
    let page = page.page::<AddressTag>()?;
    let found = addresses::list(&state.app, auth.0, customer, page).await?;
    Ok(address_page(auth.mode(), found))
}

/// One address of a customer.
#[utoipa::path(tag = "Addresses", params(("id" = String, Path, description = "Customer id (cus_…)"),
        ("address_id" = String, Path, description = "Address id (addr_…)")),
    responses((status = 200, description = "The address", body = AddressDto)))]
#[get("/customers/{id}/addresses/{address_id}")]
async fn get_address(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&path.0, "customer")?;
    let id = parse_id::<AddressTag>(&path.1, "address")?;
    let a = addresses::get(&state.app, auth.0, customer, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), AddressDto::from(&a))))
}

/// Change fields of an address (`address.updated`); null clears an optional one. The
/// subscriptions shipping there ship to the new address from their next order on; orders
/// already made keep theirs.
#[utoipa::path(tag = "Addresses", request_body = UpdateAddress,
    params(("id" = String, Path, description = "Customer id (cus_…)"),
        ("address_id" = String, Path, description = "Address id (addr_…)")),
    responses((status = 200, description = "The address", body = AddressDto),
        (status = 409, description = "The customer is erased (`customer_erased`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[patch("/customers/{id}/addresses/{address_id}")]
async fn update_address(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
    body: Json<UpdateAddress>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&path.0, "customer")?;
    let id = parse_id::<AddressTag>(&path.1, "address")?;
    let a = addresses::update(&state.app, auth.0, customer, id, body.0).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), AddressDto::from(&a))))
}

/// Delete an address (`address.deleted`). 409 `address_in_use` while a subscription
/// ships to it.
#[utoipa::path(tag = "Addresses", params(("id" = String, Path, description = "Customer id (cus_…)"),
        ("address_id" = String, Path, description = "Address id (addr_…)")),
    responses((status = 200, description = "The address is gone", body = DeletedDto),
        (status = 409, description = "A subscription ships to it (`address_in_use`), or the customer is erased (`customer_erased`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/customers/{id}/addresses/{address_id}")]
async fn delete_address(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let customer = parse_id::<CustomerTag>(&path.0, "customer")?;
    let id = parse_id::<AddressTag>(&path.1, "address")?;
    addresses::delete(&state.app, auth.0, customer, id).await?;
    Ok(deleted(auth.mode(), id))
}

// ---- shipping address of a subscription ----

/// Where a subscription ships (`address` is null while it has none).
#[utoipa::path(tag = "Subscriptions", params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The shipping address", body = ShippingAddressDto)))]
#[get("/subscriptions/{id}/shipping_address")]
async fn get_shipping_address(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let view = addresses::shipping_address(&state.app, Scope::merchant(auth.0), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// Ship a subscription to an address of its customer's book
/// (`subscription.shipping_address_updated`); 422 on `address_id` for an address that is
/// not the customer's. Orders made without an address (not yet shipped) take it. A request
/// naming an agent (`Tenure-Agent`) is held to the edit cutoff of the next order (409
/// `order_edit_cutoff_passed`), as a subscriber is; the merchant's backend is not.
#[utoipa::path(tag = "Subscriptions", request_body = SetShippingAddress,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The shipping address", body = ShippingAddressDto),
        (status = 409, description = "An agent's change after the next order's edit cutoff (`order_edit_cutoff_passed`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[post("/subscriptions/{id}/shipping_address")]
async fn set_shipping_address(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<SetShippingAddress>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    // An agent (`Tenure-Agent`) is held to the edit cutoff of the next order.
    let view = addresses::set_shipping_address(
        &state.app,
        Scope::merchant_agent(auth.0, names_agent(&req)),
        id,
        &body.0.address_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// The order the next renewal of a subscription that ships will make: what ships, when,
/// where, at what price, its edit cutoff and whether it may still be changed.
#[utoipa::path(tag = "Subscriptions", params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The upcoming order", body = UpcomingOrderDto),
        (status = 409, description = "The product does not ship (`subscription_not_shippable`) or the subscription will not renew (`no_upcoming_order`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[get("/subscriptions/{id}/upcoming_order")]
async fn get_upcoming_order(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let view = orders::upcoming_order(&state.app, Scope::merchant(auth.0), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

// ---- orders, merchant ----

/// List orders, newest first, filtered by status, customer or subscription.
#[utoipa::path(tag = "Orders", params(ListParams, OrderFilterParams),
    responses((status = 200, description = "A page of orders", body = ListResponse<OrderDto>)))]
#[get("/orders")]
async fn list_orders(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<OrderFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<OrderTag>()?;
    let filter = filter.into_inner();
    let filter = OrderFilter {
        status: filter.status.map(Into::into),
        customer: filter
            .customer_id
            .as_deref()
            .map(|c| parse_field_id::<CustomerTag>(c, "customer_id"))
            .transpose()?,
        subscription: filter
            .subscription_id
            .as_deref()
            .map(|s| parse_field_id::<SubscriptionTag>(s, "subscription_id"))
            .transpose()?,
    };
    let found = orders::list(&state.app, Scope::merchant(auth.0), filter, page).await?;
    Ok(order_page(auth.mode(), found))
}

/// One order.
#[utoipa::path(tag = "Orders", params(("id" = String, Path, description = "Order id (ord_…)")),
    responses((status = 200, description = "The order", body = OrderDto)))]
#[get("/orders/{id}")]
async fn get_order(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<OrderTag>(&id, "order")?;
    let o = orders::get(&state.app, Scope::merchant(auth.0), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), OrderDto::from(&o))))
}

/// Mark a paid order picked and packed (`order.fulfilled`). 409
/// `order_already_fulfilled` once fulfilled (or shipped), `invalid_order_transition` for
/// an order not paid or canceled, `shipping_address_required` for one without an address.
#[utoipa::path(tag = "Orders", params(("id" = String, Path, description = "Order id (ord_…)")),
    responses((status = 200, description = "The order, fulfilled", body = OrderDto)))]
#[post("/orders/{id}/fulfill")]
async fn fulfill_order(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<OrderTag>(&id, "order")?;
    let o = orders::fulfill(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), OrderDto::from(&o))))
}

/// Hand an order to a carrier with its tracking (`order.shipped`); an unfulfilled order is
/// fulfilled by the same step. 409 `order_already_shipped` once shipped,
/// `invalid_order_transition` for an order not paid or canceled.
#[utoipa::path(tag = "Orders", request_body = ShipOrder,
    params(("id" = String, Path, description = "Order id (ord_…)")),
    responses((status = 200, description = "The order, shipped", body = OrderDto)))]
#[post("/orders/{id}/ship")]
async fn ship_order(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<ShipOrder>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<OrderTag>(&id, "order")?;
    let o = orders::ship(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), OrderDto::from(&o))))
}

/// The carrier delivered a shipped order (`order.delivered`). 409
/// `order_already_delivered`, or `invalid_order_transition` before it shipped.
#[utoipa::path(tag = "Orders", params(("id" = String, Path, description = "Order id (ord_…)")),
    responses((status = 200, description = "The order, delivered", body = OrderDto)))]
#[post("/orders/{id}/deliver")]
async fn deliver_order(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<OrderTag>(&id, "order")?;
    let o = orders::deliver(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), OrderDto::from(&o))))
}

/// Call an order off before it ships (`order.canceled`); its invoice is not changed
/// (refund or void it if that is meant). 409 `order_already_canceled`, or
/// `invalid_order_transition` once shipped.
#[utoipa::path(tag = "Orders", params(("id" = String, Path, description = "Order id (ord_…)")),
    responses((status = 200, description = "The order, canceled", body = OrderDto)))]
#[post("/orders/{id}/cancel")]
async fn cancel_order(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<OrderTag>(&id, "order")?;
    let o = orders::cancel(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), OrderDto::from(&o))))
}

// ---- portal ----

/// Add an address to the signed-in customer's address book (`address.created`); the same
/// rules as the merchant's.
#[utoipa::path(tag = "Portal", request_body = CreateAddress,
    responses((status = 201, description = "The new address", body = AddressDto)))]
#[post("/addresses")]
async fn portal_create_address(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    body: Json<CreateAddress>,
) -> ApiResult<HttpResponse> {
    let a = addresses::create(&state.app, auth.merchant, auth.customer, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), AddressDto::from(&a))))
}

/// The signed-in customer's addresses, newest first.
#[utoipa::path(tag = "Portal", params(ListParams),
    responses((status = 200, description = "A page of addresses", body = ListResponse<AddressDto>)))]
#[get("/addresses")]
async fn portal_list_addresses(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<AddressTag>()?;
    let found = addresses::list(&state.app, auth.merchant, auth.customer, page).await?;
    Ok(address_page(auth.mode(), found))
}

/// One of the signed-in customer's addresses.
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Address id (addr_…)")),
    responses((status = 200, description = "The address", body = AddressDto)))]
#[get("/addresses/{id}")]
async fn portal_get_address(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<AddressTag>(&id, "address")?;
    let a = addresses::get(&state.app, auth.merchant, auth.customer, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), AddressDto::from(&a))))
}

/// Change fields of one of the signed-in customer's addresses (`address.updated`).
#[utoipa::path(tag = "Portal", request_body = UpdateAddress,
    params(("id" = String, Path, description = "Address id (addr_…)")),
    responses((status = 200, description = "The address", body = AddressDto),
        (status = 409, description = "The customer is erased (`customer_erased`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[patch("/addresses/{id}")]
async fn portal_update_address(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<UpdateAddress>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<AddressTag>(&id, "address")?;
    let a = addresses::update(&state.app, auth.merchant, auth.customer, id, body.0).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), AddressDto::from(&a))))
}

/// Delete one of the signed-in customer's addresses (`address.deleted`). 409
/// `address_in_use` while a subscription ships to it.
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Address id (addr_…)")),
    responses((status = 200, description = "The address is gone", body = DeletedDto),
        (status = 409, description = "A subscription ships to it (`address_in_use`), or the customer is erased (`customer_erased`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/addresses/{id}")]
async fn portal_delete_address(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<AddressTag>(&id, "address")?;
    addresses::delete(&state.app, auth.merchant, auth.customer, id).await?;
    Ok(deleted(auth.mode(), id))
}

/// Where one of the signed-in customer's subscriptions ships.
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The shipping address", body = ShippingAddressDto)))]
#[get("/subscriptions/{id}/shipping_address")]
async fn portal_get_shipping_address(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let view = addresses::shipping_address(&state.app, scope, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// Ship one of the signed-in customer's subscriptions to another of their addresses
/// (`subscription.shipping_address_updated`).
#[utoipa::path(tag = "Portal", request_body = SetShippingAddress,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The shipping address", body = ShippingAddressDto)))]
#[post("/subscriptions/{id}/shipping_address")]
async fn portal_set_shipping_address(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<SetShippingAddress>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let view = addresses::set_shipping_address(&state.app, scope, id, &body.0.address_id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// The next order of one of the signed-in customer's subscriptions: what ships, when,
/// where, at what price, and until when they may change it (`cutoff_at`, `editable`).
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The upcoming order", body = UpcomingOrderDto),
        (status = 409, description = "The product does not ship (`subscription_not_shippable`) or the subscription will not renew (`no_upcoming_order`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[get("/subscriptions/{id}/upcoming_order")]
async fn portal_get_upcoming_order(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let view = orders::upcoming_order(&state.app, scope, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// The signed-in customer's orders, newest first.
#[utoipa::path(tag = "Portal", params(ListParams),
    responses((status = 200, description = "A page of orders", body = ListResponse<OrderDto>)))]
#[get("/orders")]
async fn portal_list_orders(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<OrderTag>()?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let found = orders::list(&state.app, scope, OrderFilter::default(), page).await?;
    Ok(order_page(auth.mode(), found))
}

/// One of the signed-in customer's orders, with its tracking once shipped.
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Order id (ord_…)")),
    responses((status = 200, description = "The order", body = OrderDto)))]
#[get("/orders/{id}")]
async fn portal_get_order(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<OrderTag>(&id, "order")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let o = orders::get(&state.app, scope, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), OrderDto::from(&o))))
}
