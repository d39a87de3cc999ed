//! Procedural macros of modal-rs. Each parses its input, validates it (collecting every error,
//! spanned on the offending tokens and naming what is allowed) and expands to code that uses
//! only `::modal::__private` paths. Use them through the `modal` crate.

mod app;
mod attr;
mod ctxt;
mod entrypoint;
mod function;
mod main_attr;
#[path = "../../modal-runtime/src/app/rules.rs"]
mod rules;
mod sig;

use proc_macro::TokenStream;

fn emit(result: syn::Result<proc_macro2::TokenStream>) -> TokenStream {
    result.unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Declares an app: `modal::app!(APP = App::new("hello").tags([("team", "ml")]));`
#[proc_macro]
pub fn app(input: TokenStream) -> TokenStream {
    emit(app::expand(input.into()))
}

/// Registers a function with an app; calls to it run in containers.
#[proc_macro_attribute]
pub fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(function::expand(attr.into(), item.into()))
}

/// A function run on this machine while its app runs, with its arguments as CLI flags.
#[proc_macro_attribute]
pub fn local_entrypoint(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(entrypoint::expand(attr.into(), item.into()))
}

/// An async `main` that hands over to modal's container entrypoint first.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(main_attr::expand(attr.into(), item.into()))
}
