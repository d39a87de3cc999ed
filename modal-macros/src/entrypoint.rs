//! `#[modal::local_entrypoint(app = APP, name = …)]`: a function that runs on this machine
//! with the app running, its arguments parsed from command-line flags.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Path};

use crate::attr::{self, ParamValue};
use crate::ctxt::Ctxt;
use crate::rules;
use crate::sig::{self, Return};

const PARAMS: &[&str] = &["app", "name"];

pub(crate) fn expand(attr_tokens: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let Ok(f) = syn::parse2::<ItemFn>(item.clone()) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[modal::local_entrypoint] goes on a free `fn` or `async fn`",
        ));
    };
    let params = attr::parse_params(attr_tokens)?;
    let params = attr::check_keys(
        &mut cx,
        params,
        "#[modal::local_entrypoint]",
        PARAMS,
        |_| None,
    );
    let mut app: Option<Path> = None;
    let mut name = f.sig.ident.to_string();
    for p in &params {
        let ParamValue::Expr(e) = &p.value else {
            cx.error_spanned_by(&p.key, format!("`{}` takes a value", p.name()));
            continue;
        };
        match p.name().as_str() {
            "app" => match e {
                Expr::Path(ep) => app = Some(ep.path.clone()),
                other => cx.error_spanned_by(
                    other,
                    "`app` takes the name of the app static declared with `modal::app!`",
                ),
            },
            _ => match attr::string(e) {
                Some(s) => match rules::check_function_name(&s) {
                    Ok(()) => name = s,
                    Err(msg) => {
                        cx.error_spanned_by(e, msg.replace("function name", "entrypoint name"))
                    }
                },
                None => cx.error_spanned_by(e, "`name` takes a string literal"),
            },
        }
    }
    if app.is_none() {
        cx.push(syn::Error::new(
            Span::call_site(),
            "#[modal::local_entrypoint] needs the app it runs: `app = APP` (the static declared with `modal::app!`)",
        ));
    }
    let sig = sig::analyze(&mut cx, &f, "a #[modal::local_entrypoint]");
    if let Err(e) = cx.check() {
        let mut out = e.into_compile_error();
        if f.sig.ident == "main" {
            // A stub `main` keeps the compiler from adding "`main` function not found".
            out.extend(quote!(
                fn main() {}
            ));
        } else {
            out.extend(item);
        }
        return Ok(out);
    }
    let Some(app) = app else { return Ok(item) };

    let is_main = f.sig.ident == "main";
    let fn_ident = if is_main {
        format_ident!("__modal_entrypoint_main")
    } else {
        f.sig.ident.clone()
    };
    let mut user_fn = f.clone();
    user_fn.sig.ident = fn_ident.clone();
    let arg_idents: Vec<&syn::Ident> = sig.args.iter().map(|a| &a.ident).collect();
    let specs = sig.args.iter().map(|a| {
        let n = a.ident.to_string();
        let t = &a.ty;
        quote_spanned!(t.span()=> ::modal::__private::ParamSpec {
            name: #n,
            kind: <#t as ::modal::CliArg>::KIND,
            required: <#t as ::modal::CliArg>::REQUIRED,
            value_hint: <#t as ::modal::CliArg>::HINT,
        })
    });
    let parse = sig.args.iter().map(|a| {
        let ident = &a.ident;
        let n = a.ident.to_string();
        let flag = format!("--{}", n.replace('_', "-"));
        let t = &a.ty;
        quote_spanned!(t.span()=>
            let #ident: #t = <#t as ::modal::CliArg>::from_cli(
                __args.get(#n).map(::std::string::String::as_str),
            ).map_err(|__e| ::std::format!("{} {}", #flag, __e))?;
        )
    });
    let call = quote!(#fn_ident(#(#arg_idents),*));
    let value = if sig.is_async {
        quote!(#call.await)
    } else {
        quote!(::modal::__private::run_blocking(move || #call).await)
    };
    let body = match &sig.ret {
        Return::Result { .. } => quote!(match #value {
            ::core::result::Result::Ok(_) => ::core::result::Result::Ok(()),
            ::core::result::Result::Err(__e) => {
                #[allow(unused_imports)]
                use ::modal::__private::{EntryErrorViaModal as _, EntryErrorViaDisplay as _, EntryErrorViaDebug as _};
                ::core::result::Result::Err((&&&::modal::__private::EntryErrorProbe::new(__e)).__modal_entry_error())
            }
        }),
        _ => quote!({
            let _ = #value;
            ::core::result::Result::Ok(())
        }),
    };
    let main_fn = if is_main {
        quote!(
            fn main() -> ::std::process::ExitCode {
                ::modal::main()
            }
        )
    } else {
        quote!()
    };
    Ok(quote! {
        #user_fn

        #main_fn

        const _: () = {
            static __MODAL_PARAMS: &[::modal::__private::ParamSpec] = &[#(#specs),*];

            fn __modal_run(
                __args: &::modal::__private::EntrypointArgs,
            ) -> ::core::result::Result<::modal::__private::EntrypointFuture, ::std::string::String> {
                #(#parse)*
                ::core::result::Result::Ok(::std::boxed::Box::pin(async move { #body }))
            }

            ::modal::__private::inventory::submit! {
                ::modal::__private::EntrypointRegistration {
                    app: || &*#app,
                    name: #name,
                    params: __MODAL_PARAMS,
                    run: __modal_run,
                }
            }
        };
    })
}
