//! The layout every screen shares, formatting helpers, and the compiled-in style
//! sheet and script.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use chrono_tz::Tz;
use maud::{html, Markup, DOCTYPE};

use super::auth::Operator;
use super::Fail;

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("console.js"),
    )
        .into_response()
}

/// Which menu entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Nas,
    Sessions,
    Users,
    Queue,
    None,
}

pub fn page(title: &str, tab: Tab, op: Option<&Operator>, body: Markup) -> Html<String> {
    let item = |t: Tab, href: &str, label: &str| {
        html! { a href=(href) class=[(t == tab).then_some("on")] { (label) } }
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " — rlm_rust" }
                    link rel="stylesheet" href="/static/console.css";
                    script src="/static/console.js" defer {}
                }
                body {
                    header {
                        span.brand { "rlm_rust" }
                        @if let Some(op) = op {
                            nav {
                                (item(Tab::Nas, "/nas", "NAS list"))
                                (item(Tab::Sessions, "/sessions", "Active sessions"))
                                (item(Tab::Users, "/users", "Users"))
                                (item(Tab::Queue, "/queue", "Disconnect queue"))
                            }
                            form.logout method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(op.csrf);
                                span.who { (op.name) " (" (op.role.as_str()) ")" }
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                    main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// A failure as a page (status kept).
pub fn fail_page(f: Fail, op: Option<&Operator>) -> Response {
    let status = f.status;
    let body = html! {
        p.error role="alert" { (f.message) }
        p { "Go back and try again, or " a href="/" { "start over" } "." }
    };
    (status, page("Error", Tab::None, op, body)).into_response()
}

/// The hidden CSRF field of a form.
pub fn csrf(op: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(op.csrf); }
}

pub fn time(t: i64, tz: Tz) -> String {
    crate::cli::format::local_time(t, tz)
}

pub fn bytes(n: u64) -> String {
    crate::cli::format::human_bytes(n)
}

pub fn duration(secs: u64) -> String {
    crate::cli::format::human_duration(secs)
}

/// A user name as shown: printable, with undecodable bytes escaped as the CLI does.
pub fn name(n: &str) -> String {
    crate::cli::format::cell(n)
}

/// The path of a user's page: the name's exact bytes, percent-encoded.
pub fn user_href(n: &str) -> String {
    let mut s = String::from("/users/");
    for b in crate::names::encode(n).iter() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            s.push(*b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// A JSON value as HTML: objects as two-column tables, arrays of objects as tables
/// with a column per key, scalars as text. For the sections shown as the CLI's
/// `--json` output has them.
pub fn json(v: &serde_json::Value) -> Markup {
    use serde_json::Value;
    match v {
        Value::Null => html! { span.muted { "—" } },
        Value::Bool(b) => html! { (if *b { "yes" } else { "no" }) },
        Value::Number(n) => html! { (n.to_string()) },
        Value::String(s) => html! { (s) },
        Value::Array(items) if items.is_empty() => html! { span.muted { "none" } },
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let mut keys: Vec<&String> = Vec::new();
            for i in items {
                for k in i.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            html! {
                table.data {
                    thead { tr { @for k in &keys { th { (k.replace('_', " ")) } } } }
                    tbody {
                        @for i in items {
                            tr { @for k in &keys { td { (json(i.get(k.as_str()).unwrap_or(&Value::Null))) } } }
                        }
                    }
                }
            }
        }
        Value::Array(items) => html! {
            ul { @for i in items { li { (json(i)) } } }
        },
        Value::Object(o) => html! {
            table.kv {
                @for (k, v) in o {
                    tr { th { (k.replace('_', " ")) } td { (json(v)) } }
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths_carry_the_exact_bytes() {
        assert_eq!(user_href("alice"), "/users/alice");
        assert_eq!(user_href("a b/c"), "/users/a%20b%2Fc");
        let latin1 = crate::names::decode(b"m\xfcller");
        assert_eq!(user_href(&latin1), "/users/m%FCller");
        assert_eq!(user_href("müller"), "/users/m%C3%BCller");
    }

    #[test]
    fn json_is_escaped_and_tabular() {
        let v = serde_json::json!({
            "state": "<script>",
            "rows": [{"a": 1, "b": null}, {"a": 2, "c": true}],
        });
        let out = json(&v).into_string();
        assert!(
            out.contains("&lt;script&gt;") && !out.contains("<script>"),
            "{out}"
        );
        assert!(out.contains("<th>a</th><th>b</th><th>c</th>"), "{out}");
        assert!(out.contains("<td>yes</td>"), "{out}");
    }
}
