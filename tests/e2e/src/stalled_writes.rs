//! A Kubernetes client whose writes stall forever once a budget of them has passed: an operator frozen in the
//! middle of a reconcile, so that a test can kill it there and know exactly what it left undone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request};
use kube::client::Body;

/// Lets `budget` writes (any verb but GET/HEAD) through; every later write waits forever, before it is sent.
#[derive(Clone)]
pub struct StallWritesLayer {
    budget: Arc<AtomicI64>,
}

impl StallWritesLayer {
    pub fn new(budget: i64) -> StallWritesLayer {
        StallWritesLayer {
            budget: Arc::new(AtomicI64::new(budget)),
        }
    }
}

impl<S> tower::Layer<S> for StallWritesLayer {
    type Service = StallWrites<S>;

    fn layer(&self, inner: S) -> StallWrites<S> {
        StallWrites {
            inner,
            budget: self.budget.clone(),
        }
    }
}

#[derive(Clone)]
pub struct StallWrites<S> {
    inner: S,
    budget: Arc<AtomicI64>,
}

impl<S> tower::Service<Request<Body>> for StallWrites<S>
where
    S: tower::Service<Request<Body>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let write = !matches!(*request.method(), Method::GET | Method::HEAD);
        if write && self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            // Never sent: the API server sees nothing of it.
            return Box::pin(std::future::pending());
        }
        Box::pin(self.inner.call(request))
    }
}
