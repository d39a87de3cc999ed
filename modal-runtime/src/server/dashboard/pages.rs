//! The dashboard's HTML, rendered on the server with `maud`: one layout, the apps page, an
//! app's page (functions with small plots, containers, deployments, live logs), a call's page,
//! the login page, and messages.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::data::{AppPage, AppRow, BARS, CallPage, FunctionRow, Objects, RECENT, status_name};
use crate::model::{AppState, ResultStatus};
use crate::server::api::images::ImageSummary;

const STYLE: &str = r#"
:root { --ink:#1d2330; --muted:#6b7385; --line:#e4e7ee; --bg:#f6f7fb; --card:#fff;
  --green:#1a9e5c; --blue:#2f6fde; --red:#d64545; --amber:#c98a0b; --grey:#8a93a6; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color:var(--ink); background:var(--bg); }
header { background:#11151f; color:#fff; padding:0 28px; height:52px; display:flex; align-items:center; gap:28px; }
header .brand { font-weight:700; letter-spacing:.2px; font-size:16px; }
header .brand span { color:#7ee2a8; }
header a { color:#c9cfdc; text-decoration:none; } header a:hover { color:#fff; }
main { max-width:1180px; margin:0 auto; padding:26px 28px 60px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:15px; margin:28px 0 10px; color:var(--muted);
  text-transform:uppercase; letter-spacing:.6px; }
.sub { color:var(--muted); margin-bottom:18px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; overflow:hidden; }
table { width:100%; border-collapse:collapse; }
th { text-align:left; font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase;
  letter-spacing:.4px; padding:10px 14px; border-bottom:1px solid var(--line); background:#fafbfd; }
td { padding:10px 14px; border-bottom:1px solid var(--line); vertical-align:middle; }
tr:last-child td { border-bottom:none; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
a { color:var(--blue); text-decoration:none; } a:hover { text-decoration:underline; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
.pill { display:inline-block; padding:2px 9px; border-radius:999px; font-size:12px; font-weight:600; }
.s-deployed, .s-succeeded, .s-ready, .s-idle { background:#e3f6ec; color:var(--green); }
.s-ephemeral, .s-detached, .s-busy, .s-running { background:#e6eefc; color:var(--blue); }
.s-initializing, .s-starting, .s-entering, .s-stopping, .s-pending { background:#fbf1dc; color:var(--amber); }
.s-stopped { background:#eef0f4; color:var(--grey); }
.s-failed, .s-error { background:#fbe7e7; color:var(--red); }
.bad { color:var(--red); font-weight:600; } .muted { color:var(--muted); }
.filters { display:flex; gap:10px; margin-bottom:14px; align-items:center; }
.filters select, .filters input { padding:6px 9px; border:1px solid var(--line); border-radius:7px; background:#fff; }
button, .button { padding:7px 14px; border-radius:7px; border:1px solid var(--line); background:#fff; cursor:pointer; font-weight:600; }
button.danger { color:#fff; background:var(--red); border-color:var(--red); }
.top { display:flex; justify-content:space-between; align-items:flex-start; gap:20px; }
.tag { display:inline-block; background:#eef0f4; border-radius:5px; padding:1px 7px; margin-right:4px; font-size:12px; }
pre.logs { background:#0f131b; color:#d7dce6; border-radius:10px; padding:14px 16px; height:360px; overflow:auto;
  margin:0; font-size:12.5px; line-height:1.5; white-space:pre-wrap; }
pre.logs .meta { color:#7c869a; } pre.logs .err { color:#ff8f8f; }
pre.trace { background:#fff7f7; border:1px solid #f1d4d4; border-radius:10px; padding:14px 16px; overflow:auto;
  font-size:12.5px; white-space:pre-wrap; }
.login { max-width:380px; margin:70px auto; } .login label { display:block; margin:12px 0 4px; color:var(--muted); }
.login input { width:100%; padding:9px 10px; border:1px solid var(--line); border-radius:7px; }
.error { background:#fbe7e7; color:var(--red); padding:10px 12px; border-radius:8px; margin-bottom:12px; }
.progress { height:8px; background:#eef0f4; border-radius:99px; overflow:hidden; width:260px; }
.progress > div { height:100%; background:var(--green); }
svg.spark rect { fill:#9db8ee; } svg.spark rect.hot { fill:var(--blue); }
"#;

/// Unix ms as `YYYY-MM-DD HH:MM:SS UTC`.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn duration(d: Option<std::time::Duration>) -> String {
    match d {
        None => "–".to_owned(),
        Some(d) if d.as_secs_f64() >= 1.0 => format!("{:.2} s", d.as_secs_f64()),
        Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
    }
}

fn state_name(s: AppState) -> &'static str {
    match s {
        AppState::Initializing => "initializing",
        AppState::Ephemeral => "ephemeral",
        AppState::Detached => "detached",
        AppState::Deployed => "deployed",
        AppState::Stopping => "stopping",
        AppState::Stopped => "stopped",
    }
}

fn pill(state: &str) -> Markup {
    let class = state.split_whitespace().next().unwrap_or(state);
    html! { span class={ "pill s-" (class) } { (state) } }
}

/// The page around `body`.
pub(super) fn layout(title: &str, body: Markup) -> Markup {
    page(title, true, body)
}

/// The page around `body`, with the navigation when `nav` (not before a login).
fn page(title: &str, nav: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · modal-rs" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    div class="brand" { "modal" span { "-rs" } }
                    @if nav {
                        a href="/apps" { "Apps" }
                        a href="/objects" { "Secrets, volumes, images" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The apps page, filtered by state and tag (`key=value` or `key`).
pub(super) fn apps(rows: &[AppRow], state: &str, tag: &str) -> Markup {
    let shown: Vec<&AppRow> = rows
        .iter()
        .filter(|r| state.is_empty() || state_name(r.state) == state)
        .filter(|r| {
            tag.is_empty()
                || match tag.split_once('=') {
                    Some((k, v)) => r.tags.get(k).is_some_and(|x| x == v),
                    None => r.tags.contains_key(tag),
                }
        })
        .collect();
    let states = [
        "",
        "ephemeral",
        "detached",
        "deployed",
        "stopping",
        "stopped",
    ];
    layout(
        "Apps",
        html! {
            h1 { "Apps" }
            div class="sub" { (shown.len()) " of " (rows.len()) " apps" }
            form class="filters" method="get" action="/apps" {
                select name="state" {
                    @for s in states {
                        option value=(s) selected[s == state] { @if s.is_empty() { "every state" } @else { (s) } }
                    }
                }
                input name="tag" placeholder="tag, e.g. team=ml" value=(tag);
                button type="submit" { "Filter" }
            }
            div class="card" {
                table {
                    thead { tr {
                        th { "App" } th { "State" } th { "Tags" } th { "Environment" }
                        th class="num" { "Version" } th { "Created" }
                        th class="num" { "Functions" } th class="num" { "Containers" }
                        th class="num" { "Failures (1 h)" }
                    } }
                    tbody {
                        @for r in &shown {
                            tr {
                                td { a href={ "/apps/" (r.app_id) } { strong { (r.name) } } br; span class="mono muted" { (r.app_id) } }
                                td { (pill(state_name(r.state))) }
                                td { @for (k, v) in &r.tags { span class="tag" { (k) "=" (v) } } }
                                td { @if r.environment.is_empty() { span class="muted" { "main" } } @else { (r.environment) } }
                                td class="num" { @if r.version > 0 { "v" (r.version) } @else { span class="muted" { "–" } } }
                                td { (time(r.created_at_ms)) }
                                td class="num" { (r.functions) }
                                td class="num" { (r.containers) }
                                td class="num" { @if r.failures_last_hour > 0 { span class="bad" { (r.failures_last_hour) } } @else { "0" } }
                            }
                        }
                        @if shown.is_empty() {
                            tr { td colspan="9" class="muted" { "No app matches." } }
                        }
                    }
                }
            }
        },
    )
}

/// A function's inputs per slice of the recent window, as bars.
fn spark(series: &[u32]) -> Markup {
    let most = series.iter().copied().max().unwrap_or(0).max(1);
    let (w, h) = (120.0_f64, 28.0_f64);
    let bar = w / BARS as f64;
    html! {
        svg class="spark" width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } {
            @for (i, n) in series.iter().enumerate() {
                @let height = (f64::from(*n) / f64::from(most) * (h - 2.0)).max(if *n > 0 { 2.0 } else { 0.5 });
                rect class=[(i + 1 == series.len()).then_some("hot")]
                    x=(format!("{:.1}", i as f64 * bar)) y=(format!("{:.1}", h - height))
                    width=(format!("{:.1}", bar - 1.0)) height=(format!("{:.1}", height)) {}
            }
        }
    }
}

fn functions_table(functions: &[FunctionRow]) -> Markup {
    html! {
        div class="card" { table {
            thead { tr {
                th { "Function" } th class="num" { "Queued" } th class="num" { "Running" }
                th class="num" { "Succeeded" } th class="num" { "Failed" }
                th class="num" { "p50" } th class="num" { "p99" } th class="num" { "Inputs/s" }
                th { "Last " (RECENT.as_secs() / 60) " min" }
            } }
            tbody {
                @for f in functions {
                    tr data-function=(f.tag) {
                        td {
                            strong { (f.tag) }
                            @if f.is_class { " " span class="tag" { "class" } }
                            @if !f.gpu.is_empty() { " " span class="tag" { "gpu " (f.gpu) } }
                            @if let Some(next) = f.next_fire_ms { br; span class="muted" { "next run " (time(next)) } }
                        }
                        td class="num queued" { (f.queued) }
                        td class="num running" { (f.running) }
                        td class="num succeeded" { (f.succeeded) }
                        td class="num failed" { @if f.failed > 0 { span class="bad" { (f.failed) } } @else { "0" } }
                        td class="num" { (duration(f.p50)) }
                        td class="num" { (duration(f.p99)) }
                        td class="num" { (format!("{:.2}", f.per_second)) }
                        td { (spark(&f.series)) }
                    }
                }
                @if functions.is_empty() { tr { td colspan="9" class="muted" { "No function yet." } } }
            }
        } }
    }
}

/// An app's page; `csrf` goes with the stop form.
pub(super) fn app(page: &AppPage, csrf: &str) -> Markup {
    let a = &page.app;
    let live = !matches!(a.state, AppState::Stopped | AppState::Stopping);
    layout(
        &a.name,
        html! {
            div class="top" {
                div {
                    h1 { (a.name) " " (pill(state_name(a.state))) }
                    div class="sub" {
                        span class="mono" { (a.app_id) }
                        " · created " (time(a.created_at_ms))
                        @if let Some(s) = a.stopped_at_ms { " · stopped " (time(s)) }
                        @if a.version > 0 { " · v" (a.version) }
                        @for (k, v) in &a.tags { " " span class="tag" { (k) "=" (v) } }
                    }
                }
                @if live {
                    form method="post" action={ "/apps/" (a.app_id) "/stop" } {
                        input type="hidden" name="csrf" value=(csrf);
                        button class="danger" type="submit" id="stop" { "Stop app" }
                    }
                }
            }
            div id="live" {
            h2 { "Functions" }
            (functions_table(&page.functions))
            h2 { "Containers" }
            div class="card" { table {
                thead { tr { th { "Container" } th { "Function" } th { "Worker" } th { "GPUs" } th { "Started" } th { "State" } th class="num" { "Running inputs" } } }
                tbody {
                    @for c in &page.containers {
                        tr {
                            td class="mono" { (c.task_id) }
                            td { (c.function_tag) }
                            td class="mono" { (c.worker) }
                            td { @if c.gpus.is_empty() { span class="muted" { "–" } } @else { (c.gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")) } }
                            td { @if c.started_at_ms > 0 { (time(c.started_at_ms)) } @else { span class="muted" { "starting" } } }
                            td { (pill(c.state)) }
                            td class="num" { (c.running_inputs) }
                        }
                    }
                    @if page.containers.is_empty() { tr { td colspan="7" class="muted" { "No container runs." } } }
                }
            } }
            @if !page.exited.is_empty() {
                h2 { "Ended containers" }
                div class="card" { table {
                    thead { tr { th { "Container" } th { "Function" } th { "Worker" } th { "Ended" } th { "How" } th { "Why" } } }
                    tbody { @for e in &page.exited {
                        tr {
                            td class="mono" { (e.task_id) }
                            td { (e.function_tag) }
                            td class="mono" { (e.worker_id) }
                            td { (time(e.ended_at_ms)) }
                            td { (e.how) }
                            td { @if e.reason.is_empty() { span class="bad" { "unexpected" } } @else { (e.reason) } }
                        }
                    } }
                } }
            }
            div class="sub" style="margin-top:8px" { "As of " (time(page.now_ms)) @if live { ", updated every 2 s" } }
            }
            @if !page.history.is_empty() {
                h2 { "Deployments" }
                div class="card" { table {
                    thead { tr { th { "Version" } th { "Deployed" } th { "Tag" } th { "Strategy" } } }
                    tbody { @for d in page.history.iter().rev() {
                        tr { td { "v" (d.version) } td { (time(d.deployed_at_ms)) } td { (d.tag) } td { (format!("{:?}", d.strategy).to_lowercase()) } }
                    } }
                } }
            }
            h2 { "Logs" }
            div class="filters" {
                select id="log-function" { option value="" { "every function" }
                    @for f in &page.functions { option value=(f.tag) { (f.tag) } } }
                input id="log-container" placeholder="container id";
                span class="muted" id="log-state" { "connecting…" }
            }
            pre class="logs" id="logs" { span class="meta" id="no-lines" { "No line yet." } }
            script { (PreEscaped(LOG_SCRIPT.replace("APP_ID", &a.app_id))) }
            @if live { script { (PreEscaped(REFRESH_SCRIPT)) } }
        },
    )
}

/// Follows the app's logs through server-sent events, filtered in the page.
const LOG_SCRIPT: &str = r#"
(function () {
  const out = document.getElementById('logs');
  const state = document.getElementById('log-state');
  const fn = document.getElementById('log-function');
  const box = document.getElementById('log-container');
  const lines = [];
  function shown(l) {
    return (!fn.value || l.function === fn.value) && (!box.value || l.container.indexOf(box.value) >= 0);
  }
  function render() {
    out.textContent = '';
    for (const l of lines) if (shown(l)) add(l);
  }
  function add(l) {
    const none = document.getElementById('no-lines');
    if (none) none.remove();
    const row = document.createElement('div');
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = l.time + ' ' + l.function + ' ' + l.container.slice(0, 10) + '  ';
    const text = document.createElement('span');
    if (l.stderr) text.className = 'err';
    text.textContent = l.data;
    row.appendChild(meta); row.appendChild(text);
    const follow = out.scrollTop + out.clientHeight >= out.scrollHeight - 20;
    out.appendChild(row);
    if (follow) out.scrollTop = out.scrollHeight;
  }
  fn.onchange = render; box.oninput = render;
  const es = new EventSource('/apps/APP_ID/logs');
  es.onopen = function () { state.textContent = 'following'; };
  es.addEventListener('line', function (e) {
    const l = JSON.parse(e.data);
    lines.push(l);
    if (lines.length > 5000) lines.shift();
    if (shown(l)) add(l);
  });
  es.addEventListener('done', function () { state.textContent = 'the app stopped'; es.close(); });
  es.onerror = function () { state.textContent = 'reconnecting…'; };
})();
"#;

/// Replaces the functions and containers with the page's newer ones every 2 s, while the
/// app runs.
const REFRESH_SCRIPT: &str = r#"
(function () {
  const live = document.getElementById('live');
  const timer = setInterval(async function () {
    try {
      const r = await fetch(location.pathname, { credentials: 'same-origin' });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      const fresh = doc.getElementById('live');
      if (fresh) live.innerHTML = fresh.innerHTML;
      if (!doc.getElementById('stop')) {
        clearInterval(timer);
        const h1 = doc.querySelector('h1');
        if (h1) document.querySelector('h1').innerHTML = h1.innerHTML;
        const stop = document.getElementById('stop');
        if (stop) stop.closest('form').remove();
      }
    } catch (e) { /* the control plane may be gone: keep what is shown */ }
  }, 2000);
})();
"#;

/// A backtrace with the frames before the user's folded: the panic machinery, the standard
/// library and the runtime (`N frames of std, the runtime or modal-rs`).
pub(super) fn fold_backtrace(text: &str) -> String {
    // A frame is a `  N: symbol` line and its `at file:line` lines.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    let mut out_of_frames: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let numbered = t
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered {
            frames.push(vec![line]);
        } else if let Some(f) = frames.last_mut() {
            f.push(line);
        } else {
            out_of_frames.push(line);
        }
    }
    let machinery = |f: &Vec<&str>| {
        let symbol = f[0].trim_start();
        let symbol = symbol.split_once(':').map_or(symbol, |(_, s)| s.trim());
        let path = f.get(1).map_or("", |l| l.trim());
        [
            "std::",
            "core::",
            "alloc::",
            "modal::",
            "<alloc::",
            "<core::",
            "<std::",
            "__rust",
            "rust_begin_unwind",
        ]
        .iter()
        .any(|p| symbol.starts_with(p))
            || path.contains("/rustc/")
            || symbol.starts_with("catch_unwind")
            || matches!(symbol, "start_thread" | "clone" | "clone3" | "__clone")
            || symbol.starts_with("do_call")
            || symbol.contains("{closure")
                && (path.contains("modal-runtime/") || path.contains("/rustc/"))
    };
    let mut out: Vec<String> = out_of_frames.iter().map(|l| (*l).to_owned()).collect();
    let mut folded = 0;
    for f in &frames {
        if machinery(f) {
            folded += 1;
            continue;
        }
        if folded > 0 {
            out.push(format!(
                "      ({folded} frame{} of std, the runtime or modal-rs)",
                if folded == 1 { "" } else { "s" }
            ));
            folded = 0;
        }
        out.extend(f.iter().map(|l| (*l).to_owned()));
    }
    if folded > 0 {
        out.push(format!(
            "      ({folded} frame{} of std, the runtime or modal-rs)",
            if folded == 1 { "" } else { "s" }
        ));
    }
    out.join("\n")
}

/// A call's page.
pub(super) fn call(page: &CallPage) -> Markup {
    let status = match &page.result {
        Some(r) => status_name(r.status),
        None if page.inputs_done < page.inputs_total || page.inputs_total == 0 => "running",
        None => "succeeded",
    };
    let failed = page
        .result
        .as_ref()
        .is_some_and(|r| r.status != ResultStatus::Success);
    layout(
        &page.call_id,
        html! {
            h1 { span class="mono" { (page.call_id) } " " (pill(if failed { "failed" } else { status })) }
            div class="sub" {
                (page.kind) " of " strong { (page.function_tag) }
                " · app " a href={ "/apps/" (page.app_id) } class="mono" { (page.app_id) }
                " · started " (time(page.created_at_ms))
            }
            @if page.kind == "map" {
                @let pct = (page.inputs_done * 100).checked_div(page.inputs_total).unwrap_or(0);
                div { (page.inputs_done) " of " (page.inputs_total) " inputs done" }
                div class="progress" { div style={ "width:" (pct) "%" } {} }
            }
            @if let Some(r) = &page.result {
                h2 { "Result" }
                div class="card" { table { tbody {
                    tr { th { "Status" } td { (status_name(r.status)) } }
                    tr { th { "Attempts" } td { (r.attempt + 1) } }
                    @if !r.task_id.is_empty() { tr { th { "Container" } td class="mono" { (r.task_id) } } }
                    @if !r.error_type.is_empty() { tr { th { "Error type" } td class="mono" { (r.error_type) } } }
                    @if !r.location.is_empty() { tr { th { "Location" } td class="mono" { (r.location) } } }
                } } }
                @if !page.attempts.is_empty() {
                    h2 { "Attempts" }
                    div class="card" { table {
                        thead { tr { th class="num" { "Attempt" } th { "Container" } th { "Status" } th class="num" { "Duration" } th { "Ended" } } }
                        tbody { @for a in &page.attempts {
                            tr {
                                td class="num" { (a.attempt + 1) }
                                td class="mono" { (a.task_id) }
                                td { (status_name(a.status)) }
                                td class="num" { (duration(Some(std::time::Duration::from_millis(a.millis)))) }
                                td { (time(a.ended_at_ms)) }
                            }
                        } }
                    } }
                }
                @if failed {
                    h2 { "Error" }
                    pre class="trace" id="error" { (r.message) @if !r.backtrace.is_empty() { "\n\n" (fold_backtrace(&r.backtrace)) } }
                }
            }
        },
    )
}

fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", b / 1024.0 / 1024.0 / 1024.0)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Secrets (names, keys and the apps that use them; never values), volumes and images.
/// `images`: `None` when this control plane keeps no image store.
pub(super) fn objects(o: &Objects, images: Option<&[ImageSummary]>) -> Markup {
    layout(
        "Secrets, volumes, images",
        html! {
            h1 { "Secrets, volumes, images" }
            h2 { "Secrets" }
            div class="card" { table {
                thead { tr { th { "Name" } th { "Environment" } th { "Keys" } th { "Updated" } th { "Used by" } } }
                tbody {
                    @for s in &o.secrets {
                        tr {
                            td { strong { (s.name) } }
                            td { (s.environment) }
                            td { @for k in &s.keys { span class="tag mono" { (k) } } }
                            td { (time(s.updated_at_ms)) }
                            td { @if s.used_by.is_empty() { span class="muted" { "no app" } } @else { (s.used_by.join(", ")) } }
                        }
                    }
                    @if o.secrets.is_empty() { tr { td colspan="5" class="muted" { "No secret (modal secret create NAME KEY=VALUE)." } } }
                }
            } }
            h2 { "Volumes" }
            div class="card" { table {
                thead { tr { th { "Name" } th { "Environment" } th class="num" { "Version" } th class="num" { "Files" } th class="num" { "Size" } th { "Last commit" } } }
                tbody {
                    @for v in &o.volumes {
                        tr {
                            td { strong { (v.name) } @if !v.app_id.is_empty() { " " span class="tag" { "ephemeral" } } }
                            td { (v.environment) }
                            td class="num" { "v" (v.version) }
                            td class="num" { (v.files) }
                            td class="num" { (size(v.bytes)) }
                            td { @if v.committed_at_ms > 0 { (time(v.committed_at_ms)) } @else { span class="muted" { "never" } } }
                        }
                    }
                    @if o.volumes.is_empty() { tr { td colspan="6" class="muted" { "No volume." } } }
                }
            } }
            h2 { "Images" }
            div class="card" { table {
                thead { tr { th { "Image" } th { "Last step" } th class="num" { "Layers" } th class="num" { "Size" } th { "Built" } } }
                tbody {
                    @match images {
                        None => { tr { td colspan="5" class="muted" { "This control plane builds no images." } } }
                        Some(list) => {
                            @for i in list {
                                tr {
                                    td class="mono" { (i.image_id) }
                                    td class="mono" { (i.last_step) }
                                    td class="num" { (i.layers.len()) }
                                    td class="num" { (size(i.bytes)) }
                                    td { (time(i.created_at_ms)) }
                                }
                            }
                            @if list.is_empty() { tr { td colspan="5" class="muted" { "No image built yet." } } }
                        }
                    }
                }
            } }
        },
    )
}

/// The login page of `modal server`'s dashboard.
pub(super) fn login(error: Option<&str>, next: &str) -> Markup {
    page(
        "Log in",
        false,
        html! {
            div class="login card" style="padding:24px 26px" {
                h1 { "Log in" }
                div class="sub" { "With a token of this server (" code { "modal token new" } ")." }
                @if let Some(e) = error { div class="error" id="login-error" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token_id" { "Token id" }
                    input id="token_id" name="token_id" autocomplete="username" placeholder="ak-…";
                    label for="token_secret" { "Token secret" }
                    input id="token_secret" name="token_secret" type="password" autocomplete="current-password" placeholder="as-…";
                    div style="margin-top:18px" { button type="submit" id="login" { "Log in" } }
                }
            }
        },
    )
}

/// A page that only says something (`title`, `text`).
pub(super) fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        html! { h1 { (title) } p class="sub" { (text) } p { a href="/apps" { "All apps" } } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtrace_starts_at_the_user_s_frame() {
        let raw = "   0: modal::container::runner::install_panic_hook::{{closure}}
             at /work/main/modal-runtime/src/container/runner.rs:55:24
   1: <alloc::boxed::Box<F,A> as core::ops::function::Fn<Args>>::call
             at /rustc/abc/library/alloc/src/boxed.rs:1999:9
   2: std::panicking::rust_panic_with_hook
             at /rustc/abc/library/std/src/panicking.rs:841:13
   3: dashboard::_::__modal_impl_explode
             at ./tests/src/bin/dashboard.rs:19:5
   4: std::panicking::catch_unwind
             at /rustc/abc/library/std/src/panicking.rs:544:19";
        let folded = fold_backtrace(raw);
        let lines: Vec<&str> = folded.lines().collect();
        assert_eq!(lines[0], "      (3 frames of std, the runtime or modal-rs)");
        assert!(lines[1].contains("__modal_impl_explode"), "{folded}");
        assert!(lines[2].contains("dashboard.rs:19:5"));
        assert_eq!(lines[3], "      (1 frame of std, the runtime or modal-rs)");
        assert_eq!(fold_backtrace("no frames here"), "no frames here");
    }
}
