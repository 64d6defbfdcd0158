//! Authentication: `authorization: Bearer <token>` on every call but health, the
//! token resolved to its team ([`Caller`]), which the handlers authorise against.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::core::teams::{Caller, Teams};

/// Resolves `authorization: Bearer <token>` to the caller's team and puts the
/// [`Caller`] in the request's extensions.
#[derive(Clone)]
pub struct Auth {
    teams: Arc<Teams>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

impl Auth {
    /// Accepts the tokens of `teams`.
    pub fn new(teams: Teams) -> Self {
        Self {
            teams: Arc::new(teams),
        }
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing \"authorization: Bearer <token>\" metadata")
            })?;
        let caller = self
            .teams
            .caller(given)
            .ok_or_else(|| Status::unauthenticated("invalid bearer token"))?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The caller [`Auth`] found for a request.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::teams::DEFAULT_TEAM;

    fn with(token: &str) -> Request<()> {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    }

    #[test]
    fn a_token_becomes_its_caller() {
        let mut a = Auth::new(Teams::single("s3cret"));
        assert_eq!(
            a.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let r = a.call(with("s3cret")).unwrap();
        let c = caller(&r).unwrap();
        assert_eq!((c.team.as_str(), c.admin), (DEFAULT_TEAM, true));
        assert_eq!(
            a.call(with("nope")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            caller(&Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
