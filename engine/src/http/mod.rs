//! iii-http, the REST API (3111): `http` triggers become routes; a request becomes an
//! invocation and its result becomes the response (spec §3.3).

mod pre_handler;
mod request;
mod response;
mod routes;
mod server;

pub(crate) use routes::RouteTable;
pub(crate) use server::serve;
