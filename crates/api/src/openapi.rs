//! The OpenAPI document, generated from the handlers' annotations: the
//! paths come from the one list of routes ([`crate::operations`]), the rest
//! from [`ApiDoc`] and [`Conventions`]. The committed copy
//! (`openapi/openapi.json`) is checked against it by a test.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::{AppState, Operations, error};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "shelfwatch",
        version = "1.0.0",
        description = "Grocery price intelligence: retailers, products across retailers, price \
            history, forecasts, buy/wait recommendations, watches with signed webhooks, and admin \
            jobs. Money is integer minor units plus a formatted string and the currency; times are \
            RFC 3339 UTC; errors are application/problem+json (RFC 9457).",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(error::Problem)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "catalogue", description = "Retailers, products, prices and forecasts"),
        (name = "recommendations", description = "What to buy now and what to wait for"),
        (name = "watches", description = "Price alerts delivered as signed webhooks (scope watch)"),
        (name = "admin", description = "Jobs and runs (scope admin)"),
    )
)]
pub struct ApiDoc;

/// A router with the document's info, tags and shared schemas, and no
/// paths yet: the operations are merged into it.
pub fn base() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

/// The document once every operation is in: adds the [`Conventions`].
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    Conventions.modify(&mut doc);
    doc
}

/// The whole document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let Operations {
        health,
        reads,
        writes,
    } = super::operations();
    finish(
        base()
            .merge(health)
            .merge(reads)
            .merge(writes)
            .into_openapi(),
    )
}

/// The document, pretty-printed as committed in `openapi/openapi.json`.
pub fn document() -> String {
    let mut text = openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// Security schemes and the error responses every `/v1` operation shares.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key (sw_...) or JWT")
                    .build(),
            ),
        );
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    super::error::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let shared = [
            (
                "BadRequest",
                "400",
                "The request is malformed: a parameter or body is wrong",
            ),
            (
                "Unauthorized",
                "401",
                "A credential is needed, or the one given is not valid",
            ),
            (
                "Forbidden",
                "403",
                "The credential lacks the scope this needs",
            ),
            (
                "TooManyRequests",
                "429",
                "Rate limited: retry after Retry-After seconds",
            ),
            (
                "InternalError",
                "500",
                "Unexpected failure (no detail; quote the request id)",
            ),
            (
                "Unavailable",
                "503",
                "Busy, timed out or not ready: retry later",
            ),
        ];
        let with_body = [
            ("PayloadTooLarge", "413", "The request body is too large"),
            (
                "UnsupportedMediaType",
                "415",
                "The body must be application/json",
            ),
            (
                "UnprocessableEntity",
                "422",
                "The JSON body does not have the expected shape",
            ),
        ];
        for (name, _, description) in shared.iter().chain(with_body.iter()) {
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(problem(description)));
        }
        components.responses.insert(
            "NotModified".to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("Unchanged since the ETag in If-None-Match")
                    .build(),
            ),
        );
        components.responses.insert(
            "NotFound".to_owned(),
            RefOr::T(problem(
                "Not found: no such item, or a retailer or cursor given that does not exist",
            )),
        );
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                optional_bodies_are_objects(op);
                query_values_are_never_null(op);
                names_what_may_not_exist(op);
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1") {
                continue;
            }
            let add = |op: &mut Operation, entries: &[(&str, &str, &str)]| {
                for (name, code, _) in entries {
                    op.responses
                        .responses
                        .entry((*code).to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                }
            };
            if let Some(op) = item.get.as_mut() {
                add(op, &shared);
                add(op, &[("NotModified", "304", "")]);
            }
            if let Some(op) = item.post.as_mut() {
                add(op, &shared);
                add(op, &with_body);
            }
            if let Some(op) = item.delete.as_mut() {
                add(op, &shared);
            }
        }
    }
}

/// An optional body documented as `oneOf [X, null]` (utoipa's reading of
/// `Option<X>`) becomes an optional `X`: the body may be left out (the
/// server also reads an empty body and `null` as the defaults). Generated
/// clients send no body for "not given" instead of a JSON `null`.
fn optional_bodies_are_objects(op: &mut Operation) {
    let Some(RefOr::T(body)) = op.request_body.as_mut() else {
        return;
    };
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else {
            continue;
        };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let mut others = one_of.items.iter().filter(|item| !is_null(item));
            if let (Some(only), None) = (others.next(), others.next()) {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

/// A query parameter is given or left out; it cannot be `null` (an empty
/// value is not `null` either, and is refused when it does not parse).
fn query_values_are_never_null(op: &mut Operation) {
    for parameter in op.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else {
            continue;
        };
        if parameter.parameter_in != ParameterIn::Query {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
            && let SchemaType::Array(types) = &schema.schema_type
        {
            let types: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            schema.schema_type = match types.as_slice() {
                [one] => SchemaType::Type(one.clone()),
                _ => SchemaType::Array(types),
            };
        }
    }
}

/// Operations that take a `retailer` or a `cursor` answer 404 for one
/// that is well formed but does not exist, as for an unknown id.
fn names_what_may_not_exist(op: &mut Operation) {
    let names_one = op.parameters.iter().flatten().any(|p| {
        matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query
                && (p.name == "retailer" || p.name == "cursor"))
    });
    if names_one {
        op.responses
            .responses
            .entry("404".to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name("NotFound")));
    }
}
