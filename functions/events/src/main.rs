#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    seatbook_core::lambda::serve("events", events_fn::routes()).await
}
