//! Headers every answer gets: no type sniffing; pages revalidated so an upgrade is never
//! half-loaded from a cache; the console never framed by another site; scripts and styles
//! declared UTF-8, so a widget on a page in another encoding reads its text right.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use std::future::Future;

/// The middleware, for `App::wrap_fn`.
pub fn secure<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody,
{
    let console = req.path().starts_with("/console");
    let api = req.path().starts_with("/api/") || req.path().starts_with("/ws/");
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        let h = res.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if !api && !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        if console {
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("frame-ancestors 'none'"),
            );
        }
        let retype = match h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
            Some("text/javascript") | Some("application/javascript") => {
                Some("text/javascript; charset=utf-8")
            }
            Some("text/css") => Some("text/css; charset=utf-8"),
            _ => None,
        };
        if let Some(t) = retype {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
        }
        Ok(res)
    }
}
