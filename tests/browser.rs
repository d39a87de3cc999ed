//! The dashboard in a real browser: headless chromium driven through WebDriver (`chromedriver`,
//! which each test starts itself; `.ci/chromium.sh` installs both). The embedded dashboard of
//! the `dashboard` program (the functions' counts after a map, a printed line in the live log,
//! a failed call's error and backtrace, stopping the app from its page) and `modal server`'s
//! (a wrong token refused at the login, then stopping an app, which `modal app list` sees).
//! Each test saves screenshots under `target/browser-screenshots/`, and one named
//! `NAME-failed.png` where a check fails.

mod support;

use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use modal_tests::show;
use support::{MODAL, Server};

const DASHBOARD: &str = env!("CARGO_BIN_EXE_dashboard");

/// How long a page may take to show what a test waits for.
const PAGE: Duration = Duration::from_secs(10);

/// Where the screenshots go: `target/browser-screenshots/`.
fn screenshots() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

/// A `chromedriver` this test started, on a port of its own, in a process group of its own:
/// dropping it kills the group (the driver and the browser it started). Its log, with the
/// browser's standard error, is `target/tmp/chromedriver-NAME.log`.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    fn start(path: &Path, name: &str) -> Driver {
        let port = modal_tests::server::free_port();
        let log_path =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromedriver-{name}.log"));
        let log = std::fs::File::create(&log_path).expect("chromedriver's log file");
        let child = Command::new(path)
            .args([format!("--port={port}").as_str(), "--enable-chrome-logs"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let driver = Driver {
            child,
            port,
            log: log_path,
        };
        let listening = modal_tests::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            listening,
            "chromedriver did not listen on port {port} within 20 s (its log: {})",
            driver.log.display()
        );
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Headless chromium through a `chromedriver` of its own; `name` names its screenshots.
struct Browser {
    client: Client,
    name: &'static str,
    _driver: Driver,
}

impl Browser {
    /// `None` (the test skips, saying why) where there is no chromedriver.
    async fn start(name: &'static str) -> Option<Browser> {
        let chromedriver = modal_tests::browser_available(&format!("browser test {name}"))?;
        let driver = tokio::task::block_in_place(|| Driver::start(&chromedriver, name));
        // A failure's screenshot from an earlier run would mislead.
        let _ = std::fs::remove_file(screenshots().join(format!("{name}-failed.png")));
        let mut args = vec![
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--lang=en-US",
        ];
        if nix::unistd::geteuid().is_root() {
            args.push("--no-sandbox");
        }
        let mut options = serde_json::json!({ "args": args });
        // Debian's `chromium`, which its chromedriver finds anyway; another system's by name.
        if let Some(binary) =
            modal_tests::on_path(&["chromium", "chromium-browser", "google-chrome"])
        {
            options["binary"] = binary.to_string_lossy().into_owned().into();
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), options);
        // Chromium now and then exits while it starts ("session not created: Chrome instance
        // exited": seen once in some forty starts beside the tests' programs): another try.
        let mut tries = 0;
        let client = loop {
            tries += 1;
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let session = tokio::time::timeout(
                Duration::from_secs(60),
                ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&driver.url()),
            )
            .await
            .expect("chromium started within 60 s");
            match session {
                Ok(client) => break client,
                Err(e) if tries < 3 => eprintln!("chromium did not start (try {tries}): {e}"),
                Err(e) => panic!(
                    "chromedriver could not start chromium ({tries} tries): {e} (its log: {})",
                    driver.log.display()
                ),
            }
        };
        Some(Browser {
            client,
            name,
            _driver: driver,
        })
    }

    /// Saves the page as `target/browser-screenshots/NAME-STEP.png`.
    async fn screenshot(&self, step: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("the screenshots' directory");
        let path = dir.join(format!("{}-{step}.png", self.name));
        std::fs::write(&path, png).expect("the screenshot is saved");
        eprintln!("screenshot: {}", path.display());
    }

    /// Fails the test with `why`, after a screenshot of the page as it is (`NAME-failed.png`).
    async fn fail(&self, why: String) -> ! {
        let url = self.client.current_url().await.map(|u| u.to_string());
        let _ = self.screenshot("failed").await;
        panic!("{why}\n(the browser was at {url:?})");
    }

    async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(format!("cannot open {url}: {e}")).await;
        }
    }

    /// The text of the first element `css` selects, once there is one (within [`PAGE`]).
    async fn text(&self, css: &str) -> String {
        let found = self
            .client
            .wait()
            .at_most(PAGE)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(e) => self.fail(format!("no `{css}` on the page: {e}")).await,
        }
    }

    /// Waits (at most `limit`) until the text of `css` satisfies `ok`, reloading the page between
    /// looks when `reload`; fails with `what` and the last text otherwise.
    async fn until_text(
        &self,
        css: &str,
        limit: Duration,
        reload: bool,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < limit {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                last = e.text().await.unwrap_or_default();
                if ok(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if reload {
                let _ = self.client.refresh().await;
            }
        }
        self.fail(format!("{what} within {limit:?}: `{css}` reads {last:?}"))
            .await
    }

    /// Clicks `css` (a link or a form's button) and waits until the browser left the page it
    /// was on: a click returns before the navigation it starts, which may lead to the same URL.
    async fn follow(&self, css: &str) {
        let found = self
            .client
            .wait()
            .at_most(PAGE)
            .for_element(Locator::Css(css))
            .await;
        // The old page's root goes stale once the new page replaced it.
        let old = self.client.find(Locator::Css("html")).await;
        let clicked = match found {
            Ok(e) => e.click().await,
            Err(e) => self.fail(format!("no `{css}` to click: {e}")).await,
        };
        if let Err(e) = clicked {
            self.fail(format!("cannot click `{css}`: {e}")).await;
        }
        let started = Instant::now();
        while let Ok(root) = &old {
            if root.tag_name().await.is_err() {
                break;
            }
            if started.elapsed() > PAGE {
                self.fail(format!("clicking `{css}` led nowhere within {PAGE:?}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the input `css` (emptied first).
    async fn fill(&self, css: &str, text: &str) {
        let typed = match self.client.find(Locator::Css(css)).await {
            Ok(e) => match e.clear().await {
                Ok(()) => e.send_keys(text).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = typed {
            self.fail(format!("cannot type into `{css}`: {e}")).await;
        }
    }

    /// Scrolls the page until `css` is in view (for the next screenshot).
    async fn scroll_to(&self, css: &str) {
        let script = "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});";
        if let Err(e) = self.client.execute(script, vec![css.into()]).await {
            self.fail(format!("cannot scroll to `{css}`: {e}")).await;
        }
    }

    /// The path of the page the browser shows.
    async fn path(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.path().to_owned(),
            Err(e) => self.fail(format!("no current URL: {e}")).await,
        }
    }

    /// Ends the session (chromedriver stops the browser); the driver goes when this is dropped.
    async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(20), self.client.clone().close()).await;
    }
}

/// `http://host:port` of a dashboard URL.
fn origin(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    format!("http://{}", rest.split('/').next().unwrap_or(rest))
}

/// Waits (at most 30 s, blocking this worker thread) until `child` exited; kills it otherwise.
fn ends(child: &mut Child) -> bool {
    let ended = tokio::task::block_in_place(|| {
        modal_tests::wait_until(Duration::from_secs(30), || {
            matches!(child.try_wait(), Ok(Some(_)))
        })
    });
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_dashboard_in_a_browser_shows_the_run_its_logs_a_failed_call_and_stops_it() {
    let Some(b) = Browser::start("embedded").await else {
        return;
    };
    let (mut child, mut out) = modal_tests::spawn_embedded(DASHBOARD, &["run", "show"]);
    let [url, call]: [String; 2] =
        tokio::task::block_in_place(|| modal_tests::read_keys(&mut out, &["url", "call"]))
            .try_into()
            .expect("two values");
    let base = origin(&url);

    // The printed URL carries the key: the browser keeps it as a cookie and lands on the app.
    b.goto(&url).await;
    let app_path = b.path().await;
    if !app_path.starts_with("/apps/ap-") {
        b.fail(format!("{url} led to {app_path}, not the app's page"))
            .await;
    }
    let heading = b.text("h1").await;
    if !heading.contains("dashboard") {
        b.fail(format!("the app's page is headed {heading:?}"))
            .await;
    }
    let squares = b.text("tr[data-function='square'] td.succeeded").await;
    let exploded = b.text("tr[data-function='explode'] td.failed").await;
    if squares != "20" || exploded != "1" {
        b.fail(format!(
            "after a map of 20 and one failed call: square succeeded {squares:?}, explode failed {exploded:?}"
        ))
        .await;
    }
    // A line a function prints reaches the page's live log.
    b.until_text(
        "#logs",
        PAGE,
        false,
        "a printed `marker` line in the live log",
        |t| t.contains("marker "),
    )
    .await;
    b.until_text("#log-state", PAGE, false, "the log says it follows", |t| {
        t == "following"
    })
    .await;
    b.screenshot("app").await;
    b.scroll_to("#logs").await;
    b.screenshot("logs").await;

    // The failed call: its error, and the panic's location or a frame of the function.
    b.goto(&format!("{base}/calls/{call}")).await;
    let error = b.text("#error").await;
    if !error.contains("exploded: on purpose") {
        b.fail(format!("the call's error reads {error:?}")).await;
    }
    let whole = b.text("body").await;
    if !whole.contains("dashboard.rs:") {
        b.fail(format!(
            "the call's page names no location or frame in dashboard.rs: {whole}"
        ))
        .await;
    }
    b.screenshot("call").await;

    // Back to the app through the call page's link, and stop it with the page's button.
    b.follow(&format!("a[href='{app_path}']")).await;
    if b.path().await != app_path {
        b.fail(format!("the call's app link did not lead to {app_path}"))
            .await;
    }
    b.follow("#stop").await;
    // The stop answers with the app's page itself (the program, and its dashboard, end once
    // the app stopped): it shows the app stopped.
    b.until_text(
        "h1 .s-stopped",
        PAGE,
        false,
        "the app's page shows it stopped",
        |t| t.contains("stopped"),
    )
    .await;
    b.screenshot("stopped").await;
    if !ends(&mut child) {
        b.fail("the program did not end within 30 s of its app's stop".into())
            .await;
    }
    // What the program printed after the URL: its function's lines, then that a call found
    // the app stopped. Read on a thread of its own, in case something else holds the pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        let _ = tx.send(rest);
    });
    let rest = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(10)))
        .unwrap_or_default();
    assert!(
        rest.contains("stopped: yes"),
        "the program's calls found its app stopped; it printed after the URL: {rest:?}"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modal_server_s_dashboard_in_a_browser_refuses_a_wrong_token_and_stops_an_app() {
    let Some(b) = Browser::start("server").await else {
        return;
    };
    let s = tokio::task::block_in_place(|| Server::start(MODAL, "browser-dashboard", None, true));
    let printed = s.printed();
    let base = printed
        .lines()
        .find_map(|l| l.strip_prefix("dashboard at "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no dashboard line in: {printed}"))
        .to_owned();

    // No session: the login page.
    b.goto(&base).await;
    if b.path().await != "/login" {
        b.fail(format!("{base} did not lead to the login page"))
            .await;
    }
    b.fill("#token_id", "ak-nope").await;
    b.fill("#token_secret", "as-nope").await;
    b.follow("#login").await;
    let refused = b.text("#login-error").await;
    if !refused.contains("not valid") {
        b.fail(format!("a wrong token's login says {refused:?}"))
            .await;
    }
    b.screenshot("login-refused").await;

    // The right token: the apps page.
    let (id, secret) = s.token();
    b.fill("#token_id", &id).await;
    b.fill("#token_secret", &secret).await;
    b.follow("#login").await;
    let path = b.path().await;
    if path != "/apps" {
        b.fail(format!("the login led to {path}, not /apps")).await;
    }

    // An app running there: its page, then the stop button.
    let mut child = s
        .command(DASHBOARD, &["run", "show"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let url = tokio::task::block_in_place(|| modal_tests::read_keys(&mut out, &["url"])).remove(0);
    if !url.starts_with(&format!("{base}/apps/ap-")) {
        b.fail(format!("the program printed {url}, not a page of {base}"))
            .await;
    }
    let app_id = url
        .trim_start_matches(&format!("{base}/apps/"))
        .split(['?', '/'])
        .next()
        .unwrap_or_default()
        .to_owned();
    b.goto(&format!("{base}/apps")).await;
    b.until_text(
        "body",
        PAGE,
        true,
        "the apps page lists the running app",
        |t| t.contains("dashboard"),
    )
    .await;
    b.screenshot("apps").await;
    b.goto(&url).await;
    let squares = b.text("tr[data-function='square'] td.succeeded").await;
    if squares != "20" {
        b.fail(format!("square succeeded {squares:?} after a map of 20"))
            .await;
    }
    b.follow("#stop").await;
    b.until_text(
        "h1 .s-stopped",
        Duration::from_secs(20),
        true,
        "the app's page shows it stopped",
        |t| t.contains("stopped"),
    )
    .await;
    b.screenshot("stopped").await;

    let listed = s.modal(&["app", "list", "--json"]);
    assert!(listed.status.success(), "{}", show(&listed));
    let apps: serde_json::Value = serde_json::from_slice(&listed.stdout)
        .unwrap_or_else(|e| panic!("app list --json: {e}\n{}", show(&listed)));
    let state = apps
        .as_array()
        .and_then(|all| all.iter().find(|a| a["app_id"] == app_id.as_str()))
        .map(|a| a["state"].clone());
    assert_eq!(
        state,
        Some("stopped".into()),
        "`modal app list` after the page's stop: {}",
        show(&listed)
    );
    assert!(
        ends(&mut child),
        "the program did not end within 30 s of its app's stop"
    );
    b.close().await;
}
