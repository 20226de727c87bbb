#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    seatbook_core::lambda::serve("metrics", metrics_fn::routes()).await
}
