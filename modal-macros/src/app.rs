//! `modal::app!(APP = App::new("name").tags([...]) ...)`: declares the app static, registers it,
//! and checks literal names, tags and builder options at compile time.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Token, Visibility};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::rules;

/// Builder methods of `App`, as on Modal's reference page (plus `include`).
const OPTIONS: &[&str] = &[
    "tags",
    "image",
    "secrets",
    "volumes",
    "include_source",
    "include",
];

struct AppDecl {
    vis: Visibility,
    ident: Ident,
    expr: Expr,
}

impl Parse for AppDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let vis: Visibility = input.parse()?;
        let ident: Ident = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "expected `NAME = App::new(\"app-name\")`, for example `modal::app!(APP = App::new(\"hello\"))`")
        })?;
        input.parse::<Token![=]>().map_err(|e| {
            syn::Error::new(e.span(), "expected `=` after the app's static name: `modal::app!(APP = App::new(\"hello\"))`")
        })?;
        let expr: Expr = input.parse()?;
        if !input.is_empty() {
            input.parse::<Token![;]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("one app per `modal::app!`"));
        }
        Ok(AppDecl { vis, ident, expr })
    }
}

/// Walks `App::new("x").a(..).b(..)`, checking what it can see.
fn check_builder(cx: &mut Ctxt, expr: &Expr) {
    match expr {
        Expr::MethodCall(m) => {
            check_builder(cx, &m.receiver);
            let method = m.method.to_string();
            if !OPTIONS.contains(&method.as_str()) {
                cx.error_spanned_by(
                    &m.method,
                    format!(
                        "unknown App option `{method}`; expected one of: {}",
                        OPTIONS.join(", ")
                    ),
                );
                return;
            }
            if method == "tags"
                && let Some(Expr::Array(arr)) = m.args.first()
            {
                for elem in &arr.elems {
                    if let Expr::Tuple(t) = elem {
                        for (what, e) in ["key", "value"].iter().zip(t.elems.iter()) {
                            if let Some(s) = attr::string(e)
                                && let Err(msg) = rules::check_tag(what, &s)
                            {
                                cx.error_spanned_by(e, msg);
                            }
                        }
                    }
                }
            }
        }
        Expr::Call(c) => {
            if let Some(arg) = c.args.first()
                && let Some(name) = attr::string(arg)
                && let Err(msg) = rules::check_app_name(&name)
            {
                cx.error_spanned_by(arg, msg);
            }
        }
        _ => {}
    }
}

pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let decl: AppDecl = syn::parse2(input)?;
    let mut cx = Ctxt::new();
    check_builder(&mut cx, &decl.expr);
    cx.check()?;
    let AppDecl { vis, ident, expr } = decl;
    Ok(quote! {
        #vis static #ident: ::std::sync::LazyLock<::modal::App> = ::std::sync::LazyLock::new(|| {
            #[allow(unused_imports)]
            use ::modal::App;
            #expr
        });
        ::modal::__private::inventory::submit! {
            ::modal::__private::AppEntry { app: || &*#ident }
        }
    })
}
