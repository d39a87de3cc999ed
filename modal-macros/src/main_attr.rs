//! `#[modal::main]`: a `main` that first hands over to the container entrypoint when the worker
//! started this binary, then runs the async body on a tokio runtime.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ItemFn;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    // On error, a stub `main` keeps the compiler from adding "`main` function not found".
    check(attr, item).or_else(|e| {
        let mut out = e.into_compile_error();
        out.extend(quote!(
            fn main() {}
        ));
        Ok(out)
    })
}

fn check(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[modal::main] takes no parameters",
        ));
    }
    let f: ItemFn = syn::parse2(item).map_err(|_| {
        syn::Error::new(Span::call_site(), "#[modal::main] goes on `async fn main`")
    })?;
    if f.sig.ident != "main" {
        return Err(syn::Error::new_spanned(
            &f.sig.ident,
            "#[modal::main] goes on the program's `main` function",
        ));
    }
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            f.sig.fn_token,
            "#[modal::main] needs `async fn main`",
        ));
    }
    if !f.sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &f.sig.inputs,
            "`main` takes no arguments; use #[modal::local_entrypoint] for flags",
        ));
    }
    let attrs = &f.attrs;
    let output = &f.sig.output;
    let block = &f.block;
    Ok(quote! {
        #(#attrs)*
        fn main() -> ::std::process::ExitCode {
            async fn __modal_main() #output #block
            ::modal::__private::main_with(__modal_main)
        }
    })
}
