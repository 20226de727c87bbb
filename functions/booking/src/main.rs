#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    seatbook_core::lambda::serve("booking", booking_fn::routes()).await
}
