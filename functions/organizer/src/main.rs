#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    seatbook_core::lambda::serve("organizer", organizer_fn::routes()).await
}
