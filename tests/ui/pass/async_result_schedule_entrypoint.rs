//! An async function returning `Result<T, E>` with a serde error, a scheduled zero-argument
//! function, and a local entrypoint taking every CLI parameter type.

modal::app!(APP = App::new("ui-pass"));

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum LookupError {
    NotFound(u32),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NotFound(id) => write!(f, "no user with id {id}"),
        }
    }
}

impl std::error::Error for LookupError {}

#[modal::function(app = APP)]
async fn find_user(id: u32) -> Result<String, LookupError> {
    if id == 1 { Ok("ada".into()) } else { Err(LookupError::NotFound(id)) }
}

#[modal::function(app = APP, schedule = modal::Period::days(1))]
fn nightly() {
    println!("tick");
}

#[modal::function(app = APP, schedule = modal::Cron::new("0 9 * * 1-5").timezone("Europe/Paris"))]
async fn weekdays() -> u64 {
    9
}

#[modal::local_entrypoint(app = APP, name = "check")]
async fn check(
    name: String,
    count: i64,
    ratio: f64,
    verbose: bool,
    limit: Option<u32>,
    at: chrono::NaiveDateTime,
) -> anyhow::Result<()> {
    let user = find_user.remote(limit.unwrap_or(1)).await?;
    println!("{name} {count} {ratio} {verbose} {at} {user}");
    Ok(())
}

// trybuild runs pass programs with no arguments, and `check` has required flags: this `main`
// starts nothing, so the program only has to compile.
fn main() {}
